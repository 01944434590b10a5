package config

import "time"

// Breaker is the circuit breaker for mass bans: a filter broken by an
// rspamd upgrade can match every client, and must not lock a country out.
// When it trips, bans are still recorded but the targets (and the bans'
// actions and webhooks) get no new ones until `mailjail resume`.
type Breaker struct {
	// Bans and Window: more than Bans new bans by the jails inside Window
	// trip it (0: off). Manual bans and log-only jails' would-be bans do
	// not count.
	Bans   int
	Window time.Duration
	// MaxEntries trips it when a new ban would make the enforced active
	// bans more than this (0: off).
	MaxEntries int
	// windowErr is a breaker_window that did not parse, for Validate.
	windowErr error
}

// Enabled reports whether either rule is on.
func (b Breaker) Enabled() bool { return b.Bans > 0 || b.MaxEntries > 0 }

// Breaker defaults: a host under a botnet's attack bans tens of
// addresses a minute, hundreds at worst; a thousand in a minute is a
// filter matching everyone. A map of a million entries is a country.
const (
	DefaultBreakerBans       = 1000
	DefaultBreakerWindow     = time.Minute
	DefaultBreakerMaxEntries = 1_000_000
	// maxBreakerBans bounds the memory the rate rule keeps (one time per
	// counted ban).
	maxBreakerBans = 10_000_000
)

// breakerFile is the breaker's [global] keys as written.
type breakerFile struct {
	BreakerBans       *int      `toml:"breaker_bans"`
	BreakerWindow     *Duration `toml:"breaker_window"`
	BreakerMaxEntries *int      `toml:"breaker_max_entries"`
}

func buildBreaker(f breakerFile) Breaker {
	return Breaker{
		Bans:       deref(f.BreakerBans, DefaultBreakerBans),
		Window:     dur(f.BreakerWindow, nil, DefaultBreakerWindow),
		MaxEntries: deref(f.BreakerMaxEntries, DefaultBreakerMaxEntries),
		windowErr:  durErr(f.BreakerWindow),
	}
}

// durErr is the error of a written duration that did not parse.
func durErr(d *Duration) error {
	if d == nil {
		return nil
	}
	return d.err
}

// validateBreaker checks the breaker's keys; a window without the rate
// rule would do nothing.
func (c *Config) validateBreaker(p *problems) {
	b := c.Global.Breaker
	if b.Bans < 0 || b.Bans > maxBreakerBans {
		p.add(c.errAt("global.breaker_bans", "must be between 0 (off) and %d, got %d", maxBreakerBans, b.Bans))
	}
	if b.MaxEntries < 0 {
		p.add(c.errAt("global.breaker_max_entries", "must be 0 (off) or more, got %d", b.MaxEntries))
	}
	w := c.lines["global.breaker_window"] > 0
	switch {
	case b.windowErr != nil:
		p.add(c.errAt("global.breaker_window", "%v", b.windowErr))
	case w && b.Bans == 0:
		p.add(c.errAt("global.breaker_window", "breaker_bans = 0 turns the rate rule off: this window would do nothing"))
	case b.Window < time.Second || b.Window > 24*time.Hour:
		p.add(c.errAt("global.breaker_window", "must be a duration between 1s and 1d"))
	}
}
