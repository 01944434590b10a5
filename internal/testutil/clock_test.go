package testutil

import (
	"testing"
	"time"
)

func TestFakeClockFiresTimersInOrderOnAdvance(t *testing.T) {
	c := NewFakeClock(time.Unix(1000, 0))
	a := c.NewTimer(2 * time.Second)
	b := c.NewTimer(time.Second)
	tick := c.NewTicker(time.Second)
	c.Advance(time.Second)
	select {
	case <-a.C():
		t.Fatal("2s timer fired after 1s")
	default:
	}
	if got := <-b.C(); !got.Equal(time.Unix(1001, 0)) {
		t.Fatalf("1s timer fired at %v", got)
	}
	<-tick.C()
	c.Advance(time.Second)
	<-a.C()
	<-tick.C()
	if a.Stop() {
		t.Fatal("Stop of a fired timer reported it active")
	}
	a.Reset(time.Second)
	if !a.Stop() {
		t.Fatal("Stop of a reset timer reported it inactive")
	}
	c.Advance(time.Hour)
	select {
	case <-a.C():
		t.Fatal("stopped timer fired")
	default:
	}
	tick.Stop()
	if n := c.Waiters(); n != 0 {
		t.Fatalf("%d waiters left", n)
	}
}

func TestFakeClockBlockUntilSeesAWaiterFromAnotherGoroutine(t *testing.T) {
	c := NewFakeClock(time.Unix(0, 0))
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-c.NewTimer(time.Minute).C()
	}()
	if !c.BlockUntil(1, 5*time.Second) {
		t.Fatal("the goroutine's timer never appeared")
	}
	c.Advance(time.Minute)
	Receive(t, done, 5*time.Second, "the timer to fire")
}
