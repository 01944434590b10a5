package testutil

import (
	"testing"
	"time"
)

// HoldsFor checks cond every few milliseconds for d (real time, not
// scaled: it is how long a property is watched, not a deadline) and
// reports whether it held every time. It never fails a test, so
// goroutines may call it.
func HoldsFor(d time.Duration, cond func() bool) bool {
	end := time.NewTimer(d)
	defer end.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if !cond() {
			return false
		}
		select {
		case <-end.C:
			return cond()
		case <-tick.C:
		}
	}
}

// Consistently fails t with what when cond is false at any check during
// d: something that must not happen (a line counted twice, a ban lifted
// early) did not happen while it was watched. It must be called from the
// test's goroutine.
func Consistently(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !HoldsFor(d, cond) {
		t.Fatalf("%s stopped holding within %s", what, d)
	}
}
