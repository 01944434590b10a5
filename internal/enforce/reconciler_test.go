package enforce

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/engine"
	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/internal/testutil"
	"github.com/mailjail/mailjail/mapfile"
)

// fakeTarget is a Target whose behaviour the test sets, as a struct of
// funcs.
type fakeTarget struct {
	mu        sync.Mutex
	fail      error
	failFirst int // this many syncs fail before the others succeed
	synced    [][]store.Ban
	drifted   bool
	checks    int // Drifted calls
	calls     chan struct{}
}

func newFakeTarget() *fakeTarget { return &fakeTarget{calls: make(chan struct{}, 100)} }

func (f *fakeTarget) Name() string { return "fake" }

func (f *fakeTarget) Sync(_ context.Context, s State) error {
	f.mu.Lock()
	defer func() { f.mu.Unlock(); f.calls <- struct{}{} }()
	if f.fail != nil {
		return f.fail
	}
	if f.failFirst > 0 {
		f.failFirst--
		return errors.New("read-only file system")
	}
	f.synced = append(f.synced, s.Bans)
	f.drifted = false
	return nil
}

func (f *fakeTarget) Drifted() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checks++
	return f.drifted
}

func (f *fakeTarget) checked() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.checks
}

func (f *fakeTarget) set(fail error, drifted bool) {
	f.mu.Lock()
	f.fail, f.drifted = fail, drifted
	f.mu.Unlock()
}

func (f *fakeTarget) syncs() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.synced)
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func ban(s string) store.Ban {
	return store.Ban{Jail: "j", Prefix: netip.MustParsePrefix(s), Since: time.Unix(1000, 0)}
}

// bansOnly is a Source of bans and no suspensions.
type bansOnly func() []store.Ban

func (f bansOnly) ActiveBans() []store.Ban             { return f() }
func (bansOnly) ActiveSuspensions() []store.Suspension { return nil }

func startEnforcer(t *testing.T, target Target, bans func() []store.Ban) (*Enforcer, *testutil.FakeClock) {
	t.Helper()
	clk := testutil.NewFakeClock(time.Unix(1_700_000_000, 0))
	e := New([]Target{target}, bansOnly(bans), nil, Options{Clock: clk, Log: quiet})
	e.Start()
	t.Cleanup(func() { e.Stop() })
	return e, clk
}

// A target that fails is retried with backoff until it holds the bans,
// without another change arriving: the database is the truth.
func TestFailedSyncIsRetriedUntilTheTargetHoldsTheBans(t *testing.T) {
	f := newFakeTarget()
	f.set(errors.New("read-only file system"), false)
	e, clk := startEnforcer(t, f, func() []store.Ban { return []store.Ban{ban("192.0.2.1/32")} })
	e.recs[0].Kick(1)
	testutil.Receive(t, f.calls, 5*time.Second, "the first sync")
	testutil.Eventually(t, 5*time.Second, "the failure in the stats", func() bool { return e.Targets()[0].LastErr != nil })
	// The retry timer and the check ticker are waiting; a second of
	// fake time brings the retry.
	if !clk.BlockUntil(2, 5*time.Second) {
		t.Fatal("no retry timer after a failed sync")
	}
	clk.Advance(time.Second)
	testutil.Receive(t, f.calls, 5*time.Second, "the first retry")
	f.set(nil, false)
	clk.BlockUntil(2, 5*time.Second)
	clk.Advance(2 * time.Second) // backoff doubled
	testutil.Eventually(t, 5*time.Second, "a successful retry in the stats", func() bool {
		st := e.Targets()[0]
		return st.LastErr == nil && st.Entries == 1 && st.Syncs == 1
	})
	if n := f.syncs(); n != 1 {
		t.Fatalf("target holds %d syncs", n)
	}
}

// A burst of kicks while one sync runs costs one more sync, not one each.
func TestBurstOfChangesCoalescesIntoFewSyncs(t *testing.T) {
	f := newFakeTarget()
	e, clk := startEnforcer(t, f, func() []store.Ban { return nil })
	e.recs[0].Kick(1) // a lone ban is written at once
	testutil.Receive(t, f.calls, 5*time.Second, "the first sync")
	// A batch of 1000 bans right after a sync waits burstSpacing (fake
	// time): the check ticker and the spacing timer are waiting. The
	// batches committed meanwhile ride along.
	e.recs[0].Kick(1000)
	if !clk.BlockUntil(2, 5*time.Second) {
		t.Fatal("the burst did not wait for its spacing")
	}
	for range 10 {
		e.recs[0].Kick(500)
	}
	clk.Advance(burstSpacing)
	testutil.Receive(t, f.calls, 5*time.Second, "the burst's sync")
	select {
	case <-f.calls:
		t.Fatal("a second sync for one burst")
	case <-time.After(50 * time.Millisecond):
	}
	if n := f.syncs(); n != 2 {
		t.Fatalf("%d syncs for 6001 bans", n)
	}
}

// A target that drifted (its file deleted behind mailjail's back) is
// restored at the next check, within a second, and counted.
func TestDriftedTargetIsRestoredWithinACheckInterval(t *testing.T) {
	f := newFakeTarget()
	e, clk := startEnforcer(t, f, func() []store.Ban { return nil })
	f.set(nil, true)
	clk.Advance(checkInterval)
	testutil.Receive(t, f.calls, 5*time.Second, "the repair")
	testutil.Eventually(t, 5*time.Second, "one repair and one sync in the stats", func() bool {
		st := e.Targets()[0]
		return st.Repairs == 1 && st.Syncs == 1
	})
}

// A target that never looks drifted is still written whole every
// resyncChecks checks: the safety net for what a cheap check misses.
func TestTargetIsResyncedPeriodically(t *testing.T) {
	f := newFakeTarget()
	e, clk := startEnforcer(t, f, func() []store.Ban { return []store.Ban{ban("192.0.2.9/32")} })
	for i := 1; i < resyncChecks; i++ {
		clk.Advance(checkInterval)
		testutil.Eventually(t, 5*time.Second, "the check", func() bool { return f.checked() == i })
	}
	if n := f.syncs(); n != 0 {
		t.Fatalf("%d syncs before the resync is due", n)
	}
	clk.Advance(checkInterval)
	testutil.Receive(t, f.calls, 5*time.Second, "the periodic resync")
	// The target signals from inside Sync; the stats follow its return.
	testutil.Eventually(t, 5*time.Second, "one sync in the stats", func() bool { return e.Targets()[0].Syncs == 1 })
	if st := e.Targets()[0]; st.Repairs != 0 || st.Syncs != 1 || st.Entries != 1 {
		t.Errorf("stats %+v: want one sync and no repair", st)
	}
}

// The map target notices its file deleted, replaced or edited.
func TestMapTargetDriftsWhenTheFileIsDeletedOrReplaced(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ip.map")
	m := NewMapTarget(path)
	if m.Drifted() {
		t.Fatal("drifted before the first write")
	}
	s := State{Bans: []store.Ban{ban("192.0.2.1/32")}, At: time.Unix(2000, 0)}
	if err := m.Sync(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if m.Drifted() {
		t.Fatal("drifted right after a write")
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if !m.Drifted() {
		t.Fatal("deleted map not noticed")
	}
	if err := m.Sync(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if err := mapfile.Write(path, nil, time.Unix(3000, 0)); err != nil {
		t.Fatal(err)
	}
	if !m.Drifted() {
		t.Fatal("map replaced by another writer not noticed")
	}
}

// A change a command put in force that a target refused is retried by
// the target's reconciler, as a change from the logs would be.
func TestFailedApplyNowIsRetriedInTheBackground(t *testing.T) {
	f := newFakeTarget()
	f.set(errors.New("no space left on device"), false)
	e, clk := startEnforcer(t, f, func() []store.Ban { return []store.Ban{ban("192.0.2.7/32")} })
	if err := e.ApplyNow(context.Background(), engineChange(ban("192.0.2.7/32"))); err == nil {
		t.Fatal("ApplyNow succeeded against a failing target")
	}
	f.set(nil, false)
	testutil.Eventually(t, 5*time.Second, "the reconciler to retry", func() bool {
		clk.Advance(time.Second)
		return f.syncs() == 1
	})
}

// Without a daemon nobody else retries: the enforcer keeps at a failing
// target for RetryFor, and a request's other errors (an address refused)
// are reported as they are, not hidden or replaced by the failed write.
func TestEnforcerWithoutReconcilersRetriesForItsCommand(t *testing.T) {
	o, _, f := newOps(t, opsConfig)
	f.failFirst = 2
	o.Enf = New([]Target{f}, o.Eng, nil, Options{Log: quiet, RetryFor: 10 * time.Second})
	bans, err := o.Ban(context.Background(), BanRequest{Prefixes: prefixes("198.51.100.30/32", "192.0.2.53/32")})
	if !errors.Is(err, engine.ErrIgnored) || errors.Is(err, ErrNotEnforced) || len(bans) != 1 {
		t.Fatalf("bans %v, err %v: want the first ban in force and the ignored address refused", bans, err)
	}
	if f.syncs() != 1 || len(f.synced[0]) != 1 {
		t.Fatalf("target holds %v after %d syncs", f.synced, f.syncs())
	}
}

func engineChange(bans ...store.Ban) engine.Change { return engine.Change{Bans: bans} }
