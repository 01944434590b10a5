// Package bucket is mailjail's rate core: rspamd's leaky bucket, reproduced
// so that mailjail can track the same rates from logs (log-only, after the
// fact) and agree with rspamd about who was over a limit, plus a bounded
// table that keeps a hostile flood of distinct keys from exhausting memory,
// and a sliding-window counter (Window) for providers' "N messages or
// recipients in the last hour" policies.
//
// The package is pure: time comes in as time.Time arguments, nothing
// sleeps, reads files or talks to Redis. A Table or Window is not safe for
// concurrent use; the daemon owns it from one goroutine.
//
// # Formula
//
// It follows rspamd's ratelimit plugin (src/plugins/lua/ratelimit.lua) and
// its two Redis scripts, read in rspamd 3.4 (tag 3.4, commit 05da2709, the
// version Debian 12 ships and the e2e suite runs; the scripts are strings
// inside the plugin there) and in rspamd 4.1.5 (tag 4.1.5, commit 9a291a4a,
// the newest release; the scripts are lualib/redis_scripts/ratelimit_*.lua
// since 3.6).
//
// Weight. Every bucket of a message (ip, user, from, to, a selector...) is
// filled by the same n: the number of SMTP envelope recipients,
// task:has_recipients('smtp'), at least 1; a bucket configured with
// skip_recipients = true is filled by 1 instead (3.4 ratelimit.lua:639-642
// and 654-655 for the check, 681-684 and 714-715 for the update; 4.1.5
// ratelimit.lua:454-457, 469-472, 543-546, 576-579). The bucket kind makes
// no difference: a `to` bucket is keyed by the principal recipient only but
// still filled by every recipient.
//
// When. The check is the prefilter RATELIMIT_CHECK (3.4 ratelimit.lua:868-877,
// 4.1.5:742-751); the update is the idempotent symbol RATELIMIT_UPDATE (3.4
// ratelimit.lua:913-919, 4.1.5:787-793), which runs at the end of the same
// scan and does nothing when the task has a pre-result, such as the soft
// reject of a limited bucket (3.4 ratelimit.lua:674-678, 4.1.5:535-540). With
// Postfix's milter the scan starts at the end of DATA, so both happen there
// (Postfix logs `milter-reject: END-OF-MESSAGE`); nothing is checked at
// connect, MAIL or RCPT time. The check's time is the clock when it runs
// (3.4:647-648, 4.1.5:462-463); the update's time is the clock again in 3.4
// (3.4:701-702, so the scan's own duration never leaks) and the task's start
// in 4.1.5 (task:get_timeval(true), 4.1.5:563-564, so it leaks twice).
// Neither matters for a model that gives a message one time, well below the
// resolution of a rate of messages per minute.
//
// Per bucket rspamd stores a level b and the time of the last change l (and
// from 3.5 a pending count p). For a message of weight n at time now:
//
//	new bucket:       allow; the check writes b = 0, l = now and the update adds n (3.4 ratelimit.lua:74-82 and 192;
//	                  4.1.5 ratelimit_check.lua:37-42, ratelimit_update.lua:93-97): the first message is never limited
//	leak:             if b > 0 and l < now: b -= min(b, rate*dr*(now-l)); l = now
//	                  (3.4 ratelimit.lua:87-98; 4.1.5 ratelimit_check.lua:58-80)
//	limited, 3.4:     b > 0 and b + n > burst*db                 (3.4 ratelimit.lua:103)
//	limited, >= 3.6:  b + p + n > burst*db                       (4.1.5 ratelimit_check.lua:54, 96-97)
//	not limited:      the update adds n: b += n, l = now         (3.4 ratelimit.lua:192-193; 4.1.5 ratelimit_update.lua:93-105)
//	limited:          nothing is added; the leak above stays written
//
// rate is Limit.Rate in messages per unit of time, burst is Limit.Burst and
// dr/db are rspamd's dynamic multipliers (1 unless configured; see Scale).
// The comparison is strict: a message that fills the bucket exactly to the
// burst is allowed. The releases differ in two ways:
//
//   - A message heavier than the burst on an empty bucket (fully leaked, or
//     b = 0): 3.4 lets it through (the `b > 0 and` guard), 3.6 and later
//     limit it, so there a message with more recipients than the burst can
//     only ever pass as the first one of a new bucket. Version selects which
//     (Config.Rspamd, Policy.ForRspamd); the zero Version is 3.6 and later.
//   - Pending (3.5 and later): p counts the recipients of messages that
//     passed the check and are still being scanned, so concurrent messages
//     see each other. Replaying a log sequentially nothing is pending, p = 0.
//     rspamd 3.5 alone also counted n twice (b + p + n + n, fixed in 3.6 by
//     commit 092940ed5); that release is not reproduced.
//
// # Strict, leaky and the clip
//
// rspamd does not run the update script for a message it soft-rejected, so
// a rejected attempt does not fill the bucket: Exim calls this "leaky"
// accounting and it is the zero Mode. In Strict mode a rejected attempt is
// added too, so a client that keeps hammering stays limited; to avoid Exim's
// weeks-long lockout after a burst of thousands of attempts, the stored level
// is clipped at Policy.Cap, by default burst + one period's worth of leak
// (burst + Rate.Count), so that a client stops being limited roughly one
// period (plus one message interval) after it stops trying.
//
// # Clock
//
// If now is before the bucket's last update (the host clock stepped back or
// logs from two hosts interleave), nothing leaks and the last-update time is
// kept, instead of rspamd's behaviour of writing the older time back and
// leaking the same interval twice later. Result.Backwards reports by how much
// so the caller can log it.
//
// # Memory and speed
//
// The table keeps each key in a slice of 40-byte entries (key header, level,
// last-update nanoseconds, int32 LRU links) indexed by a map[string]int32,
// so a key costs one small string allocation and no per-entry pointers
// beyond it. BenchmarkTable1MKeys (1,000,000 distinct dotted-IPv4 keys
// through a table bounded at 100,000, go1.26, linux/amd64, AMD EPYC, 2
// shared vCPUs) measures about 126 bytes of live heap per retained key
// (entry 40, key bytes 16, map the rest) and 1.8 million inserts per second
// including eviction; BenchmarkTableUpdate measures about 130 ns, 7.5
// million updates per second, for existing keys with no allocation.
//
// A Window (window.go) keeps per key a 64-byte slot and its events at 16
// bytes each, at most those needed to reach WindowConfig.Keep.
// BenchmarkWindow1MEvents (1,000,000 events over 100,000 keys, a one-hour
// window sliding over two hours, same machine while shared with other
// work, when BenchmarkTable1MKeys gave 0.8 million inserts per second)
// measures about 1.7 µs per event, dominated by cache misses of random keys,
// and 256 bytes of live heap per key, both with Keep 20 and weight 1 and
// with Keep 500 and weights 1 to 4.
package bucket

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// Mode selects whether attempts that are over the limit still fill the
// bucket (Exim's /strict and /leaky).
type Mode uint8

const (
	// Leaky does not count rejected attempts, like rspamd; a client that
	// keeps trying still gets a message through whenever enough has leaked.
	Leaky Mode = iota
	// Strict counts rejected attempts too, clipped at Policy.Cap, so a
	// client has to actually stop before it falls below the limit.
	Strict
)

// String returns "leaky" or "strict".
func (m Mode) String() string {
	switch m {
	case Leaky:
		return "leaky"
	case Strict:
		return "strict"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// Version is the rspamd release line whose check script a Policy follows;
// see the package documentation for where they differ.
type Version uint8

const (
	// Rspamd36 is rspamd 3.6 and later (4.x included): an empty bucket
	// limits a message heavier than the burst.
	Rspamd36 Version = iota
	// Rspamd34 is rspamd 2.0 to 3.4: an empty bucket admits any one message.
	Rspamd34
)

// String returns "rspamd-3.6" or "rspamd-3.4".
func (v Version) String() string {
	switch v {
	case Rspamd36:
		return "rspamd-3.6"
	case Rspamd34:
		return "rspamd-3.4"
	}
	return "Version(" + strconv.Itoa(int(v)) + ")"
}

// Scale multiplies a limit for one update. It is the hook for rspamd's
// dynamic multipliers (dr and db, nudged by ham/spam verdicts within
// max_rate_mult and max_bucket_mult): the caller keeps and caps them and
// passes the current values. Zero, negative or NaN fields mean 1, so the
// zero Scale leaves the limit unchanged.
type Scale struct {
	Rate  float64 // multiplies Limit's leak rate (rspamd's dr)
	Burst float64 // multiplies Limit.Burst (rspamd's db)
}

func (s Scale) factors() (rate, burst float64) {
	rate, burst = 1, 1
	if s.Rate > 0 && !math.IsInf(s.Rate, 0) {
		rate = s.Rate
	}
	if s.Burst > 0 && !math.IsInf(s.Burst, 0) {
		burst = s.Burst
	}
	return rate, burst
}

// Bucket is the state of one bucket. The zero Bucket is a bucket that does
// not exist yet (rspamd: no Redis hash for the key).
type Bucket struct {
	Level float64 // messages in the bucket after the last update
	Last  int64   // Unix nanoseconds of the last update; 0 with Level 0 means new
}

// Result describes one update.
type Result struct {
	// Limited is true when the event is over the limit (rspamd would have
	// soft-rejected it).
	Limited bool
	// Level is the bucket level after this update.
	Level float64
	// Leaked is how much drained since the previous update.
	Leaked float64
	// Backwards is how far now was before the bucket's last update; when
	// positive nothing leaked.
	Backwards time.Duration
	// New is true when the key had no bucket; rspamd never limits it.
	New bool
	// Untracked is true when a Table was full of active keys and did not
	// store this key; Limited then reflects Config.OnFull.
	Untracked bool
}

// Policy is a limit plus how to account for it. Use NewPolicy or a Table
// built from a Config; the zero Policy is not usable.
type Policy struct {
	limit      Limit
	mode       Mode
	perNano    float64 // leak per nanosecond
	cap        float64
	defaultCap bool
	version    Version
}

// NewPolicy validates lim and returns a Policy. capLevel clips the stored
// level; 0 selects the default burst + Rate.Count (one period of leak
// above the limit), math.Inf(1) disables the clip (Exim's unbounded
// strict mode). A finite capLevel must be at least the burst.
func NewPolicy(lim Limit, mode Mode, capLevel float64) (Policy, error) {
	if err := lim.Validate(); err != nil {
		return Policy{}, fmt.Errorf("bucket policy: %w", err)
	}
	if mode != Leaky && mode != Strict {
		return Policy{}, fmt.Errorf("bucket policy: unknown mode %d: %w", mode, ErrInvalidLimit)
	}
	p := Policy{limit: lim, mode: mode, perNano: lim.Rate.PerSecond() / 1e9, cap: capLevel}
	switch {
	case capLevel == 0:
		p.cap, p.defaultCap = lim.Burst+lim.Rate.Count, true
	case math.IsNaN(capLevel) || capLevel < lim.Burst:
		return Policy{}, fmt.Errorf("bucket policy: cap %v must be at least the burst %v (or 0 for the default): %w", capLevel, lim.Burst, ErrInvalidLimit)
	}
	return p, nil
}

// ForRspamd returns p following release line v instead of the default
// Rspamd36.
func (p Policy) ForRspamd(v Version) (Policy, error) {
	if v != Rspamd36 && v != Rspamd34 {
		return Policy{}, fmt.Errorf("bucket policy: unknown rspamd version %d: %w", v, ErrInvalidLimit)
	}
	p.version = v
	return p, nil
}

// Rspamd returns the release line the policy follows.
func (p Policy) Rspamd() Version { return p.version }

// Limit returns the policy's limit.
func (p Policy) Limit() Limit { return p.limit }

// Mode returns the policy's accounting mode.
func (p Policy) Mode() Mode { return p.mode }

// Cap returns the level at which the stored level is clipped.
func (p Policy) Cap() float64 { return p.cap }

// Update applies an event of weight n (messages or recipients; negative or
// NaN counts as 0) at now to b and reports the outcome. See the package
// documentation for the formula.
func (p Policy) Update(b *Bucket, now time.Time, n float64, s Scale) Result {
	isNew := b.Level == 0 && b.Last == 0
	return p.update(b, now.UnixNano(), n, s, isNew)
}

func (p Policy) update(b *Bucket, now int64, n float64, s Scale, isNew bool) Result {
	if !(n > 0) {
		n = 0
	}
	rs, bs := s.factors()
	burst := p.limit.Burst * bs
	capLevel := p.cap
	if p.defaultCap {
		capLevel = burst + p.limit.Rate.Count*rs
	}
	if capLevel < burst {
		// A larger Scale.Burst must not let the clip cut off messages the
		// scaled limit allows.
		capLevel = burst
	}
	if isNew {
		b.Level, b.Last = math.Min(n, capLevel), now
		return Result{Level: b.Level, New: true}
	}
	var r Result
	if now < b.Last {
		r.Backwards = time.Duration(b.Last - now)
	} else if b.Level > 0 {
		leaked := float64(now-b.Last) * p.perNano * rs
		if leaked > b.Level {
			leaked = b.Level
		}
		b.Level -= leaked
		r.Leaked = leaked
	}
	if !(b.Level >= 0) { // NaN or negative from a restored snapshot
		b.Level = 0
	}
	// rspamd 3.4 only compares when something is left after the leak
	// (ratelimit.lua:103 there); 3.6 compares always.
	r.Limited = b.Level+n > burst && (b.Level > 0 || p.version != Rspamd34)
	if !r.Limited || p.mode == Strict {
		b.Level = math.Min(b.Level+n, capLevel)
	}
	if now > b.Last {
		b.Last = now
	}
	r.Level = b.Level
	return r
}

// idle reports whether b has fully drained by now, so forgetting it loses
// nothing: a drained bucket limits exactly like a missing one, except under
// Rspamd36 for a single event heavier than the burst (a missing bucket
// admits it, an empty one does not); Rspamd34 admits it in both cases.
func (p Policy) idle(level float64, last, now int64) bool {
	if level <= 0 {
		return true
	}
	if now <= last {
		return false
	}
	return float64(now-last)*p.perNano >= level
}
