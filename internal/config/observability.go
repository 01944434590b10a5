package config

import (
	"net"
	"net/netip"
	"strconv"
)

// Log formats of [global] log_format.
const (
	LogText = "text" // logfmt: key=value, what journalctl shows best
	LogJSON = "json" // one JSON object a line, for log shippers
)

// validateObservability checks [global] metrics_listen, metrics_public and
// log_format. The metrics listener must be an IP literal and a port (a
// host name could resolve to anything, at any start), and loopback unless
// metrics_public says otherwise: the metrics name jails and log paths and
// have no authentication, so exposing them must be a decision.
func (c *Config) validateObservability(p *problems) {
	g := &c.Global
	switch g.LogFormat {
	case LogText, LogJSON:
	default:
		p.add(c.errAt("global.log_format", "must be %q or %q, got %q", LogText, LogJSON, g.LogFormat))
	}
	if g.MetricsListen == "" {
		if g.MetricsPublic {
			p.add(c.errAt("global.metrics_public", "has no effect without metrics_listen"))
		}
		return
	}
	host, port, err := net.SplitHostPort(g.MetricsListen)
	if err != nil {
		p.add(c.errAt("global.metrics_listen", "must be host:port (e.g. \"127.0.0.1:9617\"), got %q", g.MetricsListen))
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		p.add(c.errAt("global.metrics_listen", "port must be 1 to 65535, got %q", port))
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		p.add(c.errAt("global.metrics_listen", "host must be an IP address (e.g. 127.0.0.1 or [::1]), got %q", host))
		return
	}
	if !a.IsLoopback() && !g.MetricsPublic {
		p.add(c.errAt("global.metrics_listen", "%s is not a loopback address: the metrics have no authentication; set metrics_public = true to listen there anyway", host))
	}
}
