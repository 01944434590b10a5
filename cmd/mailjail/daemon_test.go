package main

import (
	"os"
	"strings"
	"testing"
)

// A ban survives kill -9 and restart; strikes inside their window count
// after the restart; nothing read before the kill is counted twice.
func TestKill9KeepsBansAndStrikes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.startDaemon()
	for range 3 {
		e.event("198.51.100.23")
	}
	e.waitFor("ban in map", func() bool { return e.inMap("198.51.100.23") })
	e.event("2001:db8::42")
	e.event("2001:db8::42")
	e.waitFor("two strikes saved", func() bool {
		out, _, _ := e.mj("show", "2001:db8::42")
		return strings.Count(out, "strike ") == 2
	})
	e.kill9(d)
	if !e.inMap("198.51.100.23") {
		t.Fatal("map lost the ban at kill -9")
	}
	d = e.startDaemon()
	if !e.inMap("198.51.100.23") || e.inMap("2001:db8::42") {
		t.Fatalf("after restart map = %v", e.mapAddrs())
	}
	// The third strike, after the restart, bans: the first two still count.
	e.event("2001:db8::42")
	e.waitFor("IPv6 ban", func() bool { return e.inMap("2001:db8::42") })
	e.kill9(d)
	e.startDaemon()
	out, _, _ := e.mj("show", "2001:db8::42")
	if n := strings.Count(out, "strike "); n != 3 {
		t.Errorf("strikes after two restarts = %d (counted twice or lost)\n%s", n, out)
	}
}

// An address in ignoreip is never banned, however often it appears.
func TestIgnoreIPNeverBanned(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startDaemon()
	for range 10 {
		e.event("192.0.2.77")
		e.event("::ffff:127.0.0.1")
	}
	for range 3 {
		e.event("198.51.100.5")
	}
	e.waitFor("the other address banned", func() bool { return e.inMap("198.51.100.5") })
	if got := e.mapAddrs(); len(got) != 1 {
		t.Fatalf("map = %v", got)
	}
}

// A second daemon on the same database refuses to start.
func TestSecondDaemonRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startDaemon()
	_, errs, code := e.mj("run")
	if code != 3 || !strings.Contains(errs, "locked by another mailjail process") {
		t.Fatalf("second daemon: exit %d %q", code, errs)
	}
	if _, err := os.Stat(e.mapf); err != nil {
		t.Fatal(err)
	}
}
