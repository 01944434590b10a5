package bucket

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// A Window counts, per key, the sum of event weights in the last
// WindowConfig.Window: the sliding-window policy of mail providers such as
// Kolab's (per sender and per account, messages and recipients in the last
// 60 minutes; at the limit the submission is deferred, at limit × suspend
// factor the account is suspended), where a leaky bucket would let a
// sender who waited half the window send half the limit again.
//
// An event is inside the window at now when it happened at or after
// now − Window (Kolab's SQL `updated_at >= now - 1 hour`), so an event
// exactly one window old still counts and slides out the nanosecond after.
// Events at the same nanosecond are merged into one.
//
// Add always records the event, whatever the result says: the window
// counts what the caller reports, and a caller that must not count refused
// submissions does not Add them (or adds them with weight 0, which only
// reads the window).
//
// Memory per key is bounded by Keep, see Window.Add. Sums are kept as
// float64; integer weights (messages, recipients) are exact.
type Window struct {
	cfg  WindowConfig
	keys lru[windowKey]
}

// WindowConfig describes a Window.
type WindowConfig struct {
	Window time.Duration // the span counted, e.g. 60 minutes; > 0
	// Keep is the largest total the caller compares against (Kolab:
	// limit × suspend factor); totals are exact up to at least this value,
	// and above it they may read lower than the truth but never below Keep.
	Keep float64
	// MaxEntries bounds the number of keys; 0 means DefaultMaxEntries.
	// Beyond it OnFull applies, as in a Table.
	MaxEntries int
	OnFull     OnFull
}

// WindowResult describes one Add.
type WindowResult struct {
	// Before is the sum of earlier events inside the window, exact up to
	// Keep (a value of at least Keep means at least Keep).
	Before float64
	// Total is Before plus this event's weight.
	Total float64
	// Untracked is true when the window was full of keys with events
	// inside their window and this key was not stored; Over then reports
	// according to WindowConfig.OnFull.
	Untracked bool
	// Backwards is how far now was before the key's newest event (the
	// clock stepped back, or logs of two hosts interleave); nothing slides
	// then, and the event is counted at the newest event's time.
	Backwards time.Duration

	failClosed bool // untracked under FailClosed: every limit is over
}

// Over reports whether this event is over limit in Kolab's reading: the
// submission is refused when at least limit was already sent in the window
// (`count >= max` over the earlier requests), so with a limit of 10
// messages the 11th within the window is the first one over. Asking with
// limit × suspend factor gives the suspension threshold. limit must not
// exceed Keep for the answer to be exact. An untracked key under
// FailClosed is over every limit.
func (r WindowResult) Over(limit float64) bool {
	return r.failClosed || r.Before >= limit
}

// WindowEvent is one stored event: at At, weight N.
type WindowEvent struct {
	At time.Time
	N  float64
}

// WindowState is one key's stored events, oldest first, as exported by
// Snapshot and read by Restore.
type WindowState struct {
	Key    string
	Events []WindowEvent
}

// windowEvent is WindowEvent in 16 bytes.
type windowEvent struct {
	at int64 // Unix nanoseconds
	n  float64
}

// windowKey is one key's events, oldest first, their sum and the latest
// time the key was added to (the window's end; it never moves back).
type windowKey struct {
	events []windowEvent
	sum    float64
	last   int64
}

// NewWindow validates cfg and returns an empty window.
func NewWindow(cfg WindowConfig) (*Window, error) {
	if cfg.Window <= 0 {
		return nil, fmt.Errorf("bucket window: window %v must be positive: %w", cfg.Window, ErrInvalidLimit)
	}
	if !(cfg.Keep > 0) || math.IsInf(cfg.Keep, 0) {
		return nil, fmt.Errorf("bucket window: keep %v must be a positive finite number: %w", cfg.Keep, ErrInvalidLimit)
	}
	keys, err := newLRU[windowKey](cfg.MaxEntries, cfg.OnFull)
	if err != nil {
		return nil, fmt.Errorf("bucket window: %w", err)
	}
	cfg.MaxEntries = keys.max
	return &Window{cfg: cfg, keys: keys}, nil
}

// Config returns the window's configuration, with MaxEntries resolved.
func (w *Window) Config() WindowConfig { return w.cfg }

// Len returns the number of tracked keys.
func (w *Window) Len() int { return w.keys.len() }

// Stats returns the window's counters. Evicted counts keys forgotten
// because all their events had slid out of the window.
func (w *Window) Stats() Stats { return w.keys.statsNow() }

// Add records an event of weight n (negative or NaN counts as 0; 0 only
// reads) for key at now and reports the window's sums.
//
// A key keeps only its newest events whose sum reaches Keep; older ones are
// dropped. That changes no answer up to Keep. Events are kept in time
// order, and a window is always a time suffix of them, so take any later
// now and let t0 be the time of the oldest kept event. If t0 is still inside
// the window, every kept event is, and the kept sum, which is at least Keep,
// is counted: the true sum is larger still, and both read as "at least
// Keep". If t0 has slid out, so has every dropped event (each is at t0 or
// earlier), and the kept events inside the window are exactly the true
// ones. TestWindowMatchesNaive checks this against an unbounded reference.
// So a key holds at most the events needed to reach Keep plus one, and a
// key whose events all slid out holds none and may be evicted.
func (w *Window) Add(key string, now time.Time, n float64) WindowResult {
	if !(n > 0) {
		n = 0
	}
	ns := now.UnixNano()
	k, ok := w.keys.lookup(key)
	if !ok {
		if n == 0 {
			return WindowResult{}
		}
		k = w.keys.insert(key, func(old *windowKey) bool { return w.idle(old, ns) })
		if k == nil {
			return WindowResult{Total: n, Untracked: true, failClosed: w.keys.onFull == FailClosed}
		}
		k.last = ns
	}

	var r WindowResult
	if ns < k.last {
		r.Backwards = time.Duration(k.last - ns)
		w.keys.stats.ClockBackwards++
		ns = k.last
	}
	k.last = ns
	w.slide(k, ns)
	r.Before = k.sum
	r.Total = k.sum + n
	if n == 0 {
		return r
	}
	if len(k.events) > 0 && k.events[len(k.events)-1].at == ns {
		k.events[len(k.events)-1].n += n
	} else {
		k.events = append(k.events, windowEvent{at: ns, n: n})
	}
	k.sum += n
	w.trim(k)
	return r
}

// slidOut reports whether an event at at is outside the window at now.
func (w *Window) slidOut(at, now int64) bool {
	return at < now-int64(w.cfg.Window)
}

// idle reports whether none of k's events is inside the window at now, so
// forgetting k changes no answer.
func (w *Window) idle(k *windowKey, now int64) bool {
	return len(k.events) == 0 || w.slidOut(k.events[len(k.events)-1].at, now)
}

// slide drops the events that are outside the window at now.
func (w *Window) slide(k *windowKey, now int64) {
	i := 0
	for i < len(k.events) && w.slidOut(k.events[i].at, now) {
		k.sum -= k.events[i].n
		i++
	}
	w.drop(k, i)
}

// trim drops the oldest events while the newer ones alone reach Keep.
func (w *Window) trim(k *windowKey) {
	i := 0
	for i < len(k.events)-1 && k.sum-k.events[i].n >= w.cfg.Keep {
		k.sum -= k.events[i].n
		i++
	}
	w.drop(k, i)
}

// drop removes the first i events. The slice is resliced, not copied: the
// dropped prefix is released when append next needs a larger array, so a
// key's array is at most about twice what it holds.
func (w *Window) drop(k *windowKey, i int) {
	if i == 0 {
		return
	}
	k.events = k.events[i:]
	if len(k.events) == 0 {
		k.events, k.sum = nil, 0 // also clears any rounding left in the sum
	}
}

// Snapshot returns every tracked key that has stored events, with them,
// least recently used first, so that Restore of the same slice rebuilds the
// same LRU order.
func (w *Window) Snapshot() []WindowState {
	out := make([]WindowState, 0, w.keys.len())
	w.keys.oldestFirst(func(key string, k *windowKey) {
		if len(k.events) == 0 {
			return // nothing left to count
		}
		evs := make([]WindowEvent, len(k.events))
		for i, e := range k.events {
			evs[i] = WindowEvent{At: time.Unix(0, e.at), N: e.n}
		}
		out = append(out, WindowState{Key: key, Events: evs})
	})
	return out
}

// Restore replaces the window's contents with states, for example loaded
// from the caller's database at startup. A state is invalid, skipped and
// reported in the error (the valid ones are restored anyway) when it has
// no events, or an event with a weight that is not a positive finite
// number or an unrepresentable time. Events are put in time order and
// trimmed to Keep; keys are ordered by their newest event; when a key
// appears twice the later state wins; when there are more keys than the
// bound the most recent are kept. It returns the number of keys restored.
func (w *Window) Restore(states []WindowState) (int, error) {
	w.keys.reset()
	type item struct {
		key    string
		events []windowEvent
	}
	valid := make([]item, 0, len(states))
	skipped := 0
	var firstBad string
	for _, st := range states {
		evs, err := restoreEvents(st.Events)
		if err != nil {
			if skipped == 0 {
				firstBad = fmt.Sprintf("key %q: %v", st.Key, err)
			}
			skipped++
			continue
		}
		valid = append(valid, item{key: st.Key, events: evs})
	}
	valid = restoreOrder(valid, w.keys.max, func(it *item) string { return it.key },
		func(it *item) int64 { return it.events[len(it.events)-1].at })
	for _, it := range valid {
		k := w.keys.insert(it.key, nil) // never full: restoreOrder kept at most the bound
		k.events, k.last = it.events, it.events[len(it.events)-1].at
		for _, e := range it.events {
			k.sum += e.n
		}
		w.trim(k)
	}
	if skipped > 0 {
		return len(valid), fmt.Errorf("bucket window restore: skipped %d invalid state(s), first: %s", skipped, firstBad)
	}
	return len(valid), nil
}

// restoreEvents validates and converts one key's events, sorted by time
// with events at the same nanosecond merged.
func restoreEvents(in []WindowEvent) ([]windowEvent, error) {
	if len(in) == 0 {
		return nil, fmt.Errorf("no events")
	}
	out := make([]windowEvent, 0, len(in))
	for _, e := range in {
		if !(e.N > 0) || math.IsInf(e.N, 0) || !representable(e.At) {
			return nil, fmt.Errorf("event at %v weight %v", e.At, e.N)
		}
		out = append(out, windowEvent{at: e.At.UnixNano(), n: e.N})
	}
	slices.SortStableFunc(out, func(a, b windowEvent) int {
		switch {
		case a.at < b.at:
			return -1
		case a.at > b.at:
			return 1
		}
		return 0
	})
	merged := out[:1]
	for _, e := range out[1:] {
		if last := &merged[len(merged)-1]; last.at == e.at {
			last.n += e.n
		} else {
			merged = append(merged, e)
		}
	}
	return merged, nil
}
