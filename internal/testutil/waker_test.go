package testutil

import (
	"testing"
	"time"
)

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// The wakee is stepped by hand: each Wake call is "done, waiting again".
func TestTestWakerOwesKicksTheWakeeMayHaveMissed(t *testing.T) {
	for _, tc := range []struct {
		name string
		// steps: 'k' Kick, 'w' Wake; then the state after the last step
		steps      string
		wakeClosed bool // the channel of the last Wake is closed
		idle       bool
	}{
		{"first wake is ready, not woken", "w", false, true},
		{"kick closes the held channel", "wk", true, false},
		{"wake after the kick's work is idle", "wkw", false, true},
		{"second kick may have come after the wakee looked", "wkkw", true, false},
		{"and is worked off by one more look", "wkkww", false, true},
		{"kicks before the first wake are owed", "kw", true, false},
		{"and worked off", "kww", false, true},
		{"a kick while owing closes nothing new", "wkkwkw", true, false},
		{"then one look pays", "wkkwkww", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := NewTestWaker()
			var ch <-chan struct{}
			for _, s := range tc.steps {
				if s == 'k' {
					w.Kick()
				} else {
					ch = w.Wake()
				}
			}
			if got := closed(ch); got != tc.wakeClosed {
				t.Errorf("wake channel closed = %v, want %v", got, tc.wakeClosed)
			}
			if got := closed(w.Idle()); got != tc.idle {
				t.Errorf("idle = %v, want %v", got, tc.idle)
			}
		})
	}
}

// A wakee in its own goroutine: KickAndWait returns only after the work the
// kick asked for is done.
func TestTestWakerKickAndWaitSeesTheWorkDone(t *testing.T) {
	w := NewTestWaker()
	stop := make(chan struct{})
	done := make(chan struct{})
	work := make(chan int, 100)
	ready := w.Wake()
	go func() {
		defer close(done)
		ch, n := ready, 0
		for {
			select {
			case <-ch:
			case <-stop:
				return
			}
			n++
			work <- n
			ch = w.Wake()
		}
	}()
	for i := 1; i <= 3; i++ {
		w.KickAndWait(t, 5*time.Second)
		if got := Receive(t, work, time.Second, "the work of the kick"); got != i {
			t.Fatalf("work %d after kick %d", got, i)
		}
	}
	close(stop)
	<-done
	if n := w.Calls(); n != 4 {
		t.Errorf("Calls = %d, want 4", n)
	}
}
