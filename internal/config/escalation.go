package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// escalationFile is the escalation keys a jail (or [defaults]) writes
// beside bantime_factor, bantime_maxtime and bantime_lookback: fail2ban's
// bantime.* keys with their meanings, and permanent_after.
type escalationFile struct {
	Increment *bool `toml:"bantime_increment"`
	// Multipliers is a list of numbers or, as fail2ban writes it, a string
	// of them ("1 5 30 60"); it is read by parseMultipliers.
	Multipliers    any       `toml:"bantime_multipliers"`
	RndTime        *Duration `toml:"bantime_rndtime"`
	OverallJails   *bool     `toml:"bantime_overalljails"`
	PermanentAfter *int      `toml:"permanent_after"`
}

// legacyFactor reports whether the file was written for bantime_factor's
// former meaning (the base of the power): it sets no bantime_increment,
// a key that came with fail2ban's meaning. Such a file keeps the lengths
// it was written for, with a warning (legacyWarning).
func legacyFactor(d jailFile, jails map[string]jailFile) bool {
	if d.Increment != nil {
		return false
	}
	for _, j := range jails {
		if j.Increment != nil {
			return false
		}
	}
	return true
}

// buildEscalation fills out's escalation from the jail j and [defaults]
// d. A bantime_factor written for its former meaning becomes the legacy
// base (always escalating, as it did: a base of 1 gave every ban bantime).
func buildEscalation(out *Jail, j, d jailFile, legacy bool) {
	out.BanIncrement = deref(j.Increment, deref(d.Increment, true))
	m := j.Multipliers
	if m == nil {
		m = d.Multipliers
	}
	out.BanMultipliers, _ = parseMultipliers(m)
	out.BanRndTime = dur(j.RndTime, d.RndTime, 0)
	out.OverallJails = deref(j.OverallJails, deref(d.OverallJails, false))
	out.PermanentAfter = deref(j.PermanentAfter, deref(d.PermanentAfter, 0))
	if legacy && (j.BanFactor != nil || d.BanFactor != nil) {
		out.BanLegacyBase, out.BanFactor = out.BanFactor, 1
	}
}

// parseMultipliers reads bantime_multipliers: a TOML list of numbers, or
// fail2ban's string of numbers separated by spaces. nil is "not set".
func parseMultipliers(v any) ([]float64, error) {
	var items []any
	switch v := v.(type) {
	case nil:
		return nil, nil
	case string:
		for _, f := range strings.Fields(v) {
			items = append(items, f)
		}
	case []any:
		items = v
	default:
		return nil, fmt.Errorf("must be a list of numbers, as [1, 5, 30, 60], or a string of them, got %v", v)
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("lists no multiplier: leave it out to use the formula")
	}
	out := make([]float64, 0, len(items))
	for _, it := range items {
		var f float64
		switch it := it.(type) {
		case int64:
			f = float64(it)
		case float64:
			f = it
		case string:
			var err error
			if f, err = strconv.ParseFloat(it, 64); err != nil {
				return nil, fmt.Errorf("%q is not a number", it)
			}
		default:
			return nil, fmt.Errorf("%v is not a number", it)
		}
		if !(f > 0) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("multipliers must be positive numbers, got %g", f)
		}
		out = append(out, f)
	}
	return out, nil
}

// validateEscalation checks a jail's escalation keys and warns about a
// bantime_factor read in its former meaning.
func (c *Config) validateEscalation(p *problems, j *Jail) {
	raw, def := c.raw[j.Name], c.rawDefaults
	if j.BanLegacyBase > 0 {
		if j.BanLegacyBase < 1 {
			p.add(c.errAt(c.jkey(j, "bantime_factor"), "must be at least 1 (1 turns escalation off), got %g", j.BanLegacyBase))
		}
	} else if !(j.BanFactor > 0) || math.IsInf(j.BanFactor, 0) {
		p.add(c.errAt(c.jkey(j, "bantime_factor"), "must be a positive number, got %g", j.BanFactor))
	}
	if j.BanMultipliers != nil && (raw.BanFactor != nil || def.BanFactor != nil) {
		p.add(c.errAt(c.jkey(j, "bantime_factor"), "contradicts bantime_multipliers (%s): the multipliers give the lengths; remove one of the two",
			c.jkey(j, "bantime_multipliers")))
	}
	if j.BanRndTime < 0 {
		p.add(c.errAt(c.jkey(j, "bantime_rndtime"), "must be a positive duration (or left out for none)"))
	}
	if j.PermanentAfter < 0 {
		p.add(c.errAt(c.jkey(j, "permanent_after"), "must be a number of bans, at least 1 (0 or left out: never), got %d", j.PermanentAfter))
	}
	if j.Lookback > c.Global.DBPurgeAge {
		p.add(c.errAt(c.jkey(j, "bantime_lookback"), "%s is longer than [global] dbpurgeage %s: the bans it would count are purged before; raise dbpurgeage or shorten the lookback",
			FormatDuration(j.Lookback), FormatDuration(c.Global.DBPurgeAge)))
	}
	c.validateIncrementOff(p, j)
}

// warnLegacy warns about each bantime_factor read in its former meaning
// (in [defaults] and in every jail, enabled or not), with the lengths it
// gives with the table's bantime and bantime_maxtime.
func (c *Config) warnLegacy() {
	if !legacyFactor(c.rawDefaults, c.raw) {
		return
	}
	def := c.rawDefaults
	if def.BanFactor != nil {
		c.warn(c.errAt("defaults.bantime_factor", "%s",
			legacyWarning(*def.BanFactor, dur(def.BanTime, nil, DefaultBanTime), dur(def.BanMaxTime, nil, DefaultBanMaxTime))))
	}
	for _, j := range c.Jails {
		if f := c.raw[j.Name].BanFactor; f != nil {
			c.warn(c.errAt("jail."+j.Name+".bantime_factor", "%s", legacyWarning(*f, j.BanTime, j.BanMaxTime)))
		}
	}
}

// validateIncrementOff rejects escalation keys that bantime_increment =
// false makes do nothing, written in the table that turns it off (or in
// the jail that inherits the off from [defaults]).
func (c *Config) validateIncrementOff(p *problems, j *Jail) {
	if j.BanIncrement {
		return
	}
	raw, def := c.raw[j.Name], c.rawDefaults
	for _, t := range []struct {
		table string
		f     jailFile
	}{{"defaults", def}, {"jail." + j.Name, raw}} {
		if t.table == "defaults" && (def.Increment == nil || *def.Increment) {
			continue
		}
		for _, k := range []struct {
			key string
			set bool
		}{
			{"bantime_factor", t.f.BanFactor != nil}, {"bantime_multipliers", t.f.Multipliers != nil}, {"bantime_maxtime", t.f.BanMaxTime != nil},
			{"bantime_rndtime", t.f.RndTime != nil}, {"bantime_overalljails", t.f.OverallJails != nil},
		} {
			if k.set {
				p.add(c.errAt(t.table+"."+k.key, "does nothing with bantime_increment = false (%s), which gives every ban bantime: remove one of the two",
					c.jkey(j, "bantime_increment")))
			}
		}
	}
}

// Defaults of the ban length keys.
const (
	DefaultBanTime    = time.Hour
	DefaultBanMaxTime = 7 * 24 * time.Hour
)

// warn records a warning, once.
func (c *Config) warn(e *Error) {
	s := e.Error()
	for _, w := range c.warnings {
		if w.Error() == s {
			return
		}
	}
	c.warnings = append(c.warnings, e)
}

// Warnings are what Validate accepted but the operator should change,
// each located as FILE:LINE: KEY: PROBLEM: `check` prints them, the
// daemon logs them at start and reload.
func (c *Config) Warnings() []error { return c.warnings }

// legacyWarning explains a bantime_factor read in its former meaning and
// gives what to write instead: multipliers giving the same lengths (up to
// the first that reaches maxtime, which repeats; at most 20), or
// fail2ban's meaning.
func legacyWarning(base float64, bantime, maxtime time.Duration) string {
	if bantime <= 0 {
		bantime = time.Hour
	}
	var lengths []string
	l := float64(bantime)
	for i := 0; i < 3; i++ {
		lengths = append(lengths, FormatDuration(time.Duration(min(l, float64(MaxDuration)))))
		l *= base
	}
	then := " and set `bantime_increment = true` in [defaults]"
	var instead string
	switch base {
	case 1:
		instead, then = "`bantime_increment = false`", ""
	case 2:
		instead = "`bantime_factor = 1` (fail2ban's formula doubles)"
	default:
		var ms []string
		reached := false
		for i := 0; i < 20 && !reached; i++ {
			m := math.Pow(base, float64(i))
			ms = append(ms, strconv.FormatFloat(m, 'g', 10, 64))
			reached = float64(bantime)*m >= float64(maxtime)
		}
		instead = "`bantime_multipliers = [" + strings.Join(ms, ", ") + "]`"
		if !reached {
			instead += " (the same lengths up to the 20th ban; the former ones grew on to bantime_maxtime)"
		}
	}
	return fmt.Sprintf("warning: read in its former meaning, as no table sets bantime_increment: each earlier ban multiplies the ban by %g (%s, ...). "+
		"bantime_factor now means what fail2ban's bantime.factor does (bantime × factor × 2^earlier bans), in every table once one sets bantime_increment. "+
		"To keep these lengths, replace this line by %s%s; to take fail2ban's meaning, set `bantime_increment = true`",
		base, strings.Join(lengths, ", "), instead, then)
}
