package e2e

import (
	"fmt"
	"testing"
	"time"
)

// TestClientsBannedPromptlyAfterMaxretryEvents rate-limits a dozen IPv4 and IPv6 clients one
// after another and measures, for each, the time from the rspamd log line of its maxretry-th
// ratelimit event to the map listing it. Every client must be banned, none before its
// maxretry-th event, each within 5 s. The test logs the suite's E2E-LATENCY line.
func TestClientsBannedPromptlyAfterMaxretryEvents(t *testing.T) {
	requireE2E(t)
	const maxretry = 3
	var clients []string
	for i := 1; i <= 6; i++ {
		clients = append(clients, fmt.Sprintf("198.51.100.%d", 100+i), fmt.Sprintf("2001:db8:1::%x", i))
	}
	mapPath := mapFilePath()
	dir := daemonDir(t)
	cfg := newDaemonConfig(dir)
	cfg.MaxRetry = maxretry
	cfg.BanTime = "10m"
	cfgPath := writeConfig(t, dir, cfg)

	mailjailBinary(t)
	flushRatelimit(t)
	resetMap(t, mapPath)
	lt := tailLog(t, rspamdLogPath)
	mw := watchMap(t, mapPath, rspamdLogPath)
	d := startDaemon(t, dir, cfgPath, 1)

	var samples []time.Duration
	for _, c := range clients {
		rateLimit(t, c, maxretry)
	}
	for _, c := range clients {
		lat, _ := banLatency(t, lt, mw, c, d.readyAt, maxretry, 5*time.Second)
		samples = append(samples, lat)
	}
	t.Logf("per client: %v", samples)
	t.Log(latencyLine(samples) + " test=many-clients")
	if s := mw.current(); len(s.Addrs) != len(clients) {
		t.Errorf("map lists %d entries, want the %d clients: %v", len(s.Addrs), len(clients), s)
	}
	d.stop()
	resetMap(t, mapPath)
	flushRatelimit(t)
}
