package testutil

import (
	"sort"
	"sync"
	"time"

	"github.com/mailjail/mailjail/internal/core"
)

// FakeClock is a core.Clock whose time moves only when Advance is called.
// Timers and tickers fire (without blocking) when Advance passes their
// deadline, so a test decides exactly when a backoff, a tick or a retry
// happens.
type FakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []*fakeWaiter
	changed chan struct{} // closed and replaced when waiters change
}

type fakeWaiter struct {
	c      *FakeClock
	at     time.Time
	period time.Duration // tickers
	ch     chan time.Time
	active bool
}

// NewFakeClock starts at t.
func NewFakeClock(t time.Time) *FakeClock {
	return &FakeClock{now: t, changed: make(chan struct{})}
}

// Now is the fake time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTimer makes a timer that fires when the clock reaches now+d.
func (c *FakeClock) NewTimer(d time.Duration) core.Timer { return c.add(d, 0) }

// NewTicker makes a ticker that fires every d of fake time.
func (c *FakeClock) NewTicker(d time.Duration) core.Ticker { return fakeTicker{c.add(d, d)} }

// fakeTicker adapts a waiter to core.Ticker, whose Stop returns nothing.
type fakeTicker struct{ w *fakeWaiter }

func (t fakeTicker) C() <-chan time.Time { return t.w.ch }
func (t fakeTicker) Stop()               { t.w.Stop() }

func (c *FakeClock) add(d, period time.Duration) *fakeWaiter {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := &fakeWaiter{c: c, at: c.now.Add(d), period: period, ch: make(chan time.Time, 1), active: true}
	c.waiters = append(c.waiters, w)
	c.notifyLocked()
	if d <= 0 {
		c.fireLocked()
	}
	return w
}

func (c *FakeClock) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Advance moves the clock by d and fires every timer and ticker due.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.fireLocked()
}

func (c *FakeClock) fireLocked() {
	sort.SliceStable(c.waiters, func(i, j int) bool { return c.waiters[i].at.Before(c.waiters[j].at) })
	keep := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.active {
			continue
		}
		if !w.at.After(c.now) {
			select {
			case w.ch <- c.now:
			default: // a ticker drops ticks nobody took, as time.Ticker does
			}
			if w.period <= 0 {
				w.active = false
				continue
			}
			for !w.at.After(c.now) {
				w.at = w.at.Add(w.period)
			}
		}
		keep = append(keep, w)
	}
	c.waiters = keep
}

// Waiters is the number of timers and tickers still waiting.
func (c *FakeClock) Waiters() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}

// BlockUntil waits (in real time, up to the scaled deadline d) until at
// least n timers or tickers are waiting: the code under test has reached
// the point where it waits, so an Advance now is not lost. It reports
// whether that happened.
func (c *FakeClock) BlockUntil(n int, d time.Duration) bool {
	deadline := time.NewTimer(Scale(d))
	defer deadline.Stop()
	for {
		c.mu.Lock()
		have, ch := len(c.waiters), c.changed
		c.mu.Unlock()
		if have >= n {
			return true
		}
		select {
		case <-ch:
		case <-deadline.C:
			return false
		}
	}
}

func (w *fakeWaiter) C() <-chan time.Time { return w.ch }

func (w *fakeWaiter) Stop() bool {
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	was := w.active
	w.active = false
	w.c.removeLocked(w)
	select { // as time.Timer since Go 1.23: no stale value after Stop
	case <-w.ch:
	default:
	}
	return was
}

func (w *fakeWaiter) Reset(d time.Duration) bool {
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	was := w.active
	w.c.removeLocked(w)
	select {
	case <-w.ch:
	default:
	}
	w.at, w.active = w.c.now.Add(d), true
	w.c.waiters = append(w.c.waiters, w)
	w.c.notifyLocked()
	if d <= 0 {
		w.c.fireLocked()
	}
	return was
}

func (c *FakeClock) removeLocked(w *fakeWaiter) {
	for i, x := range c.waiters {
		if x == w {
			c.waiters = append(c.waiters[:i], c.waiters[i+1:]...)
			c.notifyLocked()
			return
		}
	}
}
