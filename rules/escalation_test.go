package rules_test

import (
	"math"
	"net/netip"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/testutil"
	"github.com/mailjail/mailjail/rules"
)

const (
	hour = time.Hour
	day  = 24 * time.Hour
	week = 7 * day
)

// fixed is a randomness source that always returns v.
func fixed(v float64) func() float64 { return func() float64 { return v } }

// TestEscalationLengths drives a policy through successive bans of one
// address with a fake clock (each ban served, then the next strike) and
// checks every ban's length.
func TestEscalationLengths(t *testing.T) {
	inc := func(e rules.Escalation) rules.Escalation { e.Increment = true; return e }
	tests := []struct {
		name    string
		bantime time.Duration
		esc     rules.Escalation
		rand    func() float64
		want    []time.Duration // 0: permanent
	}{
		{"default: doubling up to a week", hour, inc(rules.Escalation{Factor: 1, MaxTime: week}),
			nil, []time.Duration{hour, 2 * hour, 4 * hour, 8 * hour, 16 * hour, 32 * hour, 64 * hour, 128 * hour, week, week}},
		{"factor multiplies the doubling", hour, inc(rules.Escalation{Factor: 3, MaxTime: week}),
			nil, []time.Duration{hour, 6 * hour, 12 * hour, 24 * hour, 48 * hour, 96 * hour, week}},
		{"a factor below 1 never shortens bantime", hour, inc(rules.Escalation{Factor: 0.25, MaxTime: week}),
			nil, []time.Duration{hour, hour, hour, 2 * hour, 4 * hour}},
		{"increment off: every ban is bantime", hour, rules.Escalation{Factor: 5, MaxTime: week},
			nil, []time.Duration{hour, hour, hour, hour}},
		{"maxtime caps", 10 * time.Minute, inc(rules.Escalation{Factor: 1, MaxTime: 30 * time.Minute}),
			nil, []time.Duration{10 * time.Minute, 20 * time.Minute, 30 * time.Minute, 30 * time.Minute}},
		{"multipliers, the last repeating", time.Minute, inc(rules.Escalation{Factor: 1, Multipliers: []float64{1, 5, 30, 60}, MaxTime: week}),
			nil, []time.Duration{time.Minute, 5 * time.Minute, 30 * time.Minute, hour, hour, hour}},
		{"multipliers times factor, capped", time.Minute, inc(rules.Escalation{Factor: 2, Multipliers: []float64{1, 5, 30, 60}, MaxTime: hour}),
			nil, []time.Duration{time.Minute, 10 * time.Minute, hour, hour}},
		{"legacy base: bantime × base^(n-1)", hour, inc(rules.Escalation{LegacyBase: 3, MaxTime: week}),
			nil, []time.Duration{hour, 3 * hour, 9 * hour, 27 * hour, 81 * hour, week}},
		{"permanent_after 3", hour, inc(rules.Escalation{Factor: 1, MaxTime: week, PermanentAfter: 3}),
			nil, []time.Duration{hour, 2 * hour, 0, 0}},
		{"permanent_after without increment", hour, rules.Escalation{Factor: 1, PermanentAfter: 2},
			nil, []time.Duration{hour, 0}},
		{"permanent_after 1: every ban", hour, inc(rules.Escalation{Factor: 1, PermanentAfter: 1}),
			nil, []time.Duration{0, 0}},
		{"rndtime added after the cap, not to a first ban", hour, inc(rules.Escalation{Factor: 1, MaxTime: 2 * hour, RndTime: 10 * time.Minute}),
			fixed(0.5), []time.Duration{hour, 2*hour + 5*time.Minute, 2*hour + 5*time.Minute}},
		{"rndtime lower bound", hour, inc(rules.Escalation{Factor: 1, MaxTime: week, RndTime: hour}),
			fixed(0), []time.Duration{hour, 2 * hour, 4 * hour}},
		{"no maxtime: saturates at MaxBan", hour, inc(rules.Escalation{Factor: 1e300}),
			nil, []time.Duration{hour, rules.MaxBan, rules.MaxBan}},
		{"huge factor is capped at maxtime", hour, inc(rules.Escalation{Factor: 1e300, MaxTime: week}),
			nil, []time.Duration{hour, week, week}},
		{"huge multipliers are capped at maxtime", hour, inc(rules.Escalation{Factor: 1, Multipliers: []float64{1, 1e300, math.MaxFloat64}, MaxTime: week}),
			nil, []time.Duration{hour, week, week, week}},
		{"huge legacy base without maxtime saturates", hour, inc(rules.Escalation{LegacyBase: 1e300}),
			nil, []time.Duration{hour, rules.MaxBan, rules.MaxBan}},
	}
	a := netip.MustParseAddr("198.51.100.7")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := testutil.NewFakeClock(time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC))
			p := rules.NewPolicy[netip.Addr](rules.PolicyConfig{MaxRetry: 1, FindTime: time.Minute, BanTime: tt.bantime,
				Escalation: tt.esc, Lookback: 30 * day, Rand: tt.rand})
			for i, want := range tt.want {
				now := clk.Now()
				// Next leaves the random part out.
				if n := p.Next(a, now); n.Offense != i+1 || n.Permanent != (want == 0) || n.Duration > want || n.Duration+n.RndTime < want || n.RndTime == 0 && n.Duration != want {
					t.Fatalf("ban %d: Next = %+v, want %v", i+1, n, want)
				}
				d := p.Strike(a, now, now)
				if !d.Ban || d.Offense != i+1 {
					t.Fatalf("ban %d: %+v", i+1, d)
				}
				if want == 0 && !d.Permanent() || want > 0 && (d.Duration != want || !d.Until.Equal(now.Add(want))) {
					t.Fatalf("ban %d: %v until %v, want %v (0: permanent)", i+1, d.Duration, d.Until, want)
				}
				// Lifted (as by an unban: bans of a century are not
				// waited for) an hour later; the ban still counts.
				clk.Advance(time.Hour)
				p.Lift(a)
				p.Prune(clk.Now())
			}
		})
	}
}

// TestEscalationNoOverflow: whatever the factor, multipliers or count of
// earlier bans, a ban is positive, at most its cap (plus rndtime), and
// its end does not wrap around.
func TestEscalationNoOverflow(t *testing.T) {
	now := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	for _, maxTime := range []time.Duration{0, week} {
		for _, esc := range []rules.Escalation{
			{Factor: 1e300}, {Factor: math.MaxFloat64}, {Factor: 1},
			{Factor: 1, Multipliers: []float64{1, 2, 1e308}}, {LegacyBase: 2}, {LegacyBase: 1e300},
			{Factor: 1, RndTime: rules.MaxBan}, {Factor: 1, RndTime: -rules.MaxBan},
			{Factor: 0}, {Factor: -1}, {Factor: 1, Multipliers: []float64{1, -5}}, {Factor: math.Inf(1)}, {Factor: math.NaN()},
		} {
			esc.Increment, esc.MaxTime = true, maxTime
			cfg := rules.PolicyConfig{BanTime: hour, Escalation: esc}
			for _, earlier := range []int{0, 1, 19, 20, 21, 63, 64, 1000, 1_000_000, math.MaxInt32} {
				for _, rnd := range []float64{0, 0.999999} {
					d := cfg.BanLength(earlier, rnd)
					limit := rules.MaxBan
					if maxTime > 0 {
						limit = min(limit, maxTime+max(esc.RndTime, 0))
					}
					if d <= 0 || d > limit || now.Add(d).Before(now) {
						t.Fatalf("%+v, %d earlier, rnd %g: %v (limit %v)", esc, earlier, rnd, d, limit)
					}
				}
			}
		}
	}
}

// TestEscalationRndTimeBounds: the random part is in [0, rndtime) of the
// capped length, for any value the source returns.
func TestEscalationRndTimeBounds(t *testing.T) {
	cfg := rules.PolicyConfig{BanTime: hour, Escalation: rules.Escalation{Increment: true, Factor: 1, MaxTime: 3 * hour, RndTime: 20 * time.Minute}}
	for _, earlier := range []int{1, 2, 5} {
		base := cfg.BanLength(earlier, 0)
		for _, rnd := range []float64{0, 0.1, 0.5, 0.999999999, 1, 2, -1, math.NaN()} {
			d := cfg.BanLength(earlier, rnd)
			if d < base || d >= base+cfg.RndTime {
				t.Errorf("%d earlier, rnd %g: %v outside [%v, %v)", earlier, rnd, d, base, base+cfg.RndTime)
			}
		}
	}
	if got := cfg.BanLength(1, 0.75); got != 2*hour+15*time.Minute {
		t.Errorf("rnd 0.75: %v", got)
	}
}

// TestEscalationOverallJails: a ban in jail A makes jail B's next ban a
// second offense only when B counts every jail's bans.
func TestEscalationOverallJails(t *testing.T) {
	k := rules.KeyOf(netip.MustParseAddr("203.0.113.9"))
	cfg := rules.PolicyConfig{MaxRetry: 1, FindTime: time.Minute, BanTime: hour,
		Escalation: rules.Escalation{Increment: true, Factor: 1, MaxTime: week}, Lookback: 30 * day}
	for _, tt := range []struct {
		name    string
		overall bool
		share   bool
		want    time.Duration
		offense int
	}{
		{"own jail only", false, true, hour, 1},
		{"overalljails", true, true, 2 * hour, 2},
		{"overalljails, no ban recorded", true, false, hour, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			clk := testutil.NewFakeClock(time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC))
			shared := rules.NewHistory[rules.AddrKey](30 * day)
			jailA, jailB := rules.NewPolicy[rules.AddrKey](cfg), rules.NewPolicy[rules.AddrKey](cfg)
			if tt.overall {
				jailB.ShareHistory(shared)
			}
			d := jailA.Strike(k, clk.Now(), clk.Now())
			if d.Duration != hour {
				t.Fatalf("jail A: %+v", d)
			}
			if tt.share { // as the engine records every jail's bans
				shared.Record(k, clk.Now())
			}
			clk.Advance(2 * hour)
			if next := jailB.Next(k, clk.Now()); next.Duration != tt.want || next.Offense != tt.offense {
				t.Fatalf("jail B next: %+v, want %v", next, tt.want)
			}
			d = jailB.Strike(k, clk.Now(), clk.Now())
			if d.Duration != tt.want || d.Offense != tt.offense {
				t.Fatalf("jail B: %+v, want %v offense %d", d, tt.want, tt.offense)
			}
			// Past the lookback the shared history no longer counts A's ban.
			clk.Advance(31 * day)
			shared.Prune(clk.Now())
			jailB.Prune(clk.Now())
			if next := jailB.Next(k, clk.Now()); next.Duration != hour || next.Offense != 1 {
				t.Fatalf("after the lookback: %+v", next)
			}
			if tt.share && shared.Len() != 0 {
				t.Fatalf("shared history kept %d keys", shared.Len())
			}
		})
	}
}

// TestNextRandom: Next says how much random time would be added.
func TestNextRandom(t *testing.T) {
	k := "alice@example.com"
	p := rules.NewPolicy[string](rules.PolicyConfig{MaxRetry: 1, FindTime: time.Minute, BanTime: hour,
		Escalation: rules.Escalation{Increment: true, Factor: 1, MaxTime: week, RndTime: time.Minute}, Lookback: day, Rand: fixed(0.5)})
	now := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	if n := p.Next(k, now); n != (rules.NextBan{Offense: 1, Duration: hour}) {
		t.Fatalf("first: %+v", n)
	}
	p.RecordPastBan(k, now.Add(-hour))
	if n := p.Next(k, now); n != (rules.NextBan{Offense: 2, Duration: 2 * hour, RndTime: time.Minute}) {
		t.Fatalf("second: %+v", n)
	}
	if d := p.Ban(k, now, 1); d.Duration != 2*hour+30*time.Second {
		t.Fatalf("ban: %v", d.Duration)
	}
}

// TestEscalationMillionEarlierBans: a policy holding a million earlier
// bans of one key bans for maxtime, or for MaxBan without one.
func TestEscalationMillionEarlierBans(t *testing.T) {
	clk := testutil.NewFakeClock(time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC))
	k := "mallory@example.com"
	n := 1_000_000
	if testutil.Race { // ten times slower: a tenth proves the same
		n = 100_000
	}
	for _, maxTime := range []time.Duration{week, 0} {
		p := rules.NewPolicy[string](rules.PolicyConfig{MaxRetry: 1, FindTime: time.Minute, BanTime: hour,
			Escalation: rules.Escalation{Increment: true, Factor: 1e300, MaxTime: maxTime}, Lookback: 30 * day})
		start := clk.Now().Add(-29 * day)
		for i := range n {
			p.RecordPastBan(k, start.Add(time.Duration(i)*time.Second))
		}
		want := maxTime
		if want == 0 {
			want = rules.MaxBan
		}
		if d := p.Strike(k, clk.Now(), clk.Now()); d.Offense != n+1 || d.Duration != want || d.Until.Before(clk.Now()) {
			t.Fatalf("maxtime %v: %+v", maxTime, d)
		}
	}
}
