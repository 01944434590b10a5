package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/control"
	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/internal/testutil"
)

// reloadConfig writes a configuration of the jails given (TOML after
// [global]) to dir/mailjail.toml and loads it as the daemon would.
func reloadConfig(t testing.TB, dir, jails string) *config.Config {
	t.Helper()
	path := filepath.Join(dir, "mailjail.toml")
	toml := fmt.Sprintf("[global]\ndatabase = %q\nmap_file = %q\naccount_map_file = %q\nsocket = %q\ntimezone = \"UTC\"\n%s",
		filepath.Join(dir, "db", "m.db"), filepath.Join(dir, "ip.map"), filepath.Join(dir, "accounts.map"), filepath.Join(dir, "s.sock"), jails)
	if err := os.WriteFile(path, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func jailTOML(name, log string, extra string) string {
	return fmt.Sprintf("[jail.%s]\nfilter = \"rspamd-ratelimit\"\nlogpath = [%q]\n%s\n", name, log, extra)
}

func appendLog(t testing.TB, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

func callReload(t *testing.T, cfg *config.Config) *control.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testutil.Scale(30*time.Second))
	defer cancel()
	resp, err := control.Call(ctx, cfg.Global.Socket, control.OpReload, control.Request{})
	if err != nil {
		t.Fatalf("reload: %v", err)
	}
	if resp.Reload == nil {
		t.Fatalf("reload: no outcome in %+v", resp)
	}
	return resp
}

func jailStatus(s *control.Status, name string) control.JailStatus {
	for _, j := range s.Jails {
		if j.Name == name {
			return j
		}
	}
	return control.JailStatus{Name: name}
}

// activeBansOf counts the active bans in the database per jail.
func activeBansOf(t testing.TB, cfg *config.Config) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, b := range activeBans(t, cfg) {
		out[b.Jail]++
	}
	return out
}

// activeBans reads the active bans from the database.
func activeBans(t testing.TB, cfg *config.Config) []store.Ban {
	t.Helper()
	st, err := store.Open(cfg.Global.Database, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	bans, err := st.ActiveBans()
	if err != nil {
		t.Fatal(err)
	}
	return bans
}

// A reload while events flow: a jail changed, one added on a new log, one
// removed. Every line is counted once (exact strike counts), strikes from
// before the reload still count towards a ban after it, the removed
// jail's ban is kept, the new jail bans, and an invalid configuration is
// refused with its errors while the running one goes on banning.
func TestReloadWhileEventsFlowLosesNothing(t *testing.T) {
	dir := shortDir(t)
	logA, logB, logC := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log"), filepath.Join(dir, "c.log")
	for _, p := range []string{logA, logB, logC} {
		appendLog(t, p, "")
	}
	cfg := reloadConfig(t, dir, jailTOML("a", logA, "maxretry = 3\nfindtime = \"1h\"")+jailTOML("c", logC, "maxretry = 1"))
	runDaemon(t, cfg)
	waitServing(t, cfg)

	appendLog(t, logC, eventLine("192.0.2.1"))
	testutil.Eventually(t, 15*time.Second, "jail c's ban", func() bool { return activeBansOf(t, cfg)["c"] == 1 })

	// One event per address, none reaching maxretry; the reload happens
	// half-way through, while lines are being read.
	const n = 400
	addr := func(i int) string { return fmt.Sprintf("10.1.%d.%d", i/200, i%200+1) }
	written := make(chan struct{})
	half := make(chan struct{})
	go func() {
		defer close(written)
		for i := range n {
			if i == n/2 {
				close(half)
			}
			appendLog(t, logA, eventLine(addr(i)))
			if i%20 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	<-half
	reloadConfig(t, dir, jailTOML("a", logA, "maxretry = 3\nfindtime = \"1h\"\nbantime = \"2h\"")+jailTOML("b", logB, "maxretry = 1"))
	resp := callReload(t, cfg)
	if !resp.OK || resp.Code != 0 {
		t.Fatalf("reload refused: %+v", resp.Reload)
	}
	r := resp.Reload
	if strings.Join(r.Added, ",") != "b" || strings.Join(r.Removed, ",") != "c" || strings.Join(r.Changed, ",") != "a" || len(r.Warnings) != 0 {
		t.Fatalf("reload outcome %+v", r)
	}
	<-written
	testutil.Eventually(t, 15*time.Second, "every strike of jail a", func() bool { return jailStatus(status(t, cfg), "a").StrikesStored >= n })
	if got := jailStatus(status(t, cfg), "a").StrikesStored; got != n {
		t.Fatalf("jail a stored %d strikes for %d lines (a line read twice?)", got, n)
	}
	// Two more events of the first address (counted before the reload)
	// make three: the strike was not forgotten.
	appendLog(t, logA, eventLine(addr(0))+eventLine(addr(0)))
	appendLog(t, logB, eventLine("198.51.100.7"))
	testutil.Eventually(t, 15*time.Second, "the bans after the reload", func() bool {
		b := activeBansOf(t, cfg)
		return b["a"] == 1 && b["b"] == 1
	})
	if b := activeBansOf(t, cfg); b["c"] != 1 || len(b) != 3 {
		t.Fatalf("active bans %v: the removed jail's ban must be kept", b)
	}
	s := status(t, cfg)
	if got := jailStatus(s, "a").StrikesStored; got != n+2 {
		t.Fatalf("jail a stored %d strikes, want %d", got, n+2)
	}
	fi, _ := os.Stat(logA)
	for _, f := range jailStatus(s, "a").Files {
		if f.Path == logA && f.Offset != fi.Size() {
			t.Fatalf("read position of %s: %d, file size %d", logA, f.Offset, fi.Size())
		}
	}

	// Invalid: refused whole, with file:line errors; jail b still bans
	// and jail a's settings are the running ones.
	path := filepath.Join(dir, "mailjail.toml")
	reloadConfig(t, dir, jailTOML("a", logA, "maxretry = 3")) // without jail b: refused, b stays
	if err := os.WriteFile(path, []byte(strings.Replace(testutil.ReadFile(t, path), "maxretry = 3", "maxretry = -1\nignoreip = [\"192.0.2.300\"]", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	resp = callReload(t, cfg)
	if resp.OK || resp.Code != control.ExitUsage || resp.Reload.Applied || len(resp.Reload.Errors) != 2 {
		t.Fatalf("invalid reload answered %+v %+v", resp, resp.Reload)
	}
	for _, e := range resp.Reload.Errors {
		if !strings.HasPrefix(e, path+":") {
			t.Errorf("error without file:line: %q", e)
		}
	}
	appendLog(t, logB, eventLine("198.51.100.8"))
	testutil.Eventually(t, 15*time.Second, "jail b to ban after the refused reload", func() bool { return activeBansOf(t, cfg)["b"] == 2 })
}

// Settings that cannot change live keep their running value and are
// named; the rest is applied. A newly ignored address's ban is lifted.
func TestReloadWarnsAboutRestartOnlySettingsAndLiftsIgnored(t *testing.T) {
	dir := shortDir(t)
	logA := filepath.Join(dir, "a.log")
	appendLog(t, logA, "")
	cfg := reloadConfig(t, dir, jailTOML("a", logA, "maxretry = 1"))
	runDaemon(t, cfg)
	waitServing(t, cfg)
	appendLog(t, logA, eventLine("203.0.113.5"))
	testutil.Eventually(t, 15*time.Second, "the ban", func() bool { return activeBansOf(t, cfg)["a"] == 1 })

	path := filepath.Join(dir, "mailjail.toml")
	text := strings.Replace(testutil.ReadFile(t, path), filepath.Join(dir, "ip.map"), filepath.Join(dir, "other.map"), 1)
	text = strings.Replace(text, "maxretry = 1", "maxretry = 1\nignoreip = [\"203.0.113.0/24\"]", 1)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	resp := callReload(t, cfg)
	if !resp.OK || len(resp.Reload.Warnings) != 1 || !strings.Contains(resp.Reload.Warnings[0], "global.map_file") ||
		!strings.Contains(resp.Reload.Warnings[0], "needs a restart") || strings.Join(resp.Reload.Changed, ",") != "a" {
		t.Fatalf("reload answered %+v %+v", resp, resp.Reload)
	}
	testutil.Eventually(t, 15*time.Second, "the ignored address's ban lifted", func() bool { return activeBansOf(t, cfg)["a"] == 0 })
	if s := status(t, cfg); s.MapFile != cfg.Global.MapFile {
		t.Fatalf("map file %s after the reload, want the running %s", s.MapFile, cfg.Global.MapFile)
	}
	waitMap(t, cfg.Global.MapFile, func(n int) bool { return n == 0 })
}

// SIGHUP's channel reloads like the socket does.
func TestReloadOnSignalChannel(t *testing.T) {
	dir := shortDir(t)
	logA, logB := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")
	appendLog(t, logA, "")
	appendLog(t, logB, "")
	cfg := reloadConfig(t, dir, jailTOML("a", logA, "maxretry = 1"))
	hup := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), Options{Reload: hup}) }()
	defer func() {
		cancel()
		if err := testutil.Receive(t, done, 15*time.Second, "the daemon to stop"); err != nil {
			t.Error(err)
		}
	}()
	waitServing(t, cfg)
	reloadConfig(t, dir, jailTOML("a", logA, "maxretry = 1")+jailTOML("b", logB, "maxretry = 1"))
	hup <- struct{}{}
	testutil.Eventually(t, 15*time.Second, "jail b to run", func() bool { return len(status(t, cfg).Jails) >= 2 && jailStatus(status(t, cfg), "b").Filter != "" })
	appendLog(t, logB, eventLine("198.51.100.9"))
	testutil.Eventually(t, 15*time.Second, "jail b's ban", func() bool { return activeBansOf(t, cfg)["b"] == 1 })
}
