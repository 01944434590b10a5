package config

// Jail modes. A rate jail also has "suspend" (rate_key = "sasl_username").
const (
	ModeBan     = "ban"
	ModeLogOnly = "log-only"
)

// LogOnly reports whether the jail only records what it would do: its
// bans are would-be bans (recorded, alerted, listed by list --would-ban)
// that no target is given and no action or webhook is run for; an account
// jail's suspensions are recorded as not enforced.
func (j *Jail) LogOnly() bool { return j.Mode == ModeLogOnly }

// jailMode is the mode a jail gets: its own, else [defaults]'. A rate
// jail that writes none takes "log-only" when [defaults] says so (trying
// every jail at once), else its rate key's: "ban" for rate_key =
// "client" (only an address can go into the map), "log-only" for the
// others; [defaults] mode = "ban" does not override that.
func jailMode(j, d jailFile) string {
	if j.Mode != nil {
		return *j.Mode
	}
	def := deref(d.Mode, ModeBan)
	if j.RateKey == nil || def == ModeLogOnly {
		return def
	}
	if *j.RateKey == "client" {
		return ModeBan
	}
	return ModeLogOnly
}

// validateDefaultMode checks [defaults] mode: "suspend" is a rate jail's
// own (it needs rate_key = "sasl_username"), not a default for all.
func (c *Config) validateDefaultMode(p *problems) {
	if m := c.rawDefaults.Mode; m != nil && *m != ModeBan && *m != ModeLogOnly {
		p.add(c.errAt("defaults.mode", `must be %q or %q, got %q`, ModeBan, ModeLogOnly, *m))
	}
}

// validateMode checks a jail's mode; a rate jail's is checked with its
// rate keys (validateRate).
func (c *Config) validateMode(p *problems, j *Jail) {
	if j.Rate != nil || j.Mode == ModeBan || j.Mode == ModeLogOnly {
		return
	}
	key := c.jkey(j, "mode")
	if j.Mode == "suspend" {
		p.add(c.errAt(key, `"suspend" is a rate jail's mode (rate_key = "sasl_username"); an account jail suspends with key = "account"`))
		return
	}
	p.add(c.errAt(key, `must be %q or %q, got %q`, ModeBan, ModeLogOnly, j.Mode))
}
