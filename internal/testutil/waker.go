package testutil

import (
	"sync"
	"testing"
	"time"
)

// TestWaker is a waker that only a test wakes (it has the method set of
// watcher.Waker, Wake() <-chan struct{}, without importing it). It follows
// google/mtail's waker.NewTest handshake: the code under test calls Wake
// when it has done all it can and is about to wait on the channel; the
// test calls Kick to wake it and then waits until it calls Wake again,
// which tells the test that the work the kick asked for is done.
//
// The wakee must hold on to the channel Wake returned until it fires and
// call Wake again only after that, once it has finished the work the
// wake-up started: a Wake call then proves that the last Kick was seen.
// The first Wake call only says that the wakee is ready to be kicked.
type TestWaker struct {
	mu     sync.Mutex
	wake   chan struct{} // handed out by Wake, closed by the first Kick after that
	kicks  int           // Kick calls so far
	handed int           // kicks when wake was handed out
	calls  int           // Wake calls so far
	idle   chan struct{} // closed by a Wake call that owes no kick
	isIdle bool
}

// NewTestWaker returns a waker that nothing but Kick wakes.
func NewTestWaker() *TestWaker {
	return &TestWaker{wake: make(chan struct{}), idle: make(chan struct{})}
}

// Wake returns the channel the next Kick closes, and records that the
// wakee is waiting. A kick that came after the last channel was closed
// may have come after the wakee looked; for it Wake hands out a channel
// that is already closed, so the wakee looks once more before it counts
// as idle.
func (w *TestWaker) Wake() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls++
	owe := w.kicks - w.handed
	if w.calls > 1 && owe > 0 {
		owe-- // the kick that closed the last channel was worked off
	}
	if owe > 0 {
		w.handed = w.kicks - 1
		w.wake = make(chan struct{})
		close(w.wake)
		return w.wake
	}
	w.handed = w.kicks
	w.wake = make(chan struct{})
	if !w.isIdle {
		close(w.idle)
		w.isIdle = true
	}
	return w.wake
}

// Kick wakes the wakee and returns at once; it may be called from any
// goroutine. A kick is never lost: the channel handed out last stays
// closed, and Wake owes the wakee any kick it may have missed.
func (w *TestWaker) Kick() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.kicks++
	if w.kicks-w.handed == 1 {
		close(w.wake)
	}
	if w.isIdle {
		w.idle = make(chan struct{})
		w.isIdle = false
	}
}

// Idle is closed once the wakee has called Wake since the last Kick: it
// has done what that kick asked for and waits again. Before any Kick it is
// closed by the first Wake call.
func (w *TestWaker) Idle() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.idle
}

// Calls is how many times Wake was called: a wakee that sweeps without
// being woken, or never waits, shows here.
func (w *TestWaker) Calls() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.calls
}

// WaitIdle waits until Idle is closed or the scaled deadline d passes, and
// reports whether the wakee became idle. It never fails a test, so
// goroutines other than the test's may call it.
func (w *TestWaker) WaitIdle(d time.Duration) bool {
	timer := time.NewTimer(Scale(d))
	defer timer.Stop()
	select {
	case <-w.Idle():
		return true
	case <-timer.C:
		return false
	}
}

// KickAndWait kicks the wakee and waits until it is idle again, failing t
// after the scaled deadline d. It must be called from the test's
// goroutine.
func (w *TestWaker) KickAndWait(t testing.TB, d time.Duration) {
	t.Helper()
	w.Kick()
	if !w.WaitIdle(d) {
		t.Fatalf("timed out after %s waiting for the wakee to finish the work of a kick", Scale(d))
	}
}
