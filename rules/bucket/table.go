package bucket

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// DefaultMaxEntries bounds a Table when Config.MaxEntries is 0.
const DefaultMaxEntries = 100000

// OnFull says what a Table does with a new key when every slot holds a key
// that has not drained yet. Evicting such a key would reset a client that is
// being limited, which is exactly what an attacker flooding the table with
// fresh keys wants, so the table never does that; it either lets the new
// key through untracked or treats it as over the limit.
type OnFull uint8

const (
	// FailOpen lets new keys through unlimited and untracked while the
	// table is full (prosody's "allow overflow"). It is the default because
	// mailjail bans from these results: failing closed would let an
	// attacker who fills the table get innocent clients banned.
	FailOpen OnFull = iota
	// FailClosed reports new keys as over the limit while the table is full
	// (prosody's default).
	FailClosed
)

// String returns "fail-open" or "fail-closed".
func (o OnFull) String() string {
	switch o {
	case FailOpen:
		return "fail-open"
	case FailClosed:
		return "fail-closed"
	}
	return "OnFull(" + strconv.Itoa(int(o)) + ")"
}

// Config describes a Table.
type Config struct {
	Limit Limit
	Mode  Mode
	// Cap clips stored levels; 0 means burst + Limit.Rate.Count, see
	// NewPolicy.
	Cap float64
	// MaxEntries bounds the number of keys; 0 means DefaultMaxEntries.
	MaxEntries int
	OnFull     OnFull
	// Rspamd is the release line whose check the table follows; the zero
	// value is Rspamd36.
	Rspamd Version
}

// Stats are counters a caller can log or export as metrics.
type Stats struct {
	Entries        int    // keys currently tracked
	Evicted        uint64 // drained least-recently-used keys forgotten to make room
	FailedOpen     uint64 // new keys let through untracked because the table was full
	FailedClosed   uint64 // new keys reported limited because the table was full
	ClockBackwards uint64 // updates whose time was before the key's last update
}

// State is one key's bucket as exported by Snapshot and read by Restore.
type State struct {
	Key   string
	Level float64
	Last  time.Time
}

// level is what a Table keeps per key: at 100k keys every byte here is
// 100 kB.
type level struct {
	level float64
	last  int64 // Unix nanoseconds
}

// Table is a bounded set of leaky buckets keyed by string (an address, a
// SASL user, a sender...), all sharing one Policy. It is not safe for
// concurrent use.
type Table struct {
	policy Policy
	keys   lru[level]
}

// NewTable validates cfg and returns an empty table.
func NewTable(cfg Config) (*Table, error) {
	p, err := NewPolicy(cfg.Limit, cfg.Mode, cfg.Cap)
	if err == nil {
		p, err = p.ForRspamd(cfg.Rspamd)
	}
	if err != nil {
		return nil, fmt.Errorf("bucket table: %w", err)
	}
	keys, err := newLRU[level](cfg.MaxEntries, cfg.OnFull)
	if err != nil {
		return nil, fmt.Errorf("bucket table: %w", err)
	}
	return &Table{policy: p, keys: keys}, nil
}

// Policy returns the policy shared by every key.
func (t *Table) Policy() Policy { return t.policy }

// Len returns the number of tracked keys.
func (t *Table) Len() int { return t.keys.len() }

// Stats returns the table's counters.
func (t *Table) Stats() Stats { return t.keys.statsNow() }

// Update records an event of weight n for key at now.
func (t *Table) Update(key string, now time.Time, n float64) Result {
	return t.UpdateScaled(key, now, n, Scale{})
}

// UpdateScaled is Update with the limit multiplied by s for this event
// (rspamd's dynamic rate and burst multipliers).
func (t *Table) UpdateScaled(key string, now time.Time, n float64, s Scale) Result {
	ns := now.UnixNano()
	e, ok := t.keys.lookup(key)
	if !ok {
		e = t.keys.insert(key, func(old *level) bool { return t.policy.idle(old.level, old.last, ns) })
		if e == nil {
			return Result{Limited: t.keys.onFull == FailClosed, Untracked: true}
		}
	}
	b := Bucket{Level: e.level, Last: e.last}
	r := t.policy.update(&b, ns, n, s, !ok)
	e.level, e.last = b.Level, b.Last
	if r.Backwards > 0 {
		t.keys.stats.ClockBackwards++
	}
	return r
}

// Level returns key's level as it would be at now, without changing
// anything, and whether the key is tracked.
func (t *Table) Level(key string, now time.Time) (float64, bool) {
	e, ok := t.keys.peek(key)
	if !ok {
		return 0, false
	}
	lvl := e.level
	ns := now.UnixNano()
	if ns > e.last && lvl > 0 {
		lvl = math.Max(0, lvl-float64(ns-e.last)*t.policy.perNano)
	}
	return lvl, true
}

// Snapshot returns every tracked bucket, least recently used first, so
// that Restore of the same slice rebuilds the same LRU order.
func (t *Table) Snapshot() []State {
	out := make([]State, 0, t.keys.len())
	t.keys.oldestFirst(func(key string, e *level) {
		out = append(out, State{Key: key, Level: e.level, Last: time.Unix(0, e.last)})
	})
	return out
}

// minTime and maxTime bound what time.Time.UnixNano can represent.
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// representable reports whether tm survives UnixNano.
func representable(tm time.Time) bool { return !tm.Before(minTime) && !tm.After(maxTime) }

// Restore replaces the table's contents with states, for example loaded
// from the caller's database at startup. States are ordered by Last; when a
// key appears twice the later one wins; when there are more than the
// table's bound, the most recent are kept. Levels above the cap are clipped.
// States with a negative, NaN or infinite level or an unrepresentable time
// are skipped and reported in the error; the valid ones are restored anyway.
// It returns the number of keys restored.
func (t *Table) Restore(states []State) (int, error) {
	t.keys.reset()
	valid := make([]State, 0, len(states))
	skipped := 0
	var firstBad string
	for _, st := range states {
		if !(st.Level >= 0) || math.IsInf(st.Level, 0) || !representable(st.Last) {
			if skipped == 0 {
				firstBad = fmt.Sprintf("key %q level %v last %v", st.Key, st.Level, st.Last)
			}
			skipped++
			continue
		}
		valid = append(valid, st)
	}
	valid = restoreOrder(valid, t.keys.max, func(s *State) string { return s.Key }, func(s *State) int64 { return s.Last.UnixNano() })
	capLevel := math.Max(t.policy.cap, t.policy.limit.Burst)
	for _, st := range valid {
		e := t.keys.insert(st.Key, nil) // never full: restoreOrder kept at most the bound
		*e = level{level: math.Min(st.Level, capLevel), last: st.Last.UnixNano()}
	}
	if skipped > 0 {
		return len(valid), fmt.Errorf("bucket restore: skipped %d invalid state(s), first: %s", skipped, firstBad)
	}
	return len(valid), nil
}
