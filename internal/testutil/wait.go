package testutil

import (
	"testing"
	"time"
)

// Scale stretches a deadline for slow runs: 5× under the race detector.
// Deadlines only bound how long a broken test hangs; a passing test never
// waits for one, so they can be generous.
func Scale(d time.Duration) time.Duration {
	if Race {
		return 5 * d
	}
	return d
}

// Eventually polls cond every few milliseconds until it is true, failing
// t with what after the scaled deadline d. It must be called from the
// test's goroutine.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !WaitFor(d, cond) {
		t.Fatalf("timed out after %s waiting for %s", Scale(d), what)
	}
}

// WaitFor polls cond until it is true or the scaled deadline d passes and
// reports whether it became true. It never fails a test, so goroutines may
// call it.
func WaitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(Scale(d))
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Receive waits for one value from ch, failing t after the scaled
// deadline d.
func Receive[T any](t testing.TB, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	timer := time.NewTimer(Scale(d))
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("timed out after %s waiting for %s", Scale(d), what)
	}
	var zero T
	return zero
}
