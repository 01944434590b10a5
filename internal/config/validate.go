package config

import (
	"errors"
	"fmt"
	"net/mail"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mailjail/mailjail/rules"
	"github.com/mailjail/mailjail/rules/bucket"
)

// Validate checks everything Parse cannot: filters compile, durations and
// counts make sense, addresses parse. It reports every problem, not just
// the first, each located.
func (c *Config) Validate() error {
	var errs []error
	add := func(e *Error) { errs = append(errs, e) }
	if _, err := rules.NewIPSet(c.Global.IgnoreIP); err != nil {
		add(c.errAt("global.ignoreip", "%v", err))
	}
	if c.Global.Timezone != "" {
		if _, err := time.LoadLocation(c.Global.Timezone); err != nil {
			add(c.errAt("global.timezone", "unknown time zone %q", c.Global.Timezone))
		}
	}
	for key, p := range map[string]string{"global.database": c.Global.Database, "global.map_file": c.Global.MapFile, "global.socket": c.Global.Socket} {
		if !filepath.IsAbs(p) {
			add(c.errAt(key, "must be an absolute path, got %q", p))
		}
	}
	switch c.Global.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		add(c.errAt("global.log_level", "must be debug, info, warn or error, got %q", c.Global.LogLevel))
	}
	if c.Alert.SMTP != "" || len(c.Alert.To) > 0 {
		if c.Alert.SMTP == "" || len(c.Alert.To) == 0 {
			add(c.errAt("alert", "smtp and to must be set together"))
		}
		for _, a := range append([]string{c.Alert.From}, c.Alert.To...) {
			if a == "" {
				continue
			}
			if _, err := mail.ParseAddress(a); err != nil || strings.ContainsAny(a, "\r\n") {
				add(c.errAt("alert", "invalid address %q", a))
			}
		}
	}
	for name, spec := range c.Filters {
		if _, err := rules.CompileFilter(name, spec); err != nil {
			add(c.errAt("filter."+name+".failregex", "%v", err))
		}
	}
	enabled := 0
	for _, j := range c.Jails {
		k := "jail." + j.Name
		if !j.Enabled {
			continue
		}
		enabled++
		if j.Rate != nil {
			for _, e := range c.validateRate(j) {
				add(e)
			}
		} else if _, err := c.CompileFilter(j.Filter); err != nil {
			add(c.errAt(k+".filter", "%v", err))
		}
		if len(j.LogPath) == 0 && j.Journal == nil {
			add(c.errAt(k+".logpath", "no log file (or journalmatch) to follow"))
		}
		if jm := j.Journal; jm != nil && len(jm.Units) == 0 && len(jm.Identifiers) == 0 {
			add(c.errAt(k+".journalmatch", "needs units or identifiers"))
		}
		for _, p := range j.LogPath {
			if !filepath.IsAbs(p) {
				add(c.errAt(k+".logpath", "must be an absolute path, got %q", p))
			} else if _, err := filepath.Match(p, ""); err != nil {
				add(c.errAt(k+".logpath", "bad glob %q: %v", p, err))
			}
		}
		if j.MaxRetry < 1 {
			add(c.errAt(k+".maxretry", "must be at least 1, got %d", j.MaxRetry))
		}
		if j.FindTime <= 0 {
			add(c.errAt(k+".findtime", "must be a positive duration"))
		}
		if j.BanTime == 0 {
			add(c.errAt(k+".bantime", "must be a positive duration or \"permanent\""))
		}
		if j.BanFactor < 1 {
			add(c.errAt(k+".bantime_factor", "must be at least 1 (1 turns escalation off), got %g", j.BanFactor))
		}
		if j.BanMaxTime < 0 || j.Lookback < 0 {
			add(c.errAt(k+".bantime_maxtime", "must be a positive duration"))
		}
		if _, err := rules.NewIPSet(j.IgnoreIP); err != nil {
			add(c.errAt(k+".ignoreip", "%v", err))
		}
		if j.IPv6Prefix < 32 || j.IPv6Prefix > 128 {
			add(c.errAt(k+".ipv6_prefix", "must be between 32 and 128, got %d", j.IPv6Prefix))
		}
		for _, b := range j.Buckets {
			if b == "" || strings.ContainsAny(b, "\" ") {
				add(c.errAt(k+".buckets", "invalid bucket name %q", b))
			}
		}
		for key, argv := range map[string][]string{"ban_action": j.BanAction, "unban_action": j.UnbanAction} {
			if len(argv) > 0 && !filepath.IsAbs(argv[0]) {
				add(c.errAt(k+"."+key, "program must be an absolute path (it runs without a shell), got %q", argv[0]))
			}
		}
	}
	if enabled == 0 {
		errs = append(errs, &Error{File: c.Source, Key: "jail", Msg: "no enabled jail"})
	}
	return errors.Join(errs...)
}

// validateRate checks a rate jail and fills in its parsed limits.
func (c *Config) validateRate(j *Jail) []*Error {
	k := "jail." + j.Name
	raw := c.raw[j.Name]
	r := j.Rate
	var errs []*Error
	if !slices.Contains(RateKeys, r.Key) {
		errs = append(errs, c.errAt(k+".rate_key", "must be one of %v, got %q", RateKeys, r.Key))
	}
	for name, lf := range map[string]*limitFile{"messages": raw.Messages, "recipients": raw.Recipients} {
		if lf == nil {
			continue
		}
		lim, err := bucket.ParseLimit(lf.Rate, strconv.FormatFloat(lf.Burst, 'g', -1, 64))
		if err != nil {
			errs = append(errs, c.errAt(k+"."+name, "%v", err))
			continue
		}
		if name == "messages" {
			r.Messages = &lim
		} else {
			r.Recipients = &lim
		}
	}
	if raw.Messages == nil && raw.Recipients == nil {
		errs = append(errs, c.errAt(k+".rate_key", "a rate jail needs messages or recipients limits"))
	}
	switch r.Mode {
	case "":
		r.Mode = "log-only"
		if r.Key == "client" {
			r.Mode = "ban"
		}
	case "log-only":
	case "ban":
		if r.Key != "client" {
			errs = append(errs, c.errAt(k+".mode", `"ban" needs rate_key = "client": only an address can go into the map`))
		}
	default:
		errs = append(errs, c.errAt(k+".mode", `must be "ban" or "log-only", got %q`, r.Mode))
	}
	var err *Error
	if r.Accounting, err = choose(c, k+".accounting", deref(raw.Accounting, "leaky"), map[string]bucket.Mode{"leaky": bucket.Leaky, "strict": bucket.Strict}); err != nil {
		errs = append(errs, err)
	}
	if r.OnFull, err = choose(c, k+".on_full", deref(raw.OnFull, "fail-open"), map[string]bucket.OnFull{"fail-open": bucket.FailOpen, "fail-closed": bucket.FailClosed}); err != nil {
		errs = append(errs, err)
	}
	if r.MaxEntries < 1 {
		errs = append(errs, c.errAt(k+".max_entries", "must be at least 1"))
	}
	if r.SuspendFactor != 0 && r.SuspendFactor <= 1 {
		errs = append(errs, c.errAt(k+".suspend_factor", "must be above 1 (or 0 to turn it off)"))
	}
	return errs
}

// choose maps a keyword value to its meaning, or locates the mistake.
func choose[T any](c *Config, key, val string, opts map[string]T) (T, *Error) {
	if v, ok := opts[val]; ok {
		return v, nil
	}
	names := make([]string, 0, len(opts))
	for n := range opts {
		names = append(names, strconv.Quote(n))
	}
	slices.Sort(names)
	var zero T
	return zero, c.errAt(key, "must be one of %s, got %q", strings.Join(names, ", "), val)
}

// CompileFilter resolves a jail's filter name: a [filter.NAME] table of the
// configuration first, then a built-in filter.
func (c *Config) CompileFilter(name string) (*rules.Filter, error) {
	if spec, ok := c.Filters[name]; ok {
		return rules.CompileFilter(name, spec)
	}
	f, err := rules.BuiltinFilter(name)
	if err != nil {
		return nil, fmt.Errorf("no [filter.%s] and %w", name, err)
	}
	return f, nil
}

// EnabledJails returns the jails that run.
func (c *Config) EnabledJails() []*Jail {
	var out []*Jail
	for _, j := range c.Jails {
		if j.Enabled {
			out = append(out, j)
		}
	}
	return out
}

// Jail returns the jail called name, or nil.
func (c *Config) Jail(name string) *Jail {
	for _, j := range c.Jails {
		if j.Name == name {
			return j
		}
	}
	return nil
}

// Location is the time zone for log timestamps that carry none.
func (c *Config) Location() *time.Location {
	if c.Global.Timezone == "" {
		return time.Local
	}
	loc, err := time.LoadLocation(c.Global.Timezone)
	if err != nil {
		return time.Local
	}
	return loc
}
