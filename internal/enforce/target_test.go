package enforce

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/internal/testutil"
)

// A scoped target is given only the bans and suspensions of its jails;
// drift checks pass through, and without a Counter its entries are the
// bans it was given.
func TestScopedTargetSeesItsJailsOnly(t *testing.T) {
	f := newFakeTarget()
	s := Scoped(f, func(jail string) bool { return jail == "mine" })
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	st := State{At: now, Bans: []store.Ban{
		{Jail: "mine", Prefix: netip.MustParsePrefix("192.0.2.1/32")},
		{Jail: "other", Prefix: netip.MustParsePrefix("192.0.2.2/32")},
		{Jail: "mine", Prefix: netip.MustParsePrefix("2001:db8::/64")},
	}, Suspensions: []store.Suspension{{Jail: "other", Account: "a@example.org"}}}
	if err := s.Sync(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	got := f.synced[0]
	if len(got) != 2 || got[0].Prefix.String() != "192.0.2.1/32" || got[1].Prefix.String() != "2001:db8::/64" {
		t.Errorf("target given %v, want the two bans of jail mine", got)
	}
	if n := s.(Counter).Entries(); n != 2 {
		t.Errorf("Entries = %d, want 2", n)
	}
	if s.(Checker).Drifted() {
		t.Error("drifted before the target says so")
	}
	f.set(nil, true)
	if !s.(Checker).Drifted() {
		t.Error("the target's drift is not passed through")
	}
	if s.Name() != "fake" {
		t.Errorf("Name = %q", s.Name())
	}
}

// hungTarget never finishes a sync until released: Redis across a dead
// link, a map on a hung NFS server.
type hungTarget struct{ release chan struct{} }

func (h hungTarget) Name() string { return "hung" }
func (h hungTarget) Sync(ctx context.Context, _ State) error {
	select {
	case <-h.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// A target that hangs holds up no other: the ban reaches the healthy
// target, from the daemon's reconcilers and from SyncAll at start alike.
func TestHungTargetDelaysNoOther(t *testing.T) {
	h := hungTarget{release: make(chan struct{})}
	f := newFakeTarget()
	bans := []store.Ban{ban("192.0.2.77/32")}
	e := New([]Target{h, f}, bansOnly(func() []store.Ban { return bans }), nil, Options{Log: quiet})

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := e.SyncAll(ctx); err == nil {
		t.Fatal("SyncAll reported success with a hung target")
	}
	if n := f.syncs(); n != 1 {
		t.Fatalf("healthy target synced %d times by SyncAll, want 1", n)
	}
	e.Start()
	if err := e.Apply(context.Background(), engineChange(bans[0])); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "the healthy target to get the ban", func() bool { return f.syncs() == 2 })
	close(h.release)
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
}
