package bucket

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

func mustWindow(t testing.TB, cfg WindowConfig) *Window {
	t.Helper()
	w, err := NewWindow(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func minute(m float64) time.Time { return epoch.Add(time.Duration(m * float64(time.Minute))) }

// Kolab's defaults as the brief gives them: 10 messages or 250 recipients
// per 60 minutes, suspension at twice that.
const (
	kolabMessages   = 10
	kolabRecipients = 250
	kolabSuspend    = 2
)

// TestWindowKolabPolicy plays Kolab's policy: one window counts messages
// (weight 1), the other recipients, both keyed by the sender.
func TestWindowKolabPolicy(t *testing.T) {
	type msg struct {
		at      float64 // minutes after epoch
		rcpts   float64
		defer_  bool // either window over its limit
		suspend bool // either window over limit × suspend factor
	}
	repeat := func(n int, first, step float64, rcpts float64, deferFrom, suspendFrom int) []msg {
		out := make([]msg, n)
		for i := range out {
			out[i] = msg{at: first + float64(i)*step, rcpts: rcpts, defer_: i >= deferFrom, suspend: i >= suspendFrom}
		}
		return out
	}
	tests := []struct {
		name string
		msgs []msg
	}{
		{"ten in ten minutes pass, the eleventh is deferred", repeat(11, 0, 1, 1, 10, 99)},
		{"twenty earlier messages suspend", repeat(22, 0, 0.5, 1, 10, 20)},
		{"messages slide out after 60 minutes", append(repeat(10, 0, 1, 1, 99, 99),
			msg{at: 59, rcpts: 1, defer_: true},        // 10 earlier within the hour
			msg{at: 60, rcpts: 1, defer_: true},        // the one at 0 is exactly 60 min old: still counts
			msg{at: 60.0001, rcpts: 1, defer_: true},   // it slid out, but 59 and 60 were added: 9 + 2 = 11 earlier
			msg{at: 120.001, rcpts: 1},                 // everything up to 60.0001 slid out
			msg{at: 180.0011, rcpts: 1, defer_: false}, // a quiet hour: the window is empty again
		)},
		{"one message with many recipients passes, the next is deferred", []msg{
			{at: 0, rcpts: 300},
			{at: 1, rcpts: 1, defer_: true},
			{at: 61, rcpts: 1}, // the 300 slid out; only the deferred one at 1 remains
		}},
		{"recipients reach the suspension", []msg{
			{at: 0, rcpts: 249},
			{at: 1, rcpts: 1},
			{at: 2, rcpts: 250, defer_: true},
			{at: 3, rcpts: 1, defer_: true, suspend: true}, // 500 earlier recipients
		}},
		{"messages at the same instant", repeat(12, 5, 0, 1, 10, 99)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msgs := mustWindow(t, WindowConfig{Window: time.Hour, Keep: kolabMessages * kolabSuspend})
			rcpts := mustWindow(t, WindowConfig{Window: time.Hour, Keep: kolabRecipients * kolabSuspend})
			for i, m := range tc.msgs {
				rm := msgs.Add("sender@example.org", minute(m.at), 1)
				rr := rcpts.Add("sender@example.org", minute(m.at), m.rcpts)
				deferred := rm.Over(kolabMessages) || rr.Over(kolabRecipients)
				suspended := rm.Over(kolabMessages*kolabSuspend) || rr.Over(kolabRecipients*kolabSuspend)
				if deferred != m.defer_ || suspended != m.suspend {
					t.Fatalf("message %d (%+v): messages %+v recipients %+v: defer %v suspend %v",
						i, m, rm, rr, deferred, suspended)
				}
				if rm.Total != rm.Before+1 || rr.Total != rr.Before+m.rcpts {
					t.Fatalf("message %d: totals %+v %+v", i, rm, rr)
				}
			}
		})
	}
}

// naiveWindow keeps every event forever and sums the window each time.
type naiveWindow struct {
	events map[string][]windowEvent
	last   map[string]int64
}

func (nw *naiveWindow) add(key string, now int64, n float64, window time.Duration) (before float64) {
	if last, ok := nw.last[key]; ok && now < last {
		now = last
	}
	for _, e := range nw.events[key] {
		if e.at >= now-int64(window) {
			before += e.n
		}
	}
	if n > 0 {
		nw.events[key] = append(nw.events[key], windowEvent{at: now, n: n})
		nw.last[key] = now
	} else if _, ok := nw.last[key]; ok {
		nw.last[key] = now
	}
	return before
}

// checkAgainstNaive feeds one random sequence, read from src, to a Window
// and to the naive reference and reports the first disagreement: the sums
// must agree exactly up to Keep (both at least Keep above it), and no key
// may hold more events than it needs to reach Keep.
func checkAgainstNaive(t *testing.T, src func() uint32) {
	t.Helper()
	window := time.Duration(1+src()%120) * time.Second
	keep := float64(1+src()%64) / 4
	w := mustWindow(t, WindowConfig{Window: window, Keep: keep, MaxEntries: 1 << 20})
	ref := &naiveWindow{events: map[string][]windowEvent{}, last: map[string]int64{}}
	keys := []string{"a", "b", "c"}
	now := epoch.UnixNano()
	const minWeight = 0.25
	for i := 0; i < 300; i++ {
		r := src()
		switch r % 16 {
		case 0: // the clock steps back
			now -= int64(time.Duration(r>>4%30) * time.Second)
		case 1, 2: // the same instant
		default:
			now += int64(time.Duration(r>>4%4000) * time.Millisecond)
		}
		key := keys[src()%uint32(len(keys))]
		n := float64(src()%16) * minWeight // dyadic: sums are exact in float64
		if src()%8 == 0 {
			n = 0
		}
		got := w.Add(key, time.Unix(0, now), n)
		want := ref.add(key, now, n, window)
		if math.Min(got.Before, keep) != math.Min(want, keep) {
			t.Fatalf("event %d (%s at %v, n=%v, window %v, keep %v): Before %v, naive %v",
				i, key, time.Duration(now-epoch.UnixNano()), n, window, keep, got.Before, want)
		}
		for _, limit := range []float64{keep, keep / 2, minWeight} {
			if got.Over(limit) != (want >= limit) {
				t.Fatalf("event %d: Over(%v) = %v with naive sum %v", i, limit, got.Over(limit), want)
			}
		}
		if k, ok := w.keys.peek(key); ok && len(k.events) > int(keep/minWeight)+1 {
			t.Fatalf("event %d: key %s holds %d events, keep %v needs at most %d", i, key, len(k.events), keep, int(keep/minWeight)+1)
		}
	}
}

// TestWindowMatchesNaive is the proof that dropping the events beyond Keep
// changes no answer up to Keep (see Window.Add), over many random
// sequences with clock steps back and events at the same instant.
func TestWindowMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for seq := 0; seq < 2000; seq++ {
		checkAgainstNaive(t, rng.Uint32)
	}
}

// FuzzWindowMatchesNaive lets the fuzzer choose the sequences.
func FuzzWindowMatchesNaive(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8})
	f.Add([]byte("a slightly longer seed for more events at odd times"))
	f.Fuzz(func(t *testing.T, data []byte) {
		i := 0
		checkAgainstNaive(t, func() uint32 {
			var b [4]byte
			for j := range b {
				if i < len(data) {
					b[j] = data[i]
					i++
				}
			}
			return binary.LittleEndian.Uint32(b[:])
		})
	})
}

func TestWindowBackwards(t *testing.T) {
	w := mustWindow(t, WindowConfig{Window: time.Hour, Keep: 20})
	w.Add("k", minute(30), 1)
	r := w.Add("k", minute(10), 1)
	if r.Backwards != 20*time.Minute || r.Before != 1 || w.Stats().ClockBackwards != 1 {
		t.Fatalf("backwards add: %+v stats %+v", r, w.Stats())
	}
	// The event was counted at minute 30, so both slide out after minute 90.
	if r := w.Add("k", minute(90), 0); r.Before != 2 {
		t.Fatalf("at 90: %+v", r)
	}
	if r := w.Add("k", minute(90.01), 0); r.Before != 0 || r.Total != 0 {
		t.Fatalf("at 90.01: %+v", r)
	}
}

func TestWindowBoundedKeys(t *testing.T) {
	for _, onFull := range []OnFull{FailOpen, FailClosed} {
		w := mustWindow(t, WindowConfig{Window: time.Hour, Keep: 20, MaxEntries: 2, OnFull: onFull})
		w.Add("a", minute(0), 1)
		w.Add("b", minute(1), 1)
		r := w.Add("c", minute(2), 1)
		if !r.Untracked || r.Over(10) != (onFull == FailClosed) || r.Total != 1 || w.Len() != 2 {
			t.Fatalf("%v: full window: %+v len %d", onFull, r, w.Len())
		}
		// A read of an unknown key stores nothing and is never over.
		if r := w.Add("d", minute(2), 0); r.Untracked || r.Over(1) || w.Len() != 2 {
			t.Fatalf("%v: read of an unknown key: %+v", onFull, r)
		}
		// Once a's event slid out, a (the least recently used) gives way.
		if r := w.Add("c", minute(60.5), 1); r.Untracked {
			t.Fatalf("%v: after a slid out: %+v", onFull, r)
		}
		got := []string{}
		for _, st := range w.Snapshot() {
			got = append(got, st.Key)
		}
		s := w.Stats()
		if !slices.Equal(got, []string{"b", "c"}) || s.Evicted != 1 || s.FailedOpen+s.FailedClosed != 1 || s.Entries != 2 {
			t.Fatalf("%v: keys %v stats %+v", onFull, got, s)
		}
	}
}

func TestWindowSnapshotRestore(t *testing.T) {
	cfg := WindowConfig{Window: time.Hour, Keep: 3, MaxEntries: 3}
	w := mustWindow(t, cfg)
	for i, key := range []string{"a", "b", "a", "c", "a", "a", "a"} {
		w.Add(key, minute(float64(i)), 1)
	}
	snap := w.Snapshot()
	if len(snap) != 3 || snap[2].Key != "a" || len(snap[2].Events) != 3 {
		t.Fatalf("snapshot %+v: a keeps only its 3 newest events (Keep 3)", snap)
	}
	other := mustWindow(t, cfg)
	if n, err := other.Restore(snap); n != 3 || err != nil {
		t.Fatalf("Restore = %d, %v", n, err)
	}
	if got := other.Snapshot(); !slices.EqualFunc(got, snap, func(x, y WindowState) bool {
		return x.Key == y.Key && slices.EqualFunc(x.Events, y.Events, func(p, q WindowEvent) bool { return p.At.Equal(q.At) && p.N == q.N })
	}) {
		t.Fatalf("restored %+v, want %+v", got, snap)
	}
	for _, key := range []string{"a", "b", "c", "d"} {
		if r1, r2 := w.Add(key, minute(30), 1), other.Add(key, minute(30), 1); r1 != r2 {
			t.Fatalf("%s: original %+v, restored %+v", key, r1, r2)
		}
	}

	states := []WindowState{
		{Key: "late", Events: []WindowEvent{{At: minute(9), N: 1}, {At: minute(5), N: 2}, {At: minute(9), N: 1}}}, // sorted and merged
		{Key: "empty"},
		{Key: "nan", Events: []WindowEvent{{At: minute(1), N: math.NaN()}}},
		{Key: "zero", Events: []WindowEvent{{At: minute(1), N: 0}}},
		{Key: "inf", Events: []WindowEvent{{At: minute(1), N: math.Inf(1)}}},
		{Key: "far", Events: []WindowEvent{{At: time.Time{}, N: 1}}},
		{Key: "old", Events: []WindowEvent{{At: minute(1), N: 1}}},
		{Key: "mid", Events: []WindowEvent{{At: minute(3), N: 1}}},
		{Key: "early", Events: []WindowEvent{{At: minute(0), N: 1}}},
		{Key: "old", Events: []WindowEvent{{At: minute(2), N: 5}}}, // the later duplicate wins
	}
	w = mustWindow(t, cfg)
	n, err := w.Restore(states)
	if err == nil || !strings.Contains(err.Error(), "skipped 5 invalid") || n != 3 {
		t.Fatalf("Restore = %d, %v; want 3 (the bound) and 5 skipped", n, err)
	}
	got := w.Snapshot()
	if len(got) != 3 || got[0].Key != "old" || got[1].Key != "mid" || got[2].Key != "late" ||
		got[0].Events[0].N != 5 || len(got[2].Events) != 2 || got[2].Events[1].N != 2 {
		t.Fatalf("after restore %+v", got)
	}
	if n, err := w.Restore(nil); n != 0 || err != nil || w.Len() != 0 {
		t.Fatalf("Restore(nil) = %d, %v, len %d", n, err, w.Len())
	}
}

func TestNewWindowErrors(t *testing.T) {
	for name, cfg := range map[string]WindowConfig{
		"no window":   {Keep: 1},
		"no keep":     {Window: time.Hour},
		"NaN keep":    {Window: time.Hour, Keep: math.NaN()},
		"inf keep":    {Window: time.Hour, Keep: math.Inf(1)},
		"negative":    {Window: time.Hour, Keep: 1, MaxEntries: -1},
		"bad on-full": {Window: time.Hour, Keep: 1, OnFull: OnFull(9)},
	} {
		if _, err := NewWindow(cfg); err == nil || !strings.HasPrefix(err.Error(), "bucket window: ") {
			t.Errorf("%s: error %v", name, err)
		}
	}
	if w := mustWindow(t, WindowConfig{Window: time.Hour, Keep: 1}); w.Config().MaxEntries != DefaultMaxEntries {
		t.Errorf("default bound %d", w.Config().MaxEntries)
	}
}
