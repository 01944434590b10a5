package metrics

import (
	"fmt"
	"time"
)

// Thresholds of the health warnings. They are fixed, not settings: a
// source quiet for an hour on a mail host is worth a look whatever the
// traffic, and a filter whose prefilter let through this many lines
// without one match has almost surely lost its format.
const (
	QuietAfter     = time.Hour
	PrefilterNoHit = 1000
)

// Warnings are the health problems of s at now, for status: each source
// without a line for QuietAfter (since its last line, or since started
// when it gave none), and each filter jail whose prefilter let through
// PrefilterNoHit lines or more while its filter matched none (rspamd or
// Postfix changed their log format after an upgrade).
func Warnings(s Snapshot, started, now time.Time) []string {
	var out []string
	for _, src := range s.Sources {
		last := src.Last
		if last.IsZero() {
			last = started
		}
		if quiet := now.Sub(last); quiet >= QuietAfter {
			since := "since the daemon started"
			if !src.Last.IsZero() {
				since = "since " + src.Last.UTC().Format(time.RFC3339)
			}
			out = append(out, fmt.Sprintf("%s %s: no line for %s (%s); is it still written there?", src.Kind, src.Name, quiet.Truncate(time.Minute), since))
		}
	}
	for _, j := range s.Jails {
		if j.Filter != "" && j.Prefiltered >= PrefilterNoHit && j.Matches == 0 {
			out = append(out, fmt.Sprintf("jail %s: %d lines passed filter %s's prefilter and none matched; has the log format changed (mailjail test-filter)?", j.Name, j.Prefiltered, j.Filter))
		}
	}
	return out
}
