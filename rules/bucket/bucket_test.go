package bucket

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// rspamdRef is a transliteration of the state changes rspamd's Redis
// scripts make to one bucket hash (lualib/redis_scripts/ratelimit_check.lua
// followed, when not limited, by ratelimit_update.lua), with the dynamic
// multipliers fixed at 1. Times are milliseconds and the rate is messages
// per millisecond, exactly as the plugin passes them.
type rspamdRef struct {
	exists bool
	l      int64   // last, ms
	b      float64 // burst level
	p      float64 // pending
}

// check mirrors ratelimit_check.lua and reports whether the message is
// limited, plus the level the script compared (b after leak, plus pending).
func (r *rspamdRef) check(now int64, rate, maxBurst, nrcpt float64) (limited bool, compared float64) {
	if !r.exists {
		*r = rspamdRef{exists: true, l: now, b: 0, p: nrcpt}
		return false, 0
	}
	burst, pending := math.Max(r.b, 0), math.Max(r.p, 0)
	pending += nrcpt
	if burst+pending > 0 {
		if burst > 0 && r.l < now {
			leaked := float64(now-r.l) * rate
			if leaked > burst {
				leaked = burst
			}
			burst -= leaked
			r.b -= leaked
			r.l = now
		}
		burst += pending
		if burst > 0 && burst > maxBurst {
			return true, burst
		}
		r.p += nrcpt
	} else {
		burst = 0
		r.b, r.p = 0, nrcpt
	}
	return false, burst
}

// update mirrors ratelimit_update.lua (the plugin only runs it when the
// message was not soft-rejected).
func (r *rspamdRef) update(now int64, nrcpt float64) {
	if r.b < 0 {
		r.b = nrcpt
	} else {
		r.b += nrcpt
	}
	if r.p < nrcpt {
		r.p = 0
	} else {
		r.p -= nrcpt
	}
	r.l = now
}

// rspamd34Ref is a transliteration of rspamd 3.4's check and update scripts
// (strings in src/plugins/lua/ratelimit.lua, lines 70-112 and 130-197),
// dynamic multipliers fixed at 1. 3.4 has no pending count.
type rspamd34Ref struct {
	exists bool
	l      int64
	b      float64
}

func (r *rspamd34Ref) check(now int64, rate, maxBurst, nrcpt float64) (limited bool, compared float64) {
	if !r.exists {
		*r = rspamd34Ref{exists: true, l: now}
		return false, 0
	}
	burst := r.b
	if burst > 0 {
		if r.l < now {
			leaked := float64(now-r.l) * rate
			if leaked > burst {
				leaked = burst
			}
			burst -= leaked
			r.b -= leaked
			r.l = now
		}
		if burst > 0 && burst+nrcpt > maxBurst {
			return true, burst + nrcpt
		}
	} else {
		burst = 0
		r.b = 0
	}
	return false, burst + nrcpt
}

func (r *rspamd34Ref) update(now int64, nrcpt float64) {
	r.b += nrcpt
	r.l = now
}

var epoch = time.Date(2026, 11, 25, 3, 34, 0, 0, time.UTC)

func at(ms int64) time.Time { return epoch.Add(time.Duration(ms) * time.Millisecond) }

func mustPolicy(t testing.TB, rate string, burst float64, mode Mode, capLevel float64) Policy {
	t.Helper()
	r, err := ParseRate(rate)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPolicy(Limit{Rate: r, Burst: burst}, mode, capLevel)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// refScripts is one release's transliterated scripts.
type refScripts interface {
	check(now int64, rate, maxBurst, nrcpt float64) (limited bool, compared float64)
	update(now int64, nrcpt float64)
	level() float64
	started() bool
}

func (r *rspamdRef) level() float64   { return r.b }
func (r *rspamdRef) started() bool    { return r.exists }
func (r *rspamd34Ref) level() float64 { return r.b }
func (r *rspamd34Ref) started() bool  { return r.exists }

var versions = []struct {
	v   Version
	ref func() refScripts
}{
	{Rspamd36, func() refScripts { return &rspamdRef{} }},
	{Rspamd34, func() refScripts { return &rspamd34Ref{} }},
}

func mustVersion(t testing.TB, p Policy, v Version) Policy {
	t.Helper()
	p, err := p.ForRspamd(v)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestMatchesRspamdScripts replays hand-written sequences through the
// references of both releases and Policy and demands the same verdicts and
// levels. steps34, when set, are the sequence's outcome under rspamd 3.4.
func TestMatchesRspamdScripts(t *testing.T) {
	type step struct {
		ms      int64
		n       float64
		limited bool
		level   float64 // level after the event
	}
	tests := []struct {
		name    string
		rate    string
		burst   float64
		steps   []step
		steps34 []step
	}{
		{name: "burst then one per leak", rate: "1 / 1s", burst: 3, steps: []step{
			{0, 1, false, 1}, {0, 1, false, 2}, {0, 1, false, 3},
			{0, 1, true, 3},     // 3+1 > 3
			{500, 1, true, 2.5}, // half leaked: 2.5+1 > 3, leaky: not added
			{1000, 1, false, 3}, // 2+1 == 3 is allowed (strict >)
			{1000, 1, true, 3},
		}},
		{name: "first event never limited", rate: "1 / 1min", burst: 2, steps: []step{
			{0, 5, false, 5},      // rspamd creates the bucket and allows it
			{60000, 1, true, 4},   // 5-1 leaked = 4, 4+1 > 2
			{180000, 1, true, 2},  // 4-2 = 2, 2+1 > 2
			{240000, 1, false, 2}, // 1+1 == 2
		}},
		{name: "fully drained bucket is not new", rate: "1 / 1s", burst: 2,
			steps: []step{
				{0, 1, false, 1}, {10000, 3, true, 0}, {10000, 2, false, 2},
			},
			steps34: []step{ // 3.4: an empty bucket admits any one message
				{0, 1, false, 1}, {10000, 3, false, 3}, {10000, 2, true, 3},
			}},
		{name: "heavier than the burst, over and over", rate: "1 / 1min", burst: 5,
			steps: []step{
				{0, 1, false, 1}, {120000, 6, true, 0}, {240000, 6, true, 0}, {240000, 5, false, 5},
			},
			steps34: []step{
				{0, 1, false, 1}, {120000, 6, false, 6}, {240000, 6, true, 4}, {600000, 6, false, 6},
			}},
		{name: "recipients weigh", rate: "30 / 60min", burst: 10, steps: []step{
			{0, 4, false, 4}, {1000, 4, false, 7.991666666666666}, {2000, 4, true, 7.983333333333333},
			{120000, 2, false, 9}, // 118s leak 118/120: 7+2
		}},
		{name: "period edge: exactly one period later", rate: "10 / 1h", burst: 10, steps: []step{
			{0, 10, false, 10}, {1, 1, true, 10 - 10.0/3600000},
			{3600000, 10, false, 10}, // drained to exactly 0, 0+10 == 10
			{3600001, 1, true, 10 - 10.0/3600000},
		}},
		{name: "per day", rate: "100 / 1d", burst: 100, steps: []step{
			{0, 100, false, 100}, {864000, 1, false, 100}, {864000, 0.5, true, 100},
		}},
	}
	for _, tc := range tests {
		for _, ver := range versions {
			steps := tc.steps
			if ver.v == Rspamd34 && tc.steps34 != nil {
				steps = tc.steps34
			}
			t.Run(tc.name+"/"+ver.v.String(), func(t *testing.T) {
				p := mustVersion(t, mustPolicy(t, tc.rate, tc.burst, Leaky, math.Inf(1)), ver.v)
				perMs := p.Limit().Rate.PerSecond() / 1000
				ref := ver.ref()
				var b Bucket
				for i, s := range steps {
					refLimited, _ := ref.check(s.ms, perMs, tc.burst, s.n)
					if !refLimited {
						ref.update(s.ms, s.n)
					}
					got := p.Update(&b, at(s.ms), s.n, Scale{})
					if refLimited != s.limited || math.Abs(ref.level()-s.level) > 1e-9 {
						t.Fatalf("step %d: the test table disagrees with the rspamd reference: ref limited=%v level=%v", i, refLimited, ref.level())
					}
					if got.Limited != s.limited || math.Abs(got.Level-s.level) > 1e-9 || math.Abs(b.Level-got.Level) > 0 {
						t.Fatalf("step %d (%+v): got %+v, want limited=%v level=%v", i, s, got, s.limited, s.level)
					}
				}
			})
		}
	}
}

// TestRandomAgainstRspamd compares long random sequences with both
// releases' scripts, with weights up to twice the burst so that messages
// heavier than the burst (where the releases differ) occur. Floating point
// differs between the two (ms and per-ms rate there, ns and per-ns here), so
// a sequence stops being compared once an event lands within 1e-6 of the
// burst, or a leak leaves either within 1e-6 above empty, where the two could
// legitimately round to different verdicts.
func TestRandomAgainstRspamd(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	rates := []string{"1 / 1s", "3 / 1s", "1 / 1min", "30 / 60min", "10 / 1h", "100 / 1d", "0.5", "7 / 13s"}
	for _, ver := range versions {
		compared, limited, heavy := 0, 0, 0
		for seq := 0; seq < 400; seq++ {
			rate := rates[rng.IntN(len(rates))]
			burst := float64(1 + rng.IntN(20))
			p := mustVersion(t, mustPolicy(t, rate, burst, Leaky, math.Inf(1)), ver.v)
			perMs := p.Limit().Rate.PerSecond() / 1000
			ref := ver.ref()
			var b Bucket
			var ms int64
			period := p.Limit().Rate.Per.Milliseconds()
			for i := 0; i < 200; i++ {
				ms += rng.Int64N(period/int64(1+rng.IntN(20)) + 1)
				n := float64(1 + rng.IntN(3))
				if rng.IntN(20) == 0 {
					n = float64(1 + rng.IntN(int(2*burst)))
				}
				probe := b
				p.Update(&probe, at(ms), 0, Scale{})
				refLimited, cmp := ref.check(ms, perMs, burst, n)
				nearlyEmpty := func(l float64) bool { return l > 0 && l < 1e-6 }
				if ref.started() && (math.Abs(cmp-burst) < 1e-6 || nearlyEmpty(ref.level()) || nearlyEmpty(probe.Level)) {
					break
				}
				if !refLimited {
					ref.update(ms, n)
				}
				got := p.Update(&b, at(ms), n, Scale{})
				if got.Limited != refLimited || math.Abs(got.Level-ref.level()) > 1e-6*math.Max(1, burst) {
					t.Fatalf("%v seq %d (%s burst %v) event %d at %dms n=%v: got %+v, rspamd limited=%v level=%v",
						ver.v, seq, rate, burst, i, ms, n, got, refLimited, ref.level())
				}
				compared++
				if refLimited {
					limited++
				}
				if n > burst {
					heavy++
				}
			}
		}
		if compared < 20000 || limited < 2000 || heavy < 100 {
			t.Fatalf("%v: too little coverage: %d events compared, %d limited, %d heavier than the burst", ver.v, compared, limited, heavy)
		}
	}
}

func TestStrictVersusLeaky(t *testing.T) {
	// 10 per hour, burst 10, a client sends 1000 messages in one go and
	// then one message an hour later.
	for _, tc := range []struct {
		mode      Mode
		capLevel  float64
		laterOK   bool // is the message an hour later accepted?
		peakLevel float64
	}{
		{Leaky, 0, true, 10},
		{Strict, 0, false, 20},             // clipped at burst+10; one hour leaks 10, 10+1 > 10
		{Strict, math.Inf(1), false, 1000}, // Exim's unbounded strict: ~99 hours of lockout
	} {
		p := mustPolicy(t, "10 / 1h", 10, tc.mode, tc.capLevel)
		var b Bucket
		for i := 0; i < 1000; i++ {
			p.Update(&b, at(int64(i)), 1, Scale{})
		}
		if math.Abs(b.Level-tc.peakLevel) > 0.01 {
			t.Errorf("%v cap %v: level after the flood %v, want %v", tc.mode, tc.capLevel, b.Level, tc.peakLevel)
		}
		r := p.Update(&b, at(3600*1000+1000), 1, Scale{})
		if r.Limited == tc.laterOK {
			t.Errorf("%v cap %v: an hour later limited=%v, want %v", tc.mode, tc.capLevel, r.Limited, !tc.laterOK)
		}
	}
}

// TestClipRecovery checks the promise in the package doc: with the default
// clip a strict-mode client that stops is accepted again about one period
// (plus one message interval) after its last attempt, however hard it
// hammered.
func TestClipRecovery(t *testing.T) {
	for _, rate := range []string{"1 / 1min", "30 / 60min", "100 / 1d"} {
		p := mustPolicy(t, rate, 5, Strict, 0)
		per := p.Limit().Rate.Per
		interval := time.Duration(float64(time.Second) / p.Limit().Rate.PerSecond())
		var b Bucket
		last := epoch
		for i := 0; i < 100000; i++ {
			last = epoch.Add(time.Duration(i) * time.Millisecond)
			p.Update(&b, last, 1, Scale{})
		}
		probe := b
		if r := p.Update(&probe, last.Add(per), 1, Scale{}); !r.Limited {
			t.Errorf("%s: accepted after exactly one period, level %v; the clip should keep it limited a little longer", rate, r.Level)
		}
		probe = b
		if r := p.Update(&probe, last.Add(per+interval+time.Millisecond), 1, Scale{}); r.Limited {
			t.Errorf("%s: still limited one period plus one interval after the flood: %+v", rate, r)
		}
	}
}

func TestClockBackwards(t *testing.T) {
	p := mustPolicy(t, "1 / 1s", 3, Leaky, 0)
	var b Bucket
	p.Update(&b, at(10000), 2, Scale{})
	r := p.Update(&b, at(7000), 1, Scale{})
	if r.Backwards != 3*time.Second || r.Leaked != 0 || r.Level != 3 || r.Limited {
		t.Fatalf("backwards update: %+v", r)
	}
	if b.Last != at(10000).UnixNano() {
		t.Fatalf("last moved backwards to %v", time.Unix(0, b.Last))
	}
	// The interval 7s..10s must not leak again: at 11s only 1s has leaked.
	r = p.Update(&b, at(11000), 0, Scale{})
	if r.Backwards != 0 || math.Abs(r.Leaked-1) > 1e-9 || math.Abs(r.Level-2) > 1e-9 {
		t.Fatalf("after recovery: %+v", r)
	}
}

func TestScale(t *testing.T) {
	p := mustPolicy(t, "1 / 1s", 2, Leaky, 0)
	var b Bucket
	p.Update(&b, at(0), 2, Scale{})
	if r := p.Update(&b, at(0), 1, Scale{Burst: 1.5}); r.Limited {
		t.Fatalf("burst x1.5 = 3 should admit a third message: %+v", r)
	}
	if r := p.Update(&b, at(500), 1, Scale{Rate: 2, Burst: 1.5}); r.Limited || math.Abs(r.Leaked-1) > 1e-9 {
		t.Fatalf("rate x2 over 0.5s should leak 1: %+v", r)
	}
	// Nonsense multipliers are ignored rather than poisoning the level.
	for _, s := range []Scale{{Rate: math.NaN()}, {Burst: -1}, {Rate: math.Inf(1)}} {
		c := b
		if r := p.Update(&c, at(1500), 1, s); math.IsNaN(r.Level) || math.IsInf(r.Level, 0) {
			t.Fatalf("scale %+v produced %+v", s, r)
		}
	}
}

func TestNewPolicyErrors(t *testing.T) {
	good := Limit{Rate: Rate{Count: 1, Per: time.Second}, Burst: 5}
	for name, tc := range map[string]struct {
		lim      Limit
		mode     Mode
		capLevel float64
	}{
		"zero burst":    {Limit{Rate: good.Rate}, Leaky, 0},
		"NaN burst":     {Limit{Rate: good.Rate, Burst: math.NaN()}, Leaky, 0},
		"zero rate":     {Limit{Burst: 5}, Leaky, 0},
		"bad mode":      {good, Mode(7), 0},
		"cap below":     {good, Strict, 4},
		"NaN cap":       {good, Strict, math.NaN()},
		"negative rate": {Limit{Rate: Rate{Count: -1, Per: time.Second}, Burst: 5}, Leaky, 0},
	} {
		if _, err := NewPolicy(tc.lim, tc.mode, tc.capLevel); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if p, err := NewPolicy(good, Strict, 0); err != nil || p.Cap() != 6 {
		t.Errorf("default cap = %v, %v; want burst+count = 6", p.Cap(), err)
	}
}
