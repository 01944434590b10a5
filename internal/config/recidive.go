package config

import (
	"time"
)

// onBansDefaults are the policy of a jail that judges mailjail's own
// bans (recidive, network) when the jail leaves a key out. [defaults] does
// not apply to them: its maxretry, findtime and bantime are meant for
// log events, not for bans.
var onBansDefaults = map[string]struct {
	maxRetry          int
	findTime, banTime time.Duration
}{
	// fail2ban's recidive jail: 5 bans in a day, a week out.
	FilterRecidive: {5, 24 * time.Hour, 7 * 24 * time.Hour},
	// 5 addresses of one network banned in a day: the network for a day
	// (escalated like any ban when it comes back).
	FilterNetwork: {5, 24 * time.Hour, 24 * time.Hour},
}

// Default networks of a network jail: a /24 and a customer's /64.
const (
	DefaultNetworkPrefixV4 = 24
	DefaultNetworkPrefixV6 = 64
)

// applyOnBansDefaults gives a recidive or network jail its own defaults
// and keeps what only log jails take from [defaults] (logpath, buckets)
// away from it.
func applyOnBansDefaults(out *Jail, j jailFile) {
	out.IPv4Prefix = 32
	if !out.OnBans() {
		return
	}
	def := onBansDefaults[out.Filter]
	out.MaxRetry = deref(j.MaxRetry, def.maxRetry)
	out.FindTime = dur(j.FindTime, nil, def.findTime)
	out.BanTime = dur(j.BanTime, nil, def.banTime)
	out.LogPath, out.Buckets = j.LogPath, nil
	out.IPv6Prefix = 128
	if out.Network() {
		out.IPv4Prefix = deref(j.IPv4Prefix, DefaultNetworkPrefixV4)
		out.IPv6Prefix = deref(j.IPv6Prefix, DefaultNetworkPrefixV6)
	}
}

// validateOnBans checks what a jail says about the recidive and network
// rules: only a network jail takes ipv4_prefix, and a jail that reads
// mailjail's bans takes none of a log jail's sources.
func (c *Config) validateOnBans(p *problems, j *Jail) {
	k := "jail." + j.Name
	raw := c.raw[j.Name]
	if !j.OnBans() {
		if raw.IPv4Prefix != nil {
			p.add(c.errAt(k+".ipv4_prefix", "only a network jail (filter = %q) takes ipv4_prefix", FilterNetwork))
		}
		return
	}
	for _, f := range []struct {
		key string
		set bool
	}{
		{"logpath", raw.LogPath != nil}, {"journalmatch", raw.JournalMatch != nil}, {"buckets", raw.Buckets != nil},
		{"key", raw.Key != nil}, {"ipv4_prefix", raw.IPv4Prefix != nil && !j.Network()}, {"ipv6_prefix", raw.IPv6Prefix != nil && !j.Network()},
	} {
		if f.set {
			p.add(c.errAt(k+"."+f.key, "a %s jail reads mailjail's own bans, not a log: %s does not apply", j.Filter, f.key))
		}
	}
	g := c.Global
	if j.FindTime > g.DBPurgeAge {
		// The window is rebuilt from the ban history after a restart:
		// bans older than dbpurgeage are gone by then.
		p.add(c.errAt(k+".findtime", "%s is longer than [global] dbpurgeage %s, which purges the bans this jail counts: shorten findtime or raise dbpurgeage",
			FormatDuration(j.FindTime), FormatDuration(g.DBPurgeAge)))
	}
	if !j.Network() {
		return
	}
	if j.IPv4Prefix < g.MinPrefixV4 || j.IPv4Prefix > 32 {
		p.add(c.errAt(k+".ipv4_prefix", "must be between min_prefix_v4 (%d) and 32 (32: no IPv4 networks), got %d", g.MinPrefixV4, j.IPv4Prefix))
	}
	if j.IPv6Prefix < g.MinPrefixV6 {
		p.add(c.errAt(k+".ipv6_prefix", "must be at least min_prefix_v6 (%d), got %d", g.MinPrefixV6, j.IPv6Prefix))
	}
	if j.IPv4Prefix == 32 && j.IPv6Prefix == 128 {
		p.add(c.errAt(k+".ipv4_prefix", "with ipv4_prefix = 32 and ipv6_prefix = 128 the network jail groups no addresses"))
	}
}

// validateReservedFilters rejects a [filter.NAME] under a reserved name: a
// jail naming it gets the built-in rule on mailjail's bans, never the table.
func (c *Config) validateReservedFilters(p *problems) {
	for _, n := range []string{FilterRecidive, FilterNetwork} {
		if _, ok := c.Filters[n]; ok {
			p.add(c.errAt("filter."+n, "%q is the built-in rule on mailjail's own bans: choose another name for this filter", n))
		}
	}
}
