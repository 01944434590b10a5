package e2e

import (
	"testing"
	"time"
)

// TestNetworkBanReachesTheMap: three clients of one /24 rate limited by rspamd into bans
// make the network jail ban the /24; the /24 is one line of the real rspamd map, and a
// fourth client of it, never rate limited, gets 554 Matched map.
func TestNetworkBanReachesTheMap(t *testing.T) {
	requireE2E(t)
	clients, network, other := []string{"198.18.77.1", "198.18.77.2", "198.18.77.3"}, "198.18.77.0/24", "198.18.77.99"
	dir := daemonDir(t)
	cfg := newDaemonConfig(dir)
	cfg.BanTime = "10m"
	cfg.Extra = "[jail.networks]\nfilter = \"network\"\nmaxretry = 3\nfindtime = \"1h\"\nbantime = \"10m\"\n"
	d, mw, _ := startMapDaemon(t, dir, cfg)

	for _, c := range clients {
		rateLimit(t, c, cfg.MaxRetry)
		if _, ok := mw.waitUntil(d.readyAt, 10*time.Second, func(s mapSnapshot) bool { return s.has(c) }); !ok {
			t.Fatalf("client %s not banned; map %v", c, mw.current())
		}
	}
	if _, ok := mw.waitUntil(d.readyAt, 10*time.Second, func(s mapSnapshot) bool { return s.has(network) }); !ok {
		t.Fatalf("network %s not banned after %d of its clients; map %v", network, len(clients), mw.current())
	}
	expectReply(t, other, 554, "Matched map: "+mapRuleName, 10*time.Second)
	if n := dbCount(t, cfg.Database, `SELECT COUNT(*) FROM bans WHERE jail = 'networks' AND addr = %s`, network); n != 1 {
		t.Errorf("%d bans of %s in the database, want 1", n, network)
	}
}
