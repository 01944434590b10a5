package enforcetest

import (
	"testing"
	"time"
)

func TestPercentileNearestRank(t *testing.T) {
	var s []time.Duration
	for i := 100; i >= 1; i-- {
		s = append(s, time.Duration(i)*time.Millisecond)
	}
	for _, tc := range []struct {
		p    int
		want time.Duration
	}{{50, 50 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {1, time.Millisecond}} {
		if got := Percentile(s, tc.p); got != tc.want {
			t.Errorf("p%d = %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := Percentile([]time.Duration{7}, 99); got != 7 {
		t.Errorf("one sample: %v", got)
	}
}

func TestBansAreDistinct(t *testing.T) {
	seen := map[string]bool{}
	for _, b := range Bans(0, 5000) {
		if seen[b.Prefix.String()] || b.Prefix != b.Prefix.Masked() {
			t.Fatalf("%v repeated or not masked", b.Prefix)
		}
		seen[b.Prefix.String()] = true
	}
}
