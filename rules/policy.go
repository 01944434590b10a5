package rules

import (
	"math"
	"net/netip"
	"slices"
	"time"
)

// PolicyConfig is one jail's strike and ban policy, in fail2ban's words.
type PolicyConfig struct {
	MaxRetry int           // strikes inside FindTime that trigger a ban
	FindTime time.Duration // sliding window for strikes
	BanTime  time.Duration // first ban's length; negative means permanent
	Escalation
	Lookback time.Duration // how long an earlier ban counts toward escalation
	// Rand returns a number in [0, 1) for RndTime's random part: the core
	// has no randomness of its own, so the caller injects it (tests a
	// fixed one). Nil adds nothing.
	Rand func() float64
}

// Escalation is how a repeat offender's ban grows with its earlier bans
// inside the lookback, with fail2ban's bantime.* meanings.
type Escalation struct {
	// Increment turns escalation on (bantime.increment); off, every ban
	// is BanTime (PermanentAfter still applies).
	Increment bool
	// Factor is bantime.factor: the n-th ban (n-1 earlier ones) lasts
	// BanTime × Factor × 2^min(n-1, 20), never less than BanTime, as
	// fail2ban's default bantime.formula; with Multipliers, BanTime ×
	// Factor × Multipliers[n-1].
	Factor float64
	// Multipliers is bantime.multipliers: one per earlier-ban count, the
	// last repeating past the list's end; the first (no earlier ban) is
	// not used, as in fail2ban: a first ban is BanTime.
	Multipliers []float64
	// LegacyBase, when above 0, is mailjail's former bantime_factor, kept
	// for configurations written for it: BanTime × LegacyBase^(n-1).
	// Factor and Multipliers are then unused.
	LegacyBase float64
	MaxTime    time.Duration // bantime.maxtime: cap on an escalated ban; 0 means no cap
	// RndTime is bantime.rndtime: up to this much random time added to an
	// escalated ban, so a botnet cannot time its return.
	RndTime time.Duration
	// PermanentAfter makes the N-th ban inside the lookback permanent; 0
	// never does.
	PermanentAfter int
}

// MaxBan is the longest ban the policy gives that is not permanent (about
// a century): what an uncapped escalation saturates at, far from the
// overflow of a time.Duration or of a ban's end.
const MaxBan = 100 * 365 * 24 * time.Hour

// Decision is the policy's answer to one strike.
type Decision struct {
	Counted  bool          // false: stale (older than findtime) or address already banned
	Stale    bool          // not counted because it is older than findtime before now
	Count    int           // strikes inside findtime, this one included
	Ban      bool          // this strike reached maxretry: ban now
	Offense  int           // 1 for a first ban, n for the n-th inside Lookback
	Duration time.Duration // ban length (0 with Permanent)
	Until    time.Time     // ban end; zero when Permanent
}

// Permanent reports whether a ban decision has no end.
func (d Decision) Permanent() bool { return d.Ban && d.Until.IsZero() }

// Policy counts strikes per address and decides bans for one jail. It is
// not safe for concurrent use: the daemon feeds it from one goroutine.
//
// Memory follows the number of addresses holding strikes (a botnet can
// bring a million), so a window is kept small: the address as 16 bytes
// (no pointer, so the garbage collector need not scan the map) and strike
// times as seconds since 2000 in a uint32 slice (log timestamps have
// second resolution anyway). About 70 bytes per address with 3 strikes.
//
// K is what is counted: an AddrKey for a client address, a string for an
// account (one SASL login).
type Policy[K comparable] struct {
	cfg     PolicyConfig
	strikes map[K][]uint32 // newest MaxRetry strike times, ascending
	banned  map[K]int64    // active ban end (unix ns), 0 = permanent
	history *History[K]    // this policy's bans inside Lookback
	// overall, when set (ShareHistory), is the history of every jail's
	// bans: what escalation counts with bantime_overalljails.
	overall *History[K]
}

// AddrKey is an address as a map key without a pointer.
type AddrKey [16]byte

// KeyOf is a's key (IPv4-mapped IPv6 addresses are their IPv4 address).
func KeyOf(a netip.Addr) AddrKey { return a.Unmap().As16() }

// epoch2000 is the zero of strike times: uint32 seconds from it last
// until 2136.
const epoch2000 = 946684800

// secs converts a time to strike time, clamped to the representable range.
func secs(t time.Time) uint32 {
	s := t.Unix() - epoch2000
	switch {
	case s < 0:
		return 0
	case s > math.MaxUint32:
		return math.MaxUint32
	}
	return uint32(s)
}

// NewPolicy returns an empty policy for cfg.
func NewPolicy[K comparable](cfg PolicyConfig) *Policy[K] {
	return &Policy[K]{
		cfg:     cfg,
		strikes: make(map[K][]uint32),
		banned:  make(map[K]int64),
		history: NewHistory[K](cfg.Lookback),
	}
}

// ShareHistory makes p's escalation count the bans in h (the caller's
// history of every jail's bans, bantime_overalljails) instead of its
// own; nil goes back to its own. The caller records in h and prunes it.
func (p *Policy[K]) ShareHistory(h *History[K]) { p.overall = h }

// Config returns the policy's configuration.
func (p *Policy[K]) Config() PolicyConfig { return p.cfg }

// Strike records an event of k at time at, as seen at time now, and
// decides. An event older than findtime before now cannot contribute to
// a ban and is not counted; neither is an event from an address that is
// already banned (it is the ban working, not new misbehaviour).
func (p *Policy[K]) Strike(k K, at, now time.Time) Decision {
	if at.After(now) {
		// Clock skew between the logger and us: an event cannot be newer
		// than now for window purposes.
		at = now
	}
	if now.Sub(at) > p.cfg.FindTime {
		return Decision{Stale: true}
	}
	if p.IsBanned(k, now) {
		return Decision{}
	}
	n := p.add(k, secs(at), now)
	if n < p.cfg.MaxRetry {
		return Decision{Counted: true, Count: n}
	}
	return p.Ban(k, now, n)
}

// Ban decides a ban of k at now whatever its strikes (a rate far over its
// limit suspends at once), escalated as one at maxretry would be; count
// is what the decision reports as its strikes.
func (p *Policy[K]) Ban(k K, now time.Time, count int) Decision {
	d := Decision{Counted: true, Count: count, Ban: true}
	d.Offense = p.offense(k, now) + 1
	var rnd float64
	if p.cfg.Rand != nil {
		rnd = p.cfg.Rand()
	}
	d.Duration = p.cfg.BanLength(d.Offense-1, rnd)
	if d.Duration > 0 {
		d.Until = now.Add(d.Duration)
	}
	p.MarkBanned(k, now, d.Until)
	return d
}

// NextBan is what the next ban of a key would be.
type NextBan struct {
	Offense  int           // 1 for a first ban, n for the n-th inside Lookback
	Duration time.Duration // without the random part; 0 when Permanent
	// RndTime is the most the random part would add (0: none).
	RndTime   time.Duration
	Permanent bool
}

// Next is what the next ban of k would be at now. It changes nothing:
// for `mailjail show`.
func (p *Policy[K]) Next(k K, now time.Time) NextBan {
	earlier := p.offense(k, now)
	n := NextBan{Offense: earlier + 1, Duration: p.cfg.BanLength(earlier, 0)}
	n.Permanent = n.Duration == 0
	if !n.Permanent && p.cfg.escalates(earlier) {
		n.RndTime = p.cfg.RndTime
	}
	return n
}

// Restore loads a strike that was recorded before a restart; it counts
// toward the window but makes no decision.
func (p *Policy[K]) Restore(k K, at, now time.Time) {
	if now.Sub(at) <= p.cfg.FindTime && !p.IsBanned(k, now) {
		p.add(k, secs(at), now)
	}
}

// add inserts t into k's window and returns the number of strikes inside
// findtime before now. Only the newest MaxRetry times are kept: older
// ones can never again make a difference.
func (p *Policy[K]) add(k K, t uint32, now time.Time) int {
	w := p.strikes[k]
	i, _ := slices.BinarySearch(w, t)
	w = slices.Insert(w, i, t)
	drop := 0
	if max := p.cfg.MaxRetry; max > 0 && len(w) > max {
		drop = len(w) - max
	}
	if j, _ := slices.BinarySearch(w, p.cut(now)); j > drop {
		drop = j
	}
	if drop > 0 {
		// Shift down rather than reslice, so the array does not keep
		// growing at its end for a long-lived address.
		w = w[:copy(w, w[drop:])]
	}
	if len(w) == 0 {
		delete(p.strikes, k)
		return 0
	}
	p.strikes[k] = w
	return len(w)
}

// cut is the oldest strike time still inside findtime at now. A strike
// exactly findtime old still counts (strike times are whole seconds).
func (p *Policy[K]) cut(now time.Time) uint32 {
	return secs(now.Add(-p.cfg.FindTime))
}

// offense counts k's earlier bans inside Lookback before now: of this
// jail, or of every jail with overalljails.
func (p *Policy[K]) offense(k K, now time.Time) int {
	if p.overall != nil {
		return p.overall.Count(k, now, p.cfg.Lookback)
	}
	return p.history.Count(k, now, p.cfg.Lookback)
}

// escalates reports whether a ban after earlier bans is escalated: only
// with Increment and an earlier ban (fail2ban applies its formula, its
// maxtime and its rndtime to repeat bans only).
func (c PolicyConfig) escalates(earlier int) bool {
	return c.Increment && earlier > 0
}

// BanLength is the length of a ban after earlier bans inside the
// lookback, 0 for a permanent one; rnd in [0, 1) picks the random part.
// The order is fail2ban's: the formula (or the multipliers), then the cap
// at MaxTime, then the random time added, so a ban may exceed MaxTime by
// up to RndTime. The arithmetic is in float64, so a huge factor or count
// saturates (at MaxTime, else MaxBan) instead of wrapping around.
func (c PolicyConfig) BanLength(earlier int, rnd float64) time.Duration {
	if c.BanTime < 0 || c.PermanentAfter > 0 && earlier+1 >= c.PermanentAfter {
		return 0
	}
	if !c.escalates(earlier) {
		return c.BanTime
	}
	base := float64(c.BanTime)
	var f float64
	switch {
	case c.LegacyBase > 0:
		f = base * math.Pow(c.LegacyBase, float64(earlier))
	case len(c.Multipliers) > 0:
		f = base * c.Factor * c.Multipliers[min(earlier, len(c.Multipliers)-1)]
	default:
		f = max(base, base*c.Factor*float64(int64(1)<<min(earlier, 20)))
	}
	if math.IsNaN(f) || f < 1 {
		// Only a factor or a multiplier that validation rejects (0, a
		// negative number) gets here.
		f = base
	}
	limit := float64(MaxBan)
	if c.MaxTime > 0 {
		limit = min(limit, float64(c.MaxTime))
	}
	f = min(f, limit)
	if rnd > 0 && rnd < 1 {
		f += rnd * float64(max(c.RndTime, 0))
	}
	return time.Duration(min(f, float64(MaxBan)))
}

// MarkBanned records an active ban of k from since until until (zero until
// means permanent): the window is cleared, further strikes are ignored
// while it lasts, and it counts toward later escalation.
func (p *Policy[K]) MarkBanned(k K, since, until time.Time) {
	delete(p.strikes, k)
	var u int64
	if !until.IsZero() {
		u = until.UnixNano()
	}
	p.banned[k] = u
	p.RecordPastBan(k, since)
}

// RecordPastBan remembers a ban that started at since, for escalation.
func (p *Policy[K]) RecordPastBan(k K, since time.Time) {
	p.history.Record(k, since)
}

// Lift ends k's ban (expiry or unban) and clears its strikes, so that an
// unbanned address starts from zero.
func (p *Policy[K]) Lift(k K) {
	delete(p.banned, k)
	delete(p.strikes, k)
}

// IsBanned reports whether k has an active ban at now.
func (p *Policy[K]) IsBanned(k K, now time.Time) bool {
	u, ok := p.banned[k]
	return ok && (u == 0 || u > now.UnixNano())
}

// Strikes returns how many strikes k has inside findtime before now.
func (p *Policy[K]) Strikes(k K, now time.Time) int {
	w := p.strikes[k]
	j, _ := slices.BinarySearch(w, p.cut(now))
	return len(w) - j
}

// Prune forgets windows with no strike inside findtime, ban history older
// than Lookback and bans that ended, so memory follows the number of
// currently active addresses, not every address ever seen.
func (p *Policy[K]) Prune(now time.Time) {
	cut := p.cut(now)
	for k, w := range p.strikes {
		if w[len(w)-1] < cut {
			delete(p.strikes, k)
		}
	}
	p.history.Prune(now)
	n := now.UnixNano()
	for k, u := range p.banned {
		if u != 0 && u <= n {
			delete(p.banned, k)
		}
	}
}

// Tracked is the number of keys holding strikes.
func (p *Policy[K]) Tracked() int { return len(p.strikes) }
