package e2e

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"
)

// Latency bookkeeping

// latencyLine formats samples as the greppable summary line of the suite.
func latencyLine(samples []time.Duration) string {
	if len(samples) == 0 {
		return "E2E-LATENCY median=n/a max=n/a n=0"
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	var med time.Duration
	if len(s)%2 == 1 {
		med = s[len(s)/2]
	} else {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	ms := func(d time.Duration) string {
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + "ms"
	}
	return fmt.Sprintf("E2E-LATENCY median=%s max=%s min=%s n=%d", ms(med), ms(s[len(s)-1]), ms(s[0]), len(s))
}

// banLatency measures how long after the ban-triggering log line (the maxretry-th ratelimit
// event of addr at or after since) the map first listed addr. It fails the test if the map
// listed addr when the rspamd log held fewer than maxretry events for it, or never within
// timeout.
func banLatency(t *testing.T, lt *logTailer, mw *mapWatcher, addr string, since time.Time, maxretry int, timeout time.Duration) (time.Duration, mapSnapshot) {
	t.Helper()
	var ev []logLine
	if !waitFor(func() bool { ev = lt.ratelimitEvents(addr, since); return len(ev) >= maxretry }, 5*time.Second) {
		t.Fatalf("client %s: %d ratelimit summary lines in %s, want %d", addr, len(ev), rspamdLogPath, maxretry)
	}
	trigger := ev[maxretry-1]
	snap, ok := mw.waitUntil(since, timeout, func(s mapSnapshot) bool { return s.has(addr) })
	if !ok {
		t.Fatalf("client %s: not in the map %v after its %d. ratelimit event; map now %v",
			addr, timeout, maxretry, mw.current())
	}
	logged := 0
	for _, e := range ev {
		if e.End <= snap.LogSize {
			logged++
		}
	}
	if logged < maxretry {
		t.Fatalf("client %s: banned when the rspamd log held %d of its ratelimit events, want %d (maxretry)",
			addr, logged, maxretry)
	}
	return snap.At.Sub(trigger.At), snap
}
