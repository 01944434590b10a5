package main

import (
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/mailjail/mailjail/internal/control"
)

// mailjail reload: 0 and the outcome when applied, 2 and every error
// (file:line) when the file is invalid (the daemon keeps banning), 3
// without a daemon; SIGHUP reloads too.
func TestReloadExitCodes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if _, stderr, code := e.mj("reload"); code != control.ExitUnreachable {
		t.Fatalf("reload without a daemon: exit %d, want 3 (%s)", code, stderr)
	}
	d := e.startDaemon()
	out, stderr, code := e.mj("reload")
	if code != 0 || !strings.Contains(out, "reloaded "+e.config) || !strings.Contains(out, "jails unchanged") {
		t.Fatalf("reload: exit %d\n%s%s", code, out, stderr)
	}
	good, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(good), "maxretry = 3", "maxretry = -3\nignoreip = [\"192.0.2.300\"]", 1)
	if bad == string(good) {
		t.Fatalf("no maxretry in\n%s", good)
	}
	if err := os.WriteFile(e.config, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, code = e.mj("reload")
	if code != control.ExitUsage || !strings.Contains(stderr, "reload refused") || strings.Count(stderr, e.config+":") < 2 {
		t.Fatalf("invalid reload: exit %d\n%s%s", code, out, stderr)
	}
	for range 3 {
		e.event("198.51.100.44")
	}
	e.waitFor("the old jail to ban", func() bool { return e.inMap("198.51.100.44") })

	// Back to a valid file with another maxretry, through SIGHUP.
	if err := os.WriteFile(e.config, []byte(strings.Replace(string(good), "maxretry = 3", "maxretry = 1", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	e.waitFor("the reload to be logged", func() bool { return strings.Count(e.daemonLog(), "configuration reloaded") == 2 })
	e.event("198.51.100.45")
	e.waitFor("a ban at the new maxretry", func() bool { return e.inMap("198.51.100.45") })
}
