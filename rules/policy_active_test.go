package rules

import (
	"net/netip"
	"testing"
	"time"
)

// MarkActive stops strikes while the restored ban lasts, like MarkBanned,
// but is no earlier ban for escalation.
func TestMarkActive(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	p := NewPolicy[AddrKey](PolicyConfig{MaxRetry: 1, FindTime: time.Hour, BanTime: time.Hour, Escalation: Escalation{Increment: true, Factor: 1}, Lookback: 24 * time.Hour})
	k := KeyOf(netip.MustParseAddr("192.0.2.1"))
	p.MarkActive(k, t0.Add(time.Hour))
	if d := p.Strike(k, t0.Add(time.Minute), t0.Add(time.Minute)); d.Counted || !p.IsBanned(k, t0.Add(59*time.Minute)) {
		t.Fatalf("a strike during the restored ban: %+v", d)
	}
	d := p.Strike(k, t0.Add(2*time.Hour), t0.Add(2*time.Hour))
	if !d.Ban || d.Offense != 1 || d.Duration != time.Hour {
		t.Fatalf("after the restored ban: %+v; want a first offense of 1h (MarkActive adds no history)", d)
	}
	p.MarkActive(k, time.Time{})
	if !p.IsBanned(k, t0.Add(1000*time.Hour)) {
		t.Error("a zero end is no permanent restored ban")
	}
}
