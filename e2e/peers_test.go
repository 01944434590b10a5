package e2e

import (
	"os"
	"testing"
	"time"
)

// TestPeersRateLimitAndRejectMappedClients checks the environment itself, without mailjail:
// Postfix + rspamd accept a client's first messages, then soft-reject it with
// 451 Ratelimit "ip" exceeded (one rspamd summary line per message), and reject a client
// listed in the map with 554 Matched map, a few ms after the file is replaced. When this test
// fails, the daemon tests cannot tell anything.
func TestPeersRateLimitAndRejectMappedClients(t *testing.T) {
	requireE2E(t)
	const (
		v4 = "198.51.100.60"
		v6 = "2001:db8::60"
	)
	mapPath := mapFilePath()
	flushRatelimit(t)
	resetMap(t, mapPath)
	lt := tailLog(t, rspamdLogPath)
	start := time.Now()

	for _, addr := range []string{v4, v6} {
		t0 := time.Now()
		r := rateLimit(t, addr, 2)
		t.Logf("client %s: %d accepted, then 2 soft rejects; %d messages in %v", addr, r.Passed, r.Passed+2, time.Since(t0).Round(time.Millisecond))
		if r.Passed == 0 {
			t.Errorf("client %s: first message was not accepted", addr)
		}
		var ev []logLine
		if !waitFor(func() bool { ev = lt.ratelimitEvents(addr, start); return len(ev) >= 2 }, 5*time.Second) || len(ev) != 2 {
			t.Errorf("client %s: %d ratelimit summary lines in the rspamd log, want 2 (one per rejected message)", addr, len(ev))
		}
	}

	// A listed client is rejected once rspamd has reread the map.
	tmp := mapPath + ".e2e-tmp"
	if err := os.WriteFile(tmp, []byte("# written by the e2e test\n"+v4+"\n"+v6+"/128\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, mapPath); err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{v4, v6} {
		n := expectReply(t, addr, 554, "Matched map: "+mapRuleName, 10*time.Second)
		t.Logf("client %s: 554 Matched map after %d message(s)", addr, n)
	}

	// Emptying the map lets them through again.
	resetMap(t, mapPath)
	for _, addr := range []string{v4, v6} {
		n := expectReply(t, addr, 250, "", 10*time.Second)
		t.Logf("client %s: 250 again after %d message(s)", addr, n)
	}
	flushRatelimit(t)
}
