package bucket

import (
	"fmt"
	"math"
	"slices"
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

// nilIndex terminates the LRU list.
const nilIndex int32 = -1

// entry is kept small on purpose: at 100k keys every byte here is 100 kB.
// The LRU list is threaded through the slice by int32 index so that entries
// are not separately allocated and hold no pointers besides the key.
type entry struct {
	key        string
	level      float64
	last       int64 // Unix nanoseconds
	prev, next int32 // towards head (more recent) and tail (less recent)
}

// Table is a bounded set of leaky buckets keyed by string (an address, a
// SASL user, a sender...), all sharing one Policy. It is not safe for
// concurrent use.
type Table struct {
	policy     Policy
	max        int
	onFull     OnFull
	index      map[string]int32
	entries    []entry
	head, tail int32 // most and least recently used
	stats      Stats
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
	maxEntries := cfg.MaxEntries
	switch {
	case maxEntries == 0:
		maxEntries = DefaultMaxEntries
	case maxEntries < 0 || maxEntries > math.MaxInt32:
		return nil, fmt.Errorf("bucket table: max entries %d out of range 1..%d: %w", maxEntries, math.MaxInt32, ErrInvalidLimit)
	}
	if cfg.OnFull != FailOpen && cfg.OnFull != FailClosed {
		return nil, fmt.Errorf("bucket table: unknown on-full policy %d: %w", cfg.OnFull, ErrInvalidLimit)
	}
	t := &Table{policy: p, max: maxEntries, onFull: cfg.OnFull}
	t.reset()
	return t, nil
}

func (t *Table) reset() {
	t.index = make(map[string]int32)
	t.entries = t.entries[:0]
	t.head, t.tail = nilIndex, nilIndex
}

// Policy returns the policy shared by every key.
func (t *Table) Policy() Policy { return t.policy }

// Len returns the number of tracked keys.
func (t *Table) Len() int { return len(t.index) }

// Stats returns the table's counters.
func (t *Table) Stats() Stats {
	s := t.stats
	s.Entries = len(t.index)
	return s
}

// Update records an event of weight n for key at now.
func (t *Table) Update(key string, now time.Time, n float64) Result {
	return t.UpdateScaled(key, now, n, Scale{})
}

// UpdateScaled is Update with the limit multiplied by s for this event
// (rspamd's dynamic rate and burst multipliers).
func (t *Table) UpdateScaled(key string, now time.Time, n float64, s Scale) Result {
	ns := now.UnixNano()
	if i, ok := t.index[key]; ok {
		e := &t.entries[i]
		b := Bucket{Level: e.level, Last: e.last}
		r := t.policy.update(&b, ns, n, s, false)
		e.level, e.last = b.Level, b.Last
		if r.Backwards > 0 {
			t.stats.ClockBackwards++
		}
		t.moveToFront(i)
		return r
	}

	var i int32
	if len(t.entries) < t.max {
		t.grow()
		t.entries = append(t.entries, entry{})
		i = int32(len(t.entries) - 1)
	} else {
		// Only the least recently used entry is considered: it is the one
		// most likely to have drained, and looking further would make a
		// full table cost O(n) per new key exactly when under attack.
		i = t.tail
		old := &t.entries[i]
		if !t.policy.idle(old.level, old.last, ns) {
			if t.onFull == FailClosed {
				t.stats.FailedClosed++
				return Result{Limited: true, Untracked: true}
			}
			t.stats.FailedOpen++
			return Result{Untracked: true}
		}
		delete(t.index, old.key)
		t.unlink(i)
		t.stats.Evicted++
	}
	var b Bucket
	r := t.policy.update(&b, ns, n, s, true)
	t.entries[i] = entry{key: key, level: b.Level, last: b.Last, prev: nilIndex, next: nilIndex}
	t.index[key] = i
	t.pushFront(i)
	return r
}

// Level returns key's level as it would be at now, without changing
// anything, and whether the key is tracked.
func (t *Table) Level(key string, now time.Time) (float64, bool) {
	i, ok := t.index[key]
	if !ok {
		return 0, false
	}
	e := t.entries[i]
	b := Bucket{Level: e.level, Last: e.last}
	ns := now.UnixNano()
	if ns > b.Last && b.Level > 0 {
		b.Level = math.Max(0, b.Level-float64(ns-b.Last)*t.policy.perNano)
	}
	return b.Level, true
}

// Snapshot returns every tracked bucket, least recently used first, so
// that Restore of the same slice rebuilds the same LRU order.
func (t *Table) Snapshot() []State {
	out := make([]State, 0, len(t.index))
	for i := t.tail; i != nilIndex; i = t.entries[i].prev {
		e := &t.entries[i]
		out = append(out, State{Key: e.key, Level: e.level, Last: time.Unix(0, e.last)})
	}
	return out
}

// minTime and maxTime bound what time.Time.UnixNano can represent.
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// Restore replaces the table's contents with states, for example loaded
// from the caller's database at startup. States are ordered by Last; when a
// key appears twice the later one wins; when there are more than the
// table's bound, the most recent are kept. Levels above the cap are clipped.
// States with a negative, NaN or infinite level or an unrepresentable time
// are skipped and reported in the error; the valid ones are restored anyway.
// It returns the number of keys restored.
func (t *Table) Restore(states []State) (int, error) {
	t.reset()
	type item struct {
		st  State
		ns  int64
		pos int
	}
	latest := make(map[string]int, len(states))
	items := make([]item, 0, len(states))
	skipped := 0
	var firstBad string
	for _, st := range states {
		if !(st.Level >= 0) || math.IsInf(st.Level, 0) || st.Last.Before(minTime) || st.Last.After(maxTime) {
			if skipped == 0 {
				firstBad = fmt.Sprintf("key %q level %v last %v", st.Key, st.Level, st.Last)
			}
			skipped++
			continue
		}
		if j, dup := latest[st.Key]; dup {
			items[j].pos = -1 // superseded
		}
		latest[st.Key] = len(items)
		items = append(items, item{st: st, ns: st.Last.UnixNano(), pos: len(items)})
	}
	items = slices.DeleteFunc(items, func(it item) bool { return it.pos < 0 })
	slices.SortStableFunc(items, func(a, b item) int {
		switch {
		case a.ns < b.ns:
			return -1
		case a.ns > b.ns:
			return 1
		}
		return 0
	})
	if len(items) > t.max {
		items = items[len(items)-t.max:]
	}
	for _, it := range items {
		level := math.Min(it.st.Level, math.Max(t.policy.cap, t.policy.limit.Burst))
		t.grow()
		t.entries = append(t.entries, entry{key: it.st.Key, level: level, last: it.ns, prev: nilIndex, next: nilIndex})
		i := int32(len(t.entries) - 1)
		t.index[it.st.Key] = i
		t.pushFront(i)
	}
	if skipped > 0 {
		return len(items), fmt.Errorf("bucket restore: skipped %d invalid state(s), first: %s", skipped, firstBad)
	}
	return len(items), nil
}

// grow makes room for one more entry, doubling but never beyond the bound:
// append's own growth would leave up to a quarter of a full table's slice
// unused for good.
func (t *Table) grow() {
	if len(t.entries) < cap(t.entries) {
		return
	}
	n := min(t.max, max(2*cap(t.entries), 64))
	grown := make([]entry, len(t.entries), n)
	copy(grown, t.entries)
	t.entries = grown
}

func (t *Table) pushFront(i int32) {
	e := &t.entries[i]
	e.prev, e.next = nilIndex, t.head
	if t.head != nilIndex {
		t.entries[t.head].prev = i
	}
	t.head = i
	if t.tail == nilIndex {
		t.tail = i
	}
}

func (t *Table) unlink(i int32) {
	e := &t.entries[i]
	if e.prev != nilIndex {
		t.entries[e.prev].next = e.next
	} else {
		t.head = e.next
	}
	if e.next != nilIndex {
		t.entries[e.next].prev = e.prev
	} else {
		t.tail = e.prev
	}
	e.prev, e.next = nilIndex, nilIndex
}

func (t *Table) moveToFront(i int32) {
	if t.head == i {
		return
	}
	t.unlink(i)
	t.pushFront(i)
}
