package e2e

import (
	"encoding/json"
	"testing"
	"time"
)

// TestLogOnlyJailNeverTouchesTheRealMap runs the real daemon with its jail in mode =
// "log-only" against the real rspamd: a client rspamd rate-limits maxretry times is recorded
// as a would-be ban (mailjail list --would-ban), never enters the map rspamd reads, and its
// mail passes again once its bucket is flushed (250, not 554 Matched map).
func TestLogOnlyJailNeverTouchesTheRealMap(t *testing.T) {
	requireE2E(t)
	const (
		client   = "198.51.100.61"
		maxretry = 3
	)
	mapPath := mapFilePath()
	dir := daemonDir(t)
	cfg := newDaemonConfig(dir)
	cfg.MaxRetry = maxretry
	cfg.Extra = `mode = "log-only"`
	cfgPath := writeConfig(t, dir, cfg)
	bin := mailjailBinary(t)
	flushRatelimit(t)
	resetMap(t, mapPath)
	mw := watchMap(t, mapPath, rspamdLogPath)
	d := startDaemon(t, dir, cfgPath, 1)
	start := time.Now()

	rateLimit(t, client, maxretry+2)
	var would struct {
		Bans []struct {
			Addr    string `json:"addr"`
			Jail    string `json:"jail"`
			LogOnly bool   `json:"log_only"`
		} `json:"bans"`
	}
	if !waitFor(func() bool {
		out, err := mjCommand(bin, "--config", cfgPath, "list", "--would-ban", "--json").Output()
		return err == nil && json.Unmarshal(out, &would) == nil && len(would.Bans) == 1
	}, 10*time.Second) {
		t.Fatalf("no would-be ban of %s within 10s; daemon output:\n%s", client, d.output())
	}
	if b := would.Bans[0]; b.Addr != client || b.Jail != "rspamd-ratelimit" || !b.LogOnly {
		t.Errorf("would-be ban %+v, want %s in rspamd-ratelimit", b, client)
	}
	if s := showAddr(t, bin, cfgPath, client); len(s.Strikes) != maxretry {
		t.Errorf("%d strikes recorded, want %d (later events are the would-be ban working)", len(s.Strikes), maxretry)
	}
	// rspamd rereads the map within milliseconds: a second is long enough to see a write.
	holdsFor(func() bool { return !mw.current().has(client) }, time.Second)
	for _, s := range mw.since(start) {
		if s.has(client) {
			t.Fatalf("a log-only jail put %s into the map at %v: %v", client, s.At, s)
		}
	}
	n := expectReply(t, client, 250, "", 10*time.Second)
	t.Logf("client %s: 250 after its would-be ban (%d message(s))", client, n)
	d.stop()
	resetMap(t, mapPath)
	flushRatelimit(t)
}
