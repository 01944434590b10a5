package allowlist

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/core"
	"github.com/mailjail/mailjail/internal/testutil"
	"github.com/mailjail/mailjail/rules"
)

// fakeDNS answers lookups from a table that tests change; a name absent
// from it fails as a DNS outage would.
type fakeDNS struct {
	mu    sync.Mutex
	names map[string][]string
}

func (f *fakeDNS) set(host string, addrs ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if addrs == nil {
		delete(f.names, host)
		return
	}
	f.names[host] = addrs
}

func (f *fakeDNS) lookup(_ context.Context, host string) ([]netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	as, ok := f.names[host]
	if !ok {
		return nil, errors.New("server misbehaving")
	}
	var out []netip.Addr
	for _, a := range as {
		out = append(out, netip.MustParseAddr(a))
	}
	return out, nil
}

var quiet = slog.New(slog.DiscardHandler)

func loadConfig(t *testing.T, global string) *config.Config {
	t.Helper()
	src := "[global]\n" + global + "\n[jail.j]\nfilter = \"rspamd-ratelimit\"\nlogpath = [\"/l\"]\nignoreip = [\"relay.example.net\"]\n"
	c, err := config.Parse(strings.NewReader(src), "t.toml")
	if err == nil {
		err = c.Validate()
	}
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// contains reports whether the engine's view of st ignores addr under
// the entry key.
func contains(st State, key, addr string) bool {
	set, err := rules.NewIgnoreSet([]string{key}, st.Resolved(), false)
	if err != nil {
		panic(err)
	}
	return set.Contains(netip.MustParseAddr(addr))
}

func TestLoadResolvesFilesNamesAndSelf(t *testing.T) {
	dir := t.TempDir()
	gw := filepath.Join(dir, "gateways")
	writeFile(t, gw, "192.0.2.1\n198.51.100.0/24 # relays\nmx2.example.net\n")
	cfg := loadConfig(t, `ignoreip = ["file:`+gw+`", "mx1.example.net", "down.example.net", "gone.example.net"]`)
	dns := &fakeDNS{names: map[string][]string{
		"mx1.example.net":   {"203.0.113.1", "2001:db8::1"},
		"mx2.example.net":   {"203.0.113.2"},
		"relay.example.net": {"::ffff:203.0.113.3"},
	}}
	clock := testutil.NewFakeClock(time.Date(2026, 12, 2, 5, 0, 0, 0, time.UTC))
	savedAt := clock.Now().Add(-time.Hour)
	l := New(cfg, Options{Lookup: dns.lookup, Self: func() ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("10.9.8.7"), netip.MustParseAddr("fe80::1")}, nil
	}, Clock: clock, Log: quiet})
	st := l.Load(context.Background(), map[string]Name{
		"down.example.net": {Addrs: []netip.Addr{netip.MustParseAddr("203.0.113.9")}, Resolved: savedAt},
	})
	for _, tc := range []struct {
		key, addr string
		want      bool
	}{
		{"file:" + gw, "192.0.2.1", true},
		{"file:" + gw, "198.51.100.200", true},
		{"file:" + gw, "203.0.113.2", true}, // a name inside the file
		{"file:" + gw, "203.0.113.1", false},
		{"mx1.example.net", "203.0.113.1", true},
		{"mx1.example.net", "2001:db8::1", true},
		{"relay.example.net", "203.0.113.3", true}, // mapped addresses unmapped
		{"down.example.net", "203.0.113.9", true},  // saved addresses kept while DNS fails
		{"gone.example.net", "203.0.113.9", false},
	} {
		if got := contains(st, tc.key, tc.addr); got != tc.want {
			t.Errorf("%s %s: %v, want %v", tc.key, tc.addr, got, tc.want)
		}
	}
	if n := st.Names["down.example.net"]; n.Err == "" || !n.Resolved.Equal(savedAt) {
		t.Errorf("down name: %+v", n)
	}
	if n := st.Names["gone.example.net"]; !n.Resolved.IsZero() || n.Err == "" {
		t.Errorf("a name never resolved: %+v", n)
	}
	if n := st.Names["mx1.example.net"]; !n.Resolved.Equal(clock.Now()) || n.Err != "" {
		t.Errorf("resolved name: %+v", n)
	}
	self, err := rules.NewIgnoreSet(nil, st.Resolved(), true)
	if err != nil {
		t.Fatal(err)
	}
	if !self.Contains(netip.MustParseAddr("10.9.8.7")) || self.Contains(netip.MustParseAddr("10.9.8.6")) {
		t.Errorf("self addresses: %v", st.Self)
	}
}

func TestIgnoreSelfOff(t *testing.T) {
	cfg := loadConfig(t, "ignoreself = false")
	called := false
	l := New(cfg, Options{Lookup: (&fakeDNS{names: map[string][]string{}}).lookup, Log: quiet, Self: func() ([]netip.Addr, error) {
		called = true
		return nil, nil
	}})
	st := l.Load(context.Background(), nil)
	if called || st.Self != nil {
		t.Errorf("ignoreself = false read the host's addresses: %v", st.Self)
	}
	if _, ok := st.Resolved()[rules.SelfKey]; ok {
		t.Error("self key present")
	}
}

// waitState reads states from out until one satisfies ok.
func waitState(t *testing.T, out <-chan State, what string, ok func(State) bool) State {
	t.Helper()
	deadline := time.NewTimer(testutil.Scale(5 * time.Second))
	defer deadline.Stop()
	for {
		select {
		case st := <-out:
			if ok(st) {
				return st
			}
		case <-deadline.C:
			t.Fatalf("no state where %s", what)
		}
	}
}

func TestFileEditTakesEffect(t *testing.T) {
	dir := t.TempDir()
	gw := filepath.Join(dir, "gateways")
	writeFile(t, gw, "192.0.2.1\n")
	cfg := loadConfig(t, `ignoreip = ["file:`+gw+`"]`)
	dns := &fakeDNS{names: map[string][]string{"relay.example.net": {"203.0.113.3"}, "mx3.example.net": {"203.0.113.30"}}}
	l := New(cfg, Options{Lookup: dns.lookup, Clock: core.RealClock{}, Log: quiet})
	key := "file:" + gw
	if st := l.Load(context.Background(), nil); !contains(st, key, "192.0.2.1") {
		t.Fatal("initial content not loaded")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan State)
	wait := l.Start(ctx, out)
	defer func() { cancel(); wait() }()

	// An edit in place, then an editor's write-and-rename.
	writeFile(t, gw, "192.0.2.1\n192.0.2.2\n")
	waitState(t, out, "the appended address is ignored", func(st State) bool { return contains(st, key, "192.0.2.2") })
	tmp := filepath.Join(dir, ".gateways.swp")
	writeFile(t, tmp, "192.0.2.2\nmx3.example.net\n")
	if err := os.Rename(tmp, gw); err != nil {
		t.Fatal(err)
	}
	st := waitState(t, out, "the renamed-over file is read", func(st State) bool { return !contains(st, key, "192.0.2.1") })
	if !contains(st, key, "203.0.113.30") {
		t.Error("a name added to the file is not resolved")
	}
	// A broken file keeps the last good content.
	writeFile(t, gw, "192.0.2.2\n192.0.2.300\n")
	st = waitState(t, out, "the broken file is reported", func(st State) bool { return st.Files[gw].Err != "" })
	if !strings.Contains(st.Files[gw].Err, gw+":2: invalid address") || !contains(st, key, "203.0.113.30") {
		t.Errorf("broken file: err %q, last content kept %v", st.Files[gw].Err, contains(st, key, "203.0.113.30"))
	}
	// Removed: still the last good content.
	if err := os.Remove(gw); err != nil {
		t.Fatal(err)
	}
	st = waitState(t, out, "the removed file is reported", func(st State) bool { return strings.Contains(st.Files[gw].Err, "no such file") })
	if !contains(st, key, "192.0.2.2") {
		t.Error("a removed file's entries were dropped")
	}
}

func TestRefreshKeepsLastAddressesWhileDNSFails(t *testing.T) {
	cfg := loadConfig(t, `ignoreip = ["mx1.example.net"]`+"\ndns_refresh = \"1m\"")
	dns := &fakeDNS{names: map[string][]string{"mx1.example.net": {"203.0.113.1"}, "relay.example.net": {"203.0.113.3"}}}
	clock := testutil.NewFakeClock(time.Date(2026, 12, 2, 5, 0, 0, 0, time.UTC))
	self := []netip.Addr{netip.MustParseAddr("10.0.0.1")}
	var selfMu sync.Mutex
	l := New(cfg, Options{Lookup: dns.lookup, Clock: clock, Log: quiet, Self: func() ([]netip.Addr, error) {
		selfMu.Lock()
		defer selfMu.Unlock()
		return slices.Clone(self), nil
	}})
	l.Load(context.Background(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan State)
	wait := l.Start(ctx, out)
	defer func() { cancel(); wait() }()

	refresh := func() State {
		t.Helper()
		if !clock.BlockUntil(1, 5*time.Second) {
			t.Fatal("Run does not wait on its refresh ticker")
		}
		clock.Advance(time.Minute)
		return waitState(t, out, "a refresh", func(State) bool { return true })
	}
	dns.set("mx1.example.net", "203.0.113.11")
	selfMu.Lock()
	self = append(self, netip.MustParseAddr("10.0.0.2"))
	selfMu.Unlock()
	st := refresh()
	if !contains(st, "mx1.example.net", "203.0.113.11") || contains(st, "mx1.example.net", "203.0.113.1") {
		t.Errorf("new address not taken: %+v", st.Names["mx1.example.net"])
	}
	if !slices.Contains(st.Self, netip.MustParseAddr("10.0.0.2")) {
		t.Errorf("new own address not taken: %v", st.Self)
	}
	dns.set("mx1.example.net")
	st = refresh()
	if n := st.Names["mx1.example.net"]; n.Err == "" || !contains(st, "mx1.example.net", "203.0.113.11") {
		t.Errorf("a failed refresh dropped the addresses: %+v", n)
	}
}
