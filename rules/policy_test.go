package rules

import (
	"net/netip"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)

func TestPolicyStrikes(t *testing.T) {
	a := netip.MustParseAddr("198.51.100.23")
	cfg := PolicyConfig{MaxRetry: 3, FindTime: 10 * time.Minute, BanTime: time.Hour, Escalation: Escalation{Increment: true, Factor: 1, MaxTime: 3 * time.Hour}, Lookback: 24 * time.Hour}
	type step struct {
		at, now   time.Duration // offsets from t0
		wantCount int
		wantBan   bool
		wantDur   time.Duration
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"maxretry inside findtime bans", []step{{0, 0, 1, false, 0}, {time.Minute, time.Minute, 2, false, 0}, {2 * time.Minute, 2 * time.Minute, 3, true, time.Hour}}},
		{"strikes leave the window", []step{{0, 0, 1, false, 0}, {time.Minute, time.Minute, 2, false, 0}, {11 * time.Minute, 11 * time.Minute, 2, false, 0}, {12 * time.Minute, 12 * time.Minute, 2, false, 0}}},
		{"window is the log's time, not read time", []step{{0, 20 * time.Minute, 0, false, 0}, {15 * time.Minute, 20 * time.Minute, 1, false, 0}}},
		{"events out of order still count", []step{{5 * time.Minute, 5 * time.Minute, 1, false, 0}, {4 * time.Minute, 5 * time.Minute, 2, false, 0}, {6 * time.Minute, 6 * time.Minute, 3, true, time.Hour}}},
		{"strikes while banned are ignored", []step{{0, 0, 1, false, 0}, {0, 0, 2, false, 0}, {0, 0, 3, true, time.Hour}, {time.Minute, time.Minute, 0, false, 0}}},
		{"future timestamps are clamped to now", []step{{time.Hour, 0, 1, false, 0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewPolicy[netip.Addr](cfg)
			for i, s := range tt.steps {
				d := p.Strike(a, t0.Add(s.at), t0.Add(s.now))
				if d.Count != s.wantCount || d.Ban != s.wantBan || d.Duration != s.wantDur {
					t.Fatalf("step %d: got count=%d ban=%v dur=%v, want %d %v %v", i, d.Count, d.Ban, d.Duration, s.wantCount, s.wantBan, s.wantDur)
				}
				if d.Ban && !d.Until.Equal(t0.Add(s.now).Add(s.wantDur)) {
					t.Fatalf("step %d: until = %v", i, d.Until)
				}
			}
		})
	}
}

func TestPolicyEscalation(t *testing.T) {
	a := netip.MustParseAddr("2001:db8::42")
	p := NewPolicy[netip.Addr](PolicyConfig{MaxRetry: 1, FindTime: time.Minute, BanTime: time.Hour, Escalation: Escalation{Increment: true, Factor: 1, MaxTime: 3 * time.Hour}, Lookback: 24 * time.Hour})
	want := []time.Duration{time.Hour, 2 * time.Hour, 3 * time.Hour, 3 * time.Hour}
	now := t0
	for i, w := range want {
		d := p.Strike(a, now, now)
		if !d.Ban || d.Duration != w || d.Offense != i+1 {
			t.Fatalf("ban %d: %+v, want duration %v", i+1, d, w)
		}
		now = d.Until.Add(time.Second)
		p.Prune(now)
	}
	// Outside the lookback the address starts over.
	now = now.Add(25 * time.Hour)
	if d := p.Strike(a, now, now); d.Duration != time.Hour || d.Offense != 1 {
		t.Fatalf("after lookback: %+v", d)
	}
}

func TestPolicyPermanentAndLift(t *testing.T) {
	a := netip.MustParseAddr("192.0.2.1")
	p := NewPolicy[netip.Addr](PolicyConfig{MaxRetry: 2, FindTime: time.Minute, BanTime: -1, Lookback: time.Hour})
	p.Strike(a, t0, t0)
	d := p.Strike(a, t0, t0)
	if !d.Permanent() {
		t.Fatalf("want permanent: %+v", d)
	}
	if !p.IsBanned(a, t0.Add(1000*time.Hour)) {
		t.Fatal("permanent ban ended")
	}
	p.Lift(a)
	if p.IsBanned(a, t0) || p.Strikes(a, t0) != 0 {
		t.Fatal("lift did not clear")
	}
	p.Restore(a, t0, t0)
	if got := p.Strikes(a, t0); got != 1 {
		t.Fatalf("restored strikes = %d", got)
	}
	p.Prune(t0.Add(2 * time.Minute))
	if p.Tracked() != 0 {
		t.Fatal("prune kept an idle window")
	}
}

func TestParseAddrAndPrefix(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"198.51.100.23", "198.51.100.23", true},
		{"::ffff:198.51.100.23", "198.51.100.23", true},
		{"2001:0db8:0000::0042", "2001:db8::42", true},
		{"IPv6:2001:db8::42", "2001:db8::42", true},
		{"fe80::1%eth0", "fe80::1", true},
		{"300.1.2.3", "", false},
		{"198.51.100.0/24", "198.51.100.0/24", true},
		{"198.51.100.1/24", "", false},
		{"::ffff:198.51.100.0/120", "198.51.100.0/24", true},
		{"2001:db8::/64", "2001:db8::/64", true},
		{"not-an-ip", "", false},
	}
	for _, tt := range tests {
		p, err := ParsePrefix(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("%q: err = %v", tt.in, err)
			continue
		}
		if err == nil && FormatPrefix(p) != tt.want {
			t.Errorf("%q: got %q, want %q", tt.in, FormatPrefix(p), tt.want)
		}
	}
	set, err := NewIPSet([]string{"127.0.0.0/8", "::1", "2001:db8:1::/48"})
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]bool{"127.0.0.2": true, "::ffff:127.0.0.1": true, "::1": true, "2001:db8:1:2::3": true, "2001:db8::1": false, "198.51.100.1": false} {
		a, _ := ParseAddr(addr)
		if set.Contains(a) != want {
			t.Errorf("Contains(%s) != %v", addr, want)
		}
	}
	if !set.Overlaps(netip.MustParsePrefix("127.0.0.0/16")) || set.Overlaps(netip.MustParsePrefix("10.0.0.0/8")) {
		t.Error("Overlaps wrong")
	}
}
