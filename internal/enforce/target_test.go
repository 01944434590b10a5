package enforce

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/store"
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
