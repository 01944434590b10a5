package daemon

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/allowlist"
	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/testutil"
	"github.com/mailjail/mailjail/mapfile"
	"github.com/mailjail/mailjail/rules"
)

// runDaemonWith runs the daemon with opt until the test ends.
func runDaemonWith(t testing.TB, cfg *config.Config, opt Options) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), opt) }()
	t.Cleanup(func() {
		cancel()
		if err := testutil.Receive(t, done, 15*time.Second, "the daemon to stop"); err != nil {
			t.Errorf("daemon: %v", err)
		}
	})
}

// An ignoreip file edited while the daemon runs is in force at once: an
// address added to it is no longer banned, and the ban of one already
// banned is lifted; a host name's addresses are ignored, and status shows
// what the entries stand for.
func TestIgnoreFileAndHostNameWhileRunning(t *testing.T) {
	dir := shortDir(t)
	log, gw := filepath.Join(dir, "r.log"), filepath.Join(dir, "gateways")
	appendLog(t, log, "")
	if err := os.WriteFile(gw, []byte("# gateways\n192.0.2.60\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := reloadConfig(t, dir, "ignoreip = [\"file:"+gw+"\", \"mx.partner.example\", \"nowhere.example\"]\nignoreself = false\n"+jailTOML("r", log, "maxretry = 1"))
	lookup := func(_ context.Context, host string) ([]netip.Addr, error) {
		if host == "mx.partner.example" {
			return []netip.Addr{netip.MustParseAddr("203.0.113.50")}, nil
		}
		return nil, errors.New("no such host")
	}
	runDaemonWith(t, cfg, Options{Ignore: allowlist.Options{Lookup: lookup}})
	waitServing(t, cfg)

	banned := func(addr string) bool { return slices.Contains(mapAddrs(t, cfg), addr) }
	// Lines are judged in order: once the last one's ban is seen, the
	// ones before it were judged too.
	appendLog(t, log, eventLine("192.0.2.60")+eventLine("203.0.113.50")+eventLine("198.51.100.7"))
	testutil.Eventually(t, 15*time.Second, "the ban of 198.51.100.7", func() bool { return banned("198.51.100.7") })
	if banned("192.0.2.60") || banned("203.0.113.50") {
		t.Fatalf("an ignored address was banned: %v", mapAddrs(t, cfg))
	}

	start := time.Now()
	appendLog(t, gw, "198.51.100.7\n198.51.100.8 # added while running\n")
	testutil.Eventually(t, 15*time.Second, "the ban of 198.51.100.7 lifted by the edited file", func() bool { return !banned("198.51.100.7") })
	t.Logf("edit to unban: %s", time.Since(start).Round(time.Millisecond))
	appendLog(t, log, eventLine("198.51.100.8")+eventLine("198.51.100.9"))
	testutil.Eventually(t, 15*time.Second, "the ban of 198.51.100.9", func() bool { return banned("198.51.100.9") })
	if banned("198.51.100.8") {
		t.Fatal("an address added to the ignoreip file was banned")
	}

	s := status(t, cfg)
	if s.Ignore == nil || len(s.Ignore.Files) != 1 || s.Ignore.Files[0].Entries != 3 || len(s.Ignore.Names) != 2 || s.Ignore.Self != nil {
		t.Fatalf("status ignore: %+v", s.Ignore)
	}
	if n := s.Ignore.Names[0]; n.Name != "mx.partner.example" || !slices.Equal(n.Addrs, []string{"203.0.113.50"}) || n.Resolved == nil {
		t.Errorf("resolved name: %+v", n)
	}
	if n := s.Ignore.Names[1]; n.Name != "nowhere.example" || n.Resolved != nil || n.Error == "" {
		t.Errorf("name never resolved: %+v", n)
	}
	if !slices.ContainsFunc(s.Warnings, func(w string) bool {
		return w == "ignoreip host name nowhere.example has never resolved, so it ignores no address: no such host"
	}) {
		t.Errorf("warnings %q", s.Warnings)
	}
}

// A restart while DNS is down keeps ignoring a name's last addresses,
// which the database kept.
func TestIgnoreHostNameSurvivesRestartWithoutDNS(t *testing.T) {
	dir := shortDir(t)
	log := filepath.Join(dir, "r.log")
	appendLog(t, log, "")
	cfg := reloadConfig(t, dir, "ignoreip = [\"mx.partner.example\"]\nignoreself = false\n"+jailTOML("r", log, "maxretry = 1"))
	up := func(context.Context, string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("203.0.113.50")}, nil
	}
	down := func(context.Context, string) ([]netip.Addr, error) { return nil, errors.New("i/o timeout") }
	for i, lookup := range []func(context.Context, string) ([]netip.Addr, error){up, down} {
		func() {
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				done <- Run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), Options{Ignore: allowlist.Options{Lookup: lookup}})
			}()
			defer func() {
				cancel()
				if err := testutil.Receive(t, done, 15*time.Second, "the daemon to stop"); err != nil {
					t.Fatalf("daemon: %v", err)
				}
			}()
			waitServing(t, cfg)
			other := []string{"198.51.100.1", "198.51.100.2"}[i]
			appendLog(t, log, eventLine("203.0.113.50")+eventLine(other))
			testutil.Eventually(t, 15*time.Second, "the ban of "+other, func() bool { return slices.Contains(mapAddrs(t, cfg), other) })
			if slices.Contains(mapAddrs(t, cfg), "203.0.113.50") {
				t.Fatalf("run %d: the name's address was banned", i)
			}
		}()
	}
}

// mapAddrs are the entries of the rspamd map the daemon writes (none
// before its first write).
func mapAddrs(t testing.TB, cfg *config.Config) []string {
	t.Helper()
	f, err := os.Open(cfg.Global.MapFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ps, err := mapfile.Parse(f, cfg.Global.MapFile)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range ps {
		out = append(out, rules.FormatPrefix(p))
	}
	return out
}
