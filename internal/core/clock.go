package core

import "time"

// Clock is the time as mailjail's loops see it. Every timer, ticker and
// sleep of the daemon, the map writer, the journal follower and the lock
// goes through one, so that tests can move time by hand instead of
// sleeping (see internal/testutil's FakeClock), and where a test can run
// in a testing/synctest bubble the real clock is already fake.
type Clock interface {
	// Now is the current time.
	Now() time.Time
	// NewTimer starts a timer that fires once after d.
	NewTimer(d time.Duration) Timer
	// NewTicker starts a ticker that fires every d.
	NewTicker(d time.Duration) Ticker
}

// Timer is a time.Timer behind an interface; C is a method so that a fake
// can hand out its own channel.
type Timer interface {
	C() <-chan time.Time
	// Stop and Reset behave as time.Timer's (Go 1.23 and later: no stale
	// value is received after either returns).
	Stop() bool
	Reset(d time.Duration) bool
}

// Ticker is a time.Ticker behind an interface.
type Ticker interface {
	C() <-chan time.Time
	Stop()
}

// RealClock is the wall clock.
type RealClock struct{}

// Now is time.Now.
func (RealClock) Now() time.Time { return time.Now() }

// NewTimer is time.NewTimer.
func (RealClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

// NewTicker is time.NewTicker.
func (RealClock) NewTicker(d time.Duration) Ticker { return realTicker{time.NewTicker(d)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time        { return r.t.C }
func (r realTimer) Stop() bool                 { return r.t.Stop() }
func (r realTimer) Reset(d time.Duration) bool { return r.t.Reset(d) }

type realTicker struct{ t *time.Ticker }

func (r realTicker) C() <-chan time.Time { return r.t.C }
func (r realTicker) Stop()               { r.t.Stop() }

// Sleep waits for d on c, or until done is closed; it reports whether the
// whole time passed.
func Sleep(c Clock, d time.Duration, done <-chan struct{}) bool {
	t := c.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return true
	case <-done:
		return false
	}
}

// OrReal is c, or the real clock when c is nil: the zero value of an
// options struct means the wall clock.
func OrReal(c Clock) Clock {
	if c == nil {
		return RealClock{}
	}
	return c
}
