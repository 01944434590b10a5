package config

import (
	"strings"
	"testing"
	"time"
)

// A recidive or network jail takes its own defaults, not [defaults]'
// (meant for log events), and no log.
func TestHistoryJailDefaults(t *testing.T) {
	c, got := validate(t, "[defaults]\nmaxretry = 2\nfindtime = \"10m\"\nbantime = \"1h\"\nlogpath = [\"/l\"]\n"+okJail+"[jail.recidive]\n[jail.net]\nfilter = \"network\"\n")
	if got != "" {
		t.Fatal(got)
	}
	tests := []struct {
		name              string
		maxRetry          int
		findTime, banTime time.Duration
		v4, v6            int
	}{
		{"recidive", 5, 24 * time.Hour, 7 * 24 * time.Hour, 32, 128},
		{"net", 5, 24 * time.Hour, 24 * time.Hour, 24, 64},
		{"ok", 2, 10 * time.Minute, time.Hour, 32, 128},
	}
	for _, tt := range tests {
		j := c.Jail(tt.name)
		if j.MaxRetry != tt.maxRetry || j.FindTime != tt.findTime || j.BanTime != tt.banTime || j.IPv4Prefix != tt.v4 || j.IPv6Prefix != tt.v6 {
			t.Errorf("%s: maxretry %d findtime %v bantime %v ipv4_prefix %d ipv6_prefix %d", tt.name, j.MaxRetry, j.FindTime, j.BanTime, j.IPv4Prefix, j.IPv6Prefix)
		}
		if j.OnBans() != (tt.name != "ok") || (j.OnBans() && j.LogPath != nil) {
			t.Errorf("%s: on history %v, logpath %v", tt.name, j.OnBans(), j.LogPath)
		}
	}
	if r := c.Jail("recidive"); !r.Recidive() || r.Network() {
		t.Error("[jail.recidive] is not a recidive jail")
	}
	if _, err := c.CompileFilter("network"); err == nil || !strings.Contains(err.Error(), "reads no log line") {
		t.Errorf("CompileFilter(network) = %v, want the reserved name explained", err)
	}
}

// Every setting of the recidive and network rules works or check
// rejects it, at its line.
func TestHistoryJailChecks(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"logpath", "[jail.recidive]\nlogpath = [\"/l\"]\n", `t.toml:5: jail.recidive.logpath: a recidive jail reads mailjail's own bans, not a log: logpath does not apply`},
		{"journalmatch", "[jail.r]\nfilter = \"recidive\"\njournalmatch = { units = [\"postfix.service\"] }\n", "t.toml:6: jail.r.journalmatch: a recidive jail reads"},
		{"buckets", "[jail.n]\nfilter = \"network\"\nbuckets = [\"ip\"]\n", "t.toml:6: jail.n.buckets: a network jail reads"},
		{"key", "[jail.n]\nfilter = \"network\"\nkey = \"account\"\n", "t.toml:6: jail.n.key: a network jail reads"},
		{"ipv4_prefix on recidive", "[jail.recidive]\nipv4_prefix = 24\n", "t.toml:5: jail.recidive.ipv4_prefix: a recidive jail reads"},
		{"ipv6_prefix on recidive", "[jail.recidive]\nipv6_prefix = 64\n", "t.toml:5: jail.recidive.ipv6_prefix: a recidive jail reads"},
		{"ipv4_prefix on a log jail", "ipv4_prefix = 24\n", `t.toml:4: jail.ok.ipv4_prefix: only a network jail (filter = "network") takes ipv4_prefix`},
		{"ipv4_prefix below min_prefix_v4", "[jail.n]\nfilter = \"network\"\nipv4_prefix = 8\n", "t.toml:6: jail.n.ipv4_prefix: must be between min_prefix_v4 (16) and 32 (32: no IPv4 networks), got 8"},
		{"ipv4_prefix above 32", "[jail.n]\nfilter = \"network\"\nipv4_prefix = 33\n", "t.toml:6: jail.n.ipv4_prefix: must be between"},
		{"ipv6_prefix below min_prefix_v6", "[jail.n]\nfilter = \"network\"\nipv6_prefix = 40\n[global]\nmin_prefix_v6 = 48\n", "t.toml:6: jail.n.ipv6_prefix: must be at least min_prefix_v6 (48), got 40"},
		{"groups nothing", "[jail.n]\nfilter = \"network\"\nipv4_prefix = 32\nipv6_prefix = 128\n", "t.toml:6: jail.n.ipv4_prefix: with ipv4_prefix = 32 and ipv6_prefix = 128 the network jail groups no addresses"},
		{"findtime beyond dbpurgeage", "[jail.recidive]\nfindtime = \"60d\"\n", "t.toml:5: jail.recidive.findtime: 8w4d is longer than [global] dbpurgeage 4w2d"},
		{"reserved filter", "[filter.recidive]\nfailregex = ['x <HOST>']\n", `t.toml:4: filter.recidive: "recidive" is the built-in rule on mailjail's own bans`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErrors(t, okJail+tt.src, tt.want)
		})
	}
	if _, got := validate(t, okJail+"[jail.n]\nfilter = \"network\"\nipv4_prefix = 20\nipv6_prefix = 128\n[jail.recidive]\nmaxretry = 3\nfindtime = \"12h\"\nbantime = \"permanent\"\n"); got != "" {
		t.Errorf("a valid pair of history jails: %s", got)
	}
}
