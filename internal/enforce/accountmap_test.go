package enforce

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/store"
)

func TestAccountMapFollowsEnforcedSuspensions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "accounts.map")
	m := NewAccountMapTarget(path)
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	s := State{At: now, Suspensions: []store.Suspension{{Jail: "acct", Account: "mallory@example.org", Until: now.Add(time.Hour), Enforced: true}}}
	if err := m.Sync(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if !strings.Contains(string(data), "\nmallory@example.org # until 2026-12-01T11:00:00Z jail=acct\n") {
		t.Fatalf("map:\n%s", data)
	}
	// The same accounts again (a ban kicked every target): no rewrite.
	fi, _ := os.Stat(path)
	s.At = now.Add(time.Minute)
	if err := m.Sync(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if fi2, _ := os.Stat(path); !os.SameFile(fi, fi2) {
		t.Error("unchanged accounts rewrote the map")
	}
	// Deleted behind mailjail's back: drift, and the next sync restores it.
	os.Remove(path)
	if !m.Drifted() {
		t.Fatal("a deleted map is no drift")
	}
	if err := m.Sync(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(path); !strings.Contains(string(data), "mallory@example.org") {
		t.Fatalf("not restored:\n%s", data)
	}
	if err := m.Sync(context.Background(), State{At: now}); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(path); strings.Contains(string(data), "mallory") {
		t.Fatalf("released account still listed:\n%s", data)
	}
}
