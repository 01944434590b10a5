package e2e

import (
	"os"
	"testing"
	"time"
)

// TestUnbanLetsBannedClientMailAgain drives the operator CLI against real traffic: a client
// that rspamd rate-limited into a ban is rejected with 554 Matched map; `mailjail unban`
// takes it out of the map before the command returns, and its next message through Postfix
// is accepted. A manual `mailjail ban` of a fresh client gets it rejected likewise.
func TestUnbanLetsBannedClientMailAgain(t *testing.T) {
	requireE2E(t)
	const (
		client = "198.51.100.31"
		manual = "2001:db8::31"
	)
	dir := daemonDir(t)
	cfg := newDaemonConfig(dir)
	cfg.BanTime = "1h"
	mapPath := cfg.MapFile
	bin := mailjailBinary(t)
	d, mw, cfgPath := startMapDaemon(t, dir, cfg)

	rateLimit(t, client, cfg.MaxRetry)
	if _, ok := mw.waitUntil(d.readyAt, 10*time.Second, func(s mapSnapshot) bool { return s.has(client) }); !ok {
		t.Fatalf("client %s not banned; map %v", client, mw.current())
	}
	expectReply(t, client, 554, "Matched map: "+mapRuleName, 10*time.Second)

	mj := func(args ...string) {
		t.Helper()
		out, err := mjCommand(bin, append([]string{"--config", cfgPath}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("mailjail %v: %v\n%s", args, err, out)
		}
	}
	mj("unban", client)
	if s := readMap(t, mapPath); s.has(client) {
		t.Fatalf("client %s still in the map when unban returned: %v", client, s)
	}
	n := expectReply(t, client, 250, "", 10*time.Second)
	t.Logf("client %s: 250 after unban (%d message(s))", client, n)

	mj("ban", manual, "--for", "10m", "--reason", "e2e")
	if s := readMap(t, mapPath); !s.has(manual) {
		t.Fatalf("client %s not in the map when ban returned: %v", manual, s)
	}
	expectReply(t, manual, 554, "Matched map: "+mapRuleName, 10*time.Second)
	mj("unban", manual)
	expectReply(t, manual, 250, "", 10*time.Second)
}

// readMap reads the map file now, as rspamd would.
func readMap(t *testing.T, path string) mapSnapshot {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading the map: %v", err)
	}
	addrs, bad := parseMap(data)
	return mapSnapshot{At: time.Now(), Addrs: addrs, Bad: bad}
}
