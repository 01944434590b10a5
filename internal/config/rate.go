package config

import (
	"slices"
	"strconv"
	"strings"

	"github.com/mailjail/mailjail/rules/bucket"
)

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
