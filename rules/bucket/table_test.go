package bucket

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

func mustTable(t testing.TB, cfg Config) *Table {
	t.Helper()
	tb, err := NewTable(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

// oneEachSecond is 1 message per second, burst 2: a key is idle one or two
// seconds after its last message.
var oneEachSecond = Limit{Rate: Rate{Count: 1, Per: time.Second}, Burst: 2}

func keysLRU(tb *Table) []string {
	var out []string
	for _, s := range tb.Snapshot() {
		out = append(out, s.Key)
	}
	return out
}

func TestTableBasics(t *testing.T) {
	tb := mustTable(t, Config{Limit: oneEachSecond})
	for i, want := range []bool{false, false, true} {
		if r := tb.Update("198.18.5.5", at(0), 1); r.Limited != want {
			t.Fatalf("event %d: %+v, want limited=%v", i, r, want)
		}
	}
	if r := tb.Update("198.18.5.6", at(0), 1); r.Limited || !r.New {
		t.Fatalf("other key: %+v", r)
	}
	if lvl, ok := tb.Level("198.18.5.5", at(1500)); !ok || math.Abs(lvl-0.5) > 1e-9 {
		t.Fatalf("Level = %v, %v", lvl, ok)
	}
	if _, ok := tb.Level("203.0.113.1", at(0)); ok {
		t.Fatal("Level of an unknown key reported ok")
	}
	if tb.Len() != 2 || tb.Stats().Entries != 2 {
		t.Fatalf("Len %d, stats %+v", tb.Len(), tb.Stats())
	}
	tb.Update("198.18.5.5", at(-1000), 0)
	if tb.Stats().ClockBackwards != 1 {
		t.Fatalf("clock backwards not counted: %+v", tb.Stats())
	}
}

func TestTableLRUEviction(t *testing.T) {
	tests := []struct {
		name    string
		onFull  OnFull
		steps   []string // "key@ms"
		limited []bool
		lru     []string // least recently used first, after all steps
		stats   Stats
	}{
		{
			name:    "idle tail is recycled",
			steps:   []string{"a@0", "b@0", "c@0", "d@5000"},
			limited: []bool{false, false, false, false},
			lru:     []string{"b", "c", "d"},
			stats:   Stats{Entries: 3, Evicted: 1},
		},
		{
			name:    "touching a key protects it",
			steps:   []string{"a@0", "b@0", "c@0", "a@4000", "d@5000"},
			limited: []bool{false, false, false, false, false},
			lru:     []string{"c", "a", "d"},
			stats:   Stats{Entries: 3, Evicted: 1},
		},
		{
			name:    "full of active keys fails open",
			onFull:  FailOpen,
			steps:   []string{"a@0", "b@0", "c@0", "d@100", "d@100", "d@100", "a@1500", "e@1500"},
			limited: []bool{false, false, false, false, false, false, false, false},
			lru:     []string{"c", "a", "e"},
			stats:   Stats{Entries: 3, Evicted: 1, FailedOpen: 3},
		},
		{
			name:    "full of active keys fails closed",
			onFull:  FailClosed,
			steps:   []string{"a@0", "b@0", "c@0", "d@100", "b@900", "e@1000"},
			limited: []bool{false, false, false, true, false, false},
			lru:     []string{"c", "b", "e"}, // a drained by 1000 and was recycled
			stats:   Stats{Entries: 3, Evicted: 1, FailedClosed: 1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tb := mustTable(t, Config{Limit: oneEachSecond, MaxEntries: 3, OnFull: tc.onFull})
			for i, s := range tc.steps {
				key, msStr, _ := strings.Cut(s, "@")
				var ms int64
				fmt.Sscan(msStr, &ms)
				r := tb.Update(key, at(ms), 1)
				if r.Limited != tc.limited[i] {
					t.Fatalf("step %d %s: %+v, want limited=%v", i, s, r, tc.limited[i])
				}
			}
			if got := keysLRU(tb); !slices.Equal(got, tc.lru) {
				t.Errorf("LRU order %v, want %v", got, tc.lru)
			}
			if got := tb.Stats(); got != tc.stats {
				t.Errorf("stats %+v, want %+v", got, tc.stats)
			}
		})
	}
}

func TestTableUntrackedResult(t *testing.T) {
	tb := mustTable(t, Config{Limit: oneEachSecond, MaxEntries: 1, OnFull: FailClosed})
	tb.Update("a", at(0), 2)
	r := tb.Update("b", at(0), 1)
	if !r.Limited || !r.Untracked || tb.Len() != 1 {
		t.Fatalf("%+v len %d", r, tb.Len())
	}
}

func TestSnapshotRestore(t *testing.T) {
	cfg := Config{Limit: oneEachSecond, Mode: Strict, MaxEntries: 3}
	tb := mustTable(t, cfg)
	tb.Update("a", at(0), 1)
	tb.Update("b", at(100), 2)
	tb.Update("c", at(200), 1)
	tb.Update("a", at(300), 1)
	snap := tb.Snapshot()
	if got := keysLRU(tb); !slices.Equal(got, []string{"b", "c", "a"}) {
		t.Fatalf("snapshot order %v", got)
	}

	other := mustTable(t, cfg)
	n, err := other.Restore(snap)
	if err != nil || n != 3 {
		t.Fatalf("Restore = %d, %v", n, err)
	}
	if !slices.Equal(other.Snapshot(), snap) {
		t.Fatalf("restored %+v, want %+v", other.Snapshot(), snap)
	}
	// The restored table behaves the same as the original.
	for _, key := range []string{"a", "b", "c", "d"} {
		if r1, r2 := tb.Update(key, at(400), 1), other.Update(key, at(400), 1); r1 != r2 {
			t.Fatalf("%s: original %+v, restored %+v", key, r1, r2)
		}
	}
}

func TestRestoreBoundedDedupAndInvalid(t *testing.T) {
	tb := mustTable(t, Config{Limit: oneEachSecond, MaxEntries: 2})
	states := []State{
		{Key: "new", Level: 1, Last: at(500)},
		{Key: "old", Level: 1, Last: at(100)},
		{Key: "mid", Level: 1, Last: at(300)},
		{Key: "nan", Level: math.NaN(), Last: at(900)},
		{Key: "neg", Level: -1, Last: at(900)},
		{Key: "zero-time", Level: 1},
		{Key: "old", Level: 50, Last: at(200)}, // later duplicate wins, clipped to the cap (3)
	}
	n, err := tb.Restore(states)
	if err == nil || !strings.Contains(err.Error(), "skipped 3 invalid") {
		t.Fatalf("Restore error = %v, want a report of 3 skipped states", err)
	}
	if n != 2 {
		t.Fatalf("restored %d, want 2 (the bound)", n)
	}
	got := tb.Snapshot()
	want := []State{{Key: "mid", Level: 1, Last: at(300)}, {Key: "new", Level: 1, Last: at(500)}}
	if !slices.EqualFunc(got, want, func(a, b State) bool { return a.Key == b.Key && a.Level == b.Level && a.Last.Equal(b.Last) }) {
		t.Fatalf("after restore %+v, want %+v", got, want)
	}

	tb = mustTable(t, Config{Limit: oneEachSecond, MaxEntries: 5})
	if _, err := tb.Restore(states); err == nil {
		t.Fatal("want error")
	}
	if lvl, ok := tb.Level("old", at(200)); !ok || lvl != 3 {
		t.Fatalf("duplicate/clip: level %v %v, want 3", lvl, ok)
	}
	// Restoring nothing empties the table.
	if n, err := tb.Restore(nil); n != 0 || err != nil || tb.Len() != 0 {
		t.Fatalf("Restore(nil) = %d, %v, len %d", n, err, tb.Len())
	}
}

func TestNewTableErrors(t *testing.T) {
	for name, cfg := range map[string]Config{
		"bad limit":   {},
		"negative":    {Limit: oneEachSecond, MaxEntries: -1},
		"too large":   {Limit: oneEachSecond, MaxEntries: math.MaxInt32 + 1},
		"bad on-full": {Limit: oneEachSecond, OnFull: OnFull(9)},
		"bad version": {Limit: oneEachSecond, Rspamd: Version(4)},
	} {
		if _, err := NewTable(cfg); err == nil || !strings.HasPrefix(err.Error(), "bucket table: ") {
			t.Errorf("%s: error %v", name, err)
		}
	}
	tb := mustTable(t, Config{Limit: oneEachSecond})
	if tb.keys.max != DefaultMaxEntries || tb.Policy().Rspamd() != Rspamd36 {
		t.Errorf("default bound %d, version %v", tb.keys.max, tb.Policy().Rspamd())
	}
	// The version reaches the policy: 3.4 admits a message heavier than
	// the burst into an empty bucket, 3.6 does not.
	for _, v := range []Version{Rspamd36, Rspamd34} {
		tb := mustTable(t, Config{Limit: oneEachSecond, Rspamd: v})
		tb.Update("k", at(0), 1)
		if r := tb.Update("k", at(5000), 3); r.Limited != (v == Rspamd36) {
			t.Errorf("%v: 3 into an empty bucket of burst 2: %+v", v, r)
		}
	}
}

func TestStringers(t *testing.T) {
	for got, want := range map[string]string{
		Leaky.String(): "leaky", Strict.String(): "strict", Mode(5).String(): "Mode(5)",
		FailOpen.String(): "fail-open", FailClosed.String(): "fail-closed", OnFull(3).String(): "OnFull(3)",
		Rspamd36.String(): "rspamd-3.6", Rspamd34.String(): "rspamd-3.4", Version(7).String(): "Version(7)",
	} {
		if got != want {
			t.Errorf("got %q want %q", got, want)
		}
	}
}
