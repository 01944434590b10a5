package e2e

import (
	"testing"
	"time"
)

// TestRateLimitedClientsBannedThroughKillUntilBantimeExpires follows one ban from start to end
// with the real daemon, Postfix, rspamd and redis:
//
//   - ratelimit events logged before the daemon's first start are not counted;
//   - an IPv4 and an IPv6 client that rspamd rate-limits maxretry times are written to the
//     map, and rspamd then rejects them with 554 Matched map;
//   - a rate-limited client listed in ignoreip never appears in the map;
//   - after SIGKILL and a restart the bans are still in the map (never dropped in between),
//     and events logged while the daemon was down are counted after the restart;
//   - when bantime has passed, the addresses leave the map by themselves and mail passes.
func TestRateLimitedClientsBannedThroughKillUntilBantimeExpires(t *testing.T) {
	requireE2E(t)
	const (
		v4       = "198.51.100.23"
		v6       = "2001:db8::42"
		ignored  = "198.51.100.99"
		whenDown = "198.51.100.24" // rate limited while the daemon is dead
		maxretry = 3
		bantime  = 25 * time.Second
	)
	mapPath := mapFilePath()
	dir := daemonDir(t)
	cfg := newDaemonConfig(dir)
	cfg.IgnoreIP = append(cfg.IgnoreIP, ignored)
	cfg.MaxRetry = maxretry
	cfg.BanTime = bantime.String()
	cfgPath := writeConfig(t, dir, cfg)

	mailjailBinary(t) // build before any clock starts
	flushRatelimit(t)
	resetMap(t, mapPath)
	lt := tailLog(t, rspamdLogPath)
	mw := watchMap(t, mapPath, rspamdLogPath)

	// Log history from before the first start is not read (global.from_start defaults to false).
	pre := rateLimit(t, v4, maxretry-1)
	if pre.Passed == 0 {
		t.Fatalf("client %s: its first message was not accepted", v4)
	}

	d := startDaemon(t, dir, cfgPath, 1)
	since := d.readyAt
	if s := mw.current(); s.Gone || len(s.Addrs) != 0 || len(s.Bad) != 0 {
		t.Fatalf("map at READY=1 is %v (unparsable lines %q), want an existing empty map", s, s.Bad)
	}

	// The ignored client strikes first: its lines come before the others' in the log, so once
	// the others are banned the daemon has read its lines too.
	rateLimit(t, ignored, maxretry+1)
	r4 := rateLimit(t, v4, maxretry)
	r6 := rateLimit(t, v6, maxretry)
	if r4.Passed != 0 {
		t.Errorf("client %s: %d messages accepted after the ones before the start; its bucket should still be full", v4, r4.Passed)
	}
	if r6.Passed == 0 {
		t.Errorf("client %s: its first message was not accepted", v6)
	}

	lat4, ban4 := banLatency(t, lt, mw, v4, since, maxretry, 10*time.Second)
	lat6, ban6 := banLatency(t, lt, mw, v6, since, maxretry, 10*time.Second)
	t.Logf("client %s banned %v after its %d. ratelimit line (map %v)", v4, lat4.Round(time.Microsecond), maxretry, ban4)
	t.Logf("client %s banned %v after its %d. ratelimit line (map %v)", v6, lat6.Round(time.Microsecond), maxretry, ban6)
	t.Log(latencyLine([]time.Duration{lat4, lat6}) + " test=lifecycle")
	if n := len(lt.ratelimitEvents(ignored, since)); n < maxretry+1 {
		t.Errorf("client %s (ignoreip): %d ratelimit lines in the rspamd log, want %d", ignored, n, maxretry+1)
	}

	// rspamd must be able to read what the daemon wrote (it runs as _rspamd).
	if s := mw.current(); s.Mode.Perm()&0o004 == 0 {
		t.Errorf("map file mode %v (owner uid %d): rspamd, running as _rspamd, cannot read it", s.Mode, s.UID)
	}
	if s := mw.current(); len(s.Bad) > 0 {
		t.Errorf("map file has lines rspamd cannot parse: %q", s.Bad)
	}
	for _, addr := range []string{v4, v6} {
		n := expectReply(t, addr, 554, "Matched map: "+mapRuleName, 10*time.Second)
		t.Logf("client %s: 554 Matched map after flushing its bucket (%d message(s))", addr, n)
	}

	// SIGKILL, strikes while down, restart.
	killAt := time.Now()
	d.kill()
	rateLimit(t, whenDown, maxretry)
	d2 := startDaemon(t, dir, cfgPath, 2)
	if deadline := ban4.At.Add(bantime - 2*time.Second); d2.readyAt.After(deadline) {
		t.Fatalf("restart finished %v after the ban, too close to bantime %v to judge; raise bantime", d2.readyAt.Sub(ban4.At), bantime)
	}
	for _, s := range mw.since(killAt) {
		if !s.has(v4) || !s.has(v6) {
			t.Errorf("across SIGKILL and restart the map became %v at %v after the kill; want %s and %s kept",
				s, s.At.Sub(killAt).Round(time.Millisecond), v4, v6)
		}
	}
	if _, ok := mw.waitUntil(killAt, 10*time.Second, func(s mapSnapshot) bool { return s.has(whenDown) }); !ok {
		t.Errorf("client %s, rate limited %d times while the daemon was down, not banned within 10s of the restart; map %v",
			whenDown, maxretry, mw.current())
	}

	// Expiry: each address leaves the map by itself about bantime after it entered.
	for _, b := range []struct {
		addr string
		at   time.Time
	}{{v4, ban4.At}, {v6, ban6.At}} {
		s, ok := mw.waitUntil(b.at, bantime+20*time.Second, func(s mapSnapshot) bool { return !s.has(b.addr) })
		if !ok {
			t.Fatalf("client %s: still in the map %v after its ban (bantime %v); map %v", b.addr, time.Since(b.at).Round(time.Second), bantime, mw.current())
		}
		held := s.At.Sub(b.at)
		t.Logf("client %s: left the map %v after entering it (bantime %v)", b.addr, held.Round(time.Millisecond), bantime)
		// Log timestamps have 1 s resolution, so a ban may be computed from up to 1 s earlier.
		if held < bantime-1500*time.Millisecond {
			t.Errorf("client %s: unbanned after %v, before bantime %v", b.addr, held, bantime)
		}
		if held > bantime+5*time.Second {
			t.Errorf("client %s: unbanned after %v, more than 5 s past bantime %v", b.addr, held, bantime)
		}
	}
	for _, addr := range []string{v4, v6} {
		n := expectReply(t, addr, 250, "", 10*time.Second)
		t.Logf("client %s: 250 again after expiry (%d message(s))", addr, n)
	}
	if !holdsFor(func() bool { s := mw.current(); return !s.has(v4) && !s.has(v6) }, time.Second) {
		t.Errorf("expired clients came back into the map: %v", mw.current())
	}

	for _, s := range mw.history() {
		if s.has(ignored) {
			t.Errorf("client %s is in ignoreip but was in the map %v at %v", ignored, s, s.At.Format(time.StampMilli))
			break
		}
	}
	d2.stop()
	resetMap(t, mapPath)
	flushRatelimit(t)
}
