package nftset

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/enforce"
	"github.com/mailjail/mailjail/internal/store"
)

// state is the enforcer's state of bans at now: the kernel counts
// timeouts from the Sync, so netns tests use the wall clock.
func state(now time.Time, bans ...store.Ban) enforce.State {
	for i := range bans {
		if !bans[i].Until.IsZero() {
			bans[i].Until = now.Add(bans[i].Until.Sub(at))
		}
	}
	return enforce.State{Bans: bans, At: now}
}

func mustSync(t testing.TB, s *Set, st enforce.State) {
	t.Helper()
	if err := s.Sync(context.Background(), st); err != nil {
		t.Fatal(err)
	}
}

// checkSet compares set's elements with want: ranges and, within a
// second (nft -j shows whole seconds), their remaining time.
func checkSet(t *testing.T, ns, set string, want []Range, elapsed time.Duration) {
	t.Helper()
	got := listSet(t, ns, DefaultTable, set)
	slices.SortFunc(got, func(a, b listed) int { return a.First.Compare(b.First) })
	if len(got) != len(want) {
		t.Fatalf("%s holds %v, want %v", set, got, want)
	}
	for i, w := range want {
		g := got[i]
		if g.First != w.First || g.Last != w.Last || g.Permanent != (w.Timeout == 0) {
			t.Errorf("%s element %d: %v, want %v", set, i, g, w)
			continue
		}
		if w.Timeout != 0 {
			if d := w.Timeout - elapsed - g.Expires; d < 0 || d > time.Second {
				t.Errorf("%s element %d expires in %v, want %v (minus the %v since the sync)", set, i, g.Expires, w.Timeout, elapsed)
			}
		}
	}
}

func TestSyncCreatesTableSetsAndChain(t *testing.T) {
	ns, fd := netns(t)
	s := New(Config{NetNS: fd, Priority: DefaultPriority})
	if s.Drifted() {
		t.Error("drifted before the first sync")
	}
	mustSync(t, s, state(time.Now(), ban("192.0.2.0/24", 0), ban("192.0.2.7/32", 0), ban("2001:db8::/64", 0), ban("2001:db8:1::1/128", 0)))
	got := nft(t, ns, "list", "table", "inet", "mailjail")
	golden := filepath.Join("testdata", "table.nft")
	if os.Getenv("UPDATE_GOLDEN") == "1" {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("nft list table inet mailjail:\n%s\nwant (%s):\n%s", got, golden, want)
	}
	if n := s.Entries(); n != 3 {
		t.Errorf("Entries() = %d, want 3 (the /24, the /64, the address)", n)
	}
	if s.Drifted() {
		t.Error("drifted right after the sync")
	}
	if name := s.Name(); name != "nftables:inet mailjail" {
		t.Errorf("Name() = %q", name)
	}
}

func TestSyncWritesTheUnionWithTheLongestTimeoutAndRecomputesOnUnban(t *testing.T) {
	ns, fd := netns(t)
	s := New(Config{NetNS: fd})
	const h = time.Hour
	bans := []store.Ban{
		ban("192.0.2.0/24", h), ban("192.0.2.5/32", 2*h), ban("192.0.2.0/24", 30*time.Minute), // two jails
		ban("198.51.100.9/32", 90*time.Second), ban("203.0.113.0/25", h), ban("203.0.113.128/25", h),
		ban("255.255.255.255/32", 0),
		ban("2001:db8:1:2::/64", h), ban("2001:db8:1:2::7/128", 0), ban("2001:db8:ff::/48", 3*h),
	}
	start := time.Now()
	mustSync(t, s, state(start, slices.Clone(bans)...))
	checkSet(t, ns, SetV4, []Range{
		rng("192.0.2.0", "192.0.2.4", h), rng("192.0.2.5", "192.0.2.5", 2*h), rng("192.0.2.6", "192.0.2.255", h),
		rng("198.51.100.9", "198.51.100.9", 90*time.Second), rng("203.0.113.0", "203.0.113.255", h),
		rng("255.255.255.255", "255.255.255.255", 0),
	}, time.Since(start))
	checkSet(t, ns, SetV6, []Range{
		rng("2001:db8:1:2::", "2001:db8:1:2::6", h), rng("2001:db8:1:2::7", "2001:db8:1:2::7", 0),
		rng("2001:db8:1:2::8", "2001:db8:1:2:ffff:ffff:ffff:ffff", h),
		rng("2001:db8:ff::", "2001:db8:ff:ffff:ffff:ffff:ffff:ffff", 3*h),
	}, time.Since(start))

	// Unban the address and the /64's address: the prefixes are whole again.
	bans = slices.DeleteFunc(bans, func(b store.Ban) bool { return b.Prefix.Bits() == 128 || b.Prefix.String() == "192.0.2.5/32" })
	start = time.Now()
	mustSync(t, s, state(start, bans...))
	checkSet(t, ns, SetV4, []Range{
		rng("192.0.2.0", "192.0.2.255", h), rng("198.51.100.9", "198.51.100.9", 90*time.Second),
		rng("203.0.113.0", "203.0.113.255", h), rng("255.255.255.255", "255.255.255.255", 0),
	}, time.Since(start))
	checkSet(t, ns, SetV6, []Range{
		rng("2001:db8:1:2::", "2001:db8:1:2:ffff:ffff:ffff:ffff", h),
		rng("2001:db8:ff::", "2001:db8:ff:ffff:ffff:ffff:ffff:ffff", 3*h),
	}, time.Since(start))

	// Everything lifted: empty sets, table and chain stay.
	mustSync(t, s, state(time.Now()))
	checkSet(t, ns, SetV4, nil, 0)
	checkSet(t, ns, SetV6, nil, 0)
	if s.Entries() != 0 || s.Drifted() {
		t.Errorf("after lifting all: Entries() = %d, Drifted() = %v", s.Entries(), s.Drifted())
	}
}

func TestSyncTakesTheLongestTimeoutsTheKernelAccepts(t *testing.T) {
	ns, fd := netns(t)
	s := New(Config{NetNS: fd})
	far := store.Ban{Jail: "j", Prefix: netip.MustParsePrefix("192.0.2.1/32"), Until: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)}
	mustSync(t, s, enforce.State{Bans: []store.Ban{far}, At: time.Now()})
	if got := listSet(t, ns, DefaultTable, SetV4); len(got) != 1 || got[0].Permanent || got[0].Expires < 200*365*24*time.Hour {
		t.Errorf("far ban: %v, want one element with a timeout of ~292 years", got)
	}
}

func TestDriftIsDetectedAndRepaired(t *testing.T) {
	tests := []struct {
		name   string
		edit   []string // nft argv run behind mailjail's back
		drifts bool
	}{
		{"flush ruleset", []string{"flush ruleset"}, true},
		{"delete table", []string{"delete table inet mailjail"}, true},
		{"delete element", []string{"delete element inet mailjail banned_v4 { 192.0.2.5 }"}, true},
		{"add element", []string{"add element inet mailjail banned_v6 { 2001:db8::1 }"}, true},
		{"flush set", []string{"flush set inet mailjail banned_v6"}, true},
		{"flush chain", []string{"flush chain inet mailjail input"}, true},
		{"rule added", []string{"add rule inet mailjail input tcp dport 25 accept"}, true},
		{"chain replaced with another priority", []string{"flush chain inet mailjail input", "delete chain inet mailjail input",
			"add chain inet mailjail input { type filter hook input priority 0; }"}, true},
		{"another table changed", []string{"add table inet other", "add chain inet other c"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns, fd := netns(t)
			s := New(Config{NetNS: fd, Priority: DefaultPriority})
			now := time.Now()
			st := state(now, ban("192.0.2.5/32", time.Hour), ban("198.51.100.0/24", 0), ban("2001:db8:5::/64", time.Hour))
			mustSync(t, s, st)
			want := nft(t, ns, "list", "table", "inet", "mailjail")
			// The first check after a sync is a full one, the second
			// only reads the generation: neither may see drift.
			for range 2 {
				if s.Drifted() {
					t.Fatal("drifted before any edit")
				}
			}
			for _, cmd := range tt.edit {
				nft(t, ns, strings.Fields(cmd)...)
			}
			if got := s.Drifted(); got != tt.drifts {
				t.Fatalf("Drifted() = %v after %q, want %v", got, tt.edit, tt.drifts)
			}
			if !tt.drifts {
				return
			}
			mustSync(t, s, st)
			if got := nft(t, ns, "list", "table", "inet", "mailjail"); stripExpiry(got) != stripExpiry(want) {
				t.Errorf("after the repair:\n%s\nwant:\n%s", got, want)
			}
			if s.Drifted() {
				t.Error("drifted after the repair")
			}
		})
	}
}

// stripExpiry drops the remaining times nft shows, which tick.
func stripExpiry(s string) string {
	var b strings.Builder
	for f := range strings.FieldsSeq(s) {
		if strings.HasSuffix(f, "ms,") || strings.HasSuffix(f, "ms") {
			continue
		}
		b.WriteString(f + " ")
	}
	return b.String()
}

func TestSyncReplacesATableLeftWithAnotherShape(t *testing.T) {
	ns, fd := netns(t)
	nft(t, ns, "-f", "testdata/stale.nft")
	s := New(Config{NetNS: fd, Priority: -10, Ports: []uint16{2525}})
	mustSync(t, s, state(time.Now(), ban("192.0.2.1/32", 0)))
	got := nft(t, ns, "list", "table", "inet", "mailjail")
	for _, bad := range []string{"priority filter;", "junk", "10.9.9.9", "type ipv4_addr; }"} {
		if strings.Contains(got, bad) {
			t.Errorf("the old table's %q survived:\n%s", bad, got)
		}
	}
	if !strings.Contains(got, "tcp dport { 2525 } ip saddr @banned_v4") || !strings.Contains(got, "priority filter - 10") {
		t.Errorf("table not rebuilt:\n%s", got)
	}
}

func TestSyncOfTenThousandBansIsOneTransaction(t *testing.T) {
	ns, fd := netns(t)
	s := New(Config{NetNS: fd})
	bans := manyBans(10000)
	start := time.Now()
	mustSync(t, s, state(start, bans...))
	took := time.Since(start)
	if n := s.Entries(); n != 10000 {
		t.Errorf("Entries() = %d, want 10000", n)
	}
	v4, v6 := listSet(t, ns, DefaultTable, SetV4), listSet(t, ns, DefaultTable, SetV6)
	if len(v4) != 5000 || len(v6) != 5000 {
		t.Errorf("sets hold %d and %d elements, want 5000 each", len(v4), len(v6))
	}
	dstart := time.Now()
	if s.Drifted() {
		t.Error("drifted after the sync")
	}
	full := time.Since(dstart)
	dstart = time.Now()
	if s.Drifted() {
		t.Error("drifted")
	}
	t.Logf("sync of 10,000 bans: %v, %d netlink messages in one batch; Drifted: %v (full check), %v (generation unchanged)",
		took, s.wrote.msgs, full, time.Since(dstart))
}

// manyBans are n single-address bans, half IPv4, half IPv6, none
// adjacent (so none merge), with timeouts from 1 to 1000 minutes.
func manyBans(n int) []store.Ban {
	var out []store.Ban
	for i := range n {
		var p string
		if i%2 == 0 {
			p = fmt.Sprintf("10.%d.%d.%d/32", i>>15&255, i>>7&255, i<<1&255)
		} else {
			p = fmt.Sprintf("2001:db8:%x::%x/128", i>>12, (i&4095)<<1)
		}
		out = append(out, ban(p, time.Duration(1+i%1000)*time.Minute))
	}
	return out
}

func TestSyncHonoursACancelledContext(t *testing.T) {
	s := New(Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Sync(ctx, enforce.State{At: at}); err == nil {
		t.Error("Sync with a cancelled context succeeded")
	}
}
