package config

import (
	"os"
	"time"
)

// Cluster is the [cluster] section: this node's name among the mailjail
// nodes that share their bans through the [redis] server. Enabled is
// whether the section is written; without it mailjail runs alone.
type Cluster struct {
	Enabled bool `toml:"-"`
	// Node names this host in the shared state, status and alerts
	// (default: the host name).
	Node string `toml:"node"`
	// ResyncInterval is how often the whole shared state is compared
	// with the local one, the safety net under publish/subscribe.
	ResyncInterval Duration `toml:"resync_interval"`
}

// applyClusterDefaults fills [cluster] when it is written.
func (c *Config) applyClusterDefaults(f *Cluster) {
	if f == nil {
		return
	}
	c.Cluster = *f
	c.Cluster.Enabled = true
	if c.Cluster.Node == "" {
		c.Cluster.Node, _ = os.Hostname()
	}
	if c.Cluster.ResyncInterval.D == 0 && c.Cluster.ResyncInterval.err == nil {
		c.Cluster.ResyncInterval.D = time.Minute
	}
}

// validateCluster checks [cluster] and the [redis] connection it uses.
func (c *Config) validateCluster(p *problems) {
	if !c.Cluster.Enabled {
		return
	}
	if n := c.Cluster.Node; !validName(n) || len(n) > 128 {
		p.add(c.errAt("cluster.node", "must be letters, digits, '.', '_' and '-' (at most 128), got %q", n))
	}
	if d := c.Cluster.ResyncInterval; d.err != nil {
		p.add(c.errAt("cluster.resync_interval", "%v", d.err))
	} else if d.D < time.Second {
		p.add(c.errAt("cluster.resync_interval", "must be at least 1s, got %s", FormatDuration(d.D)))
	}
	if !c.UsesTarget(TargetRspamdRedis) {
		c.validateRedisConn(p)
	}
}
