package config

import (
	"slices"
	"strconv"
	"strings"
	"time"

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
	errs = append(errs, c.validateLimits(j)...)
	switch r.Mode {
	case ModeLogOnly:
	case ModeBan:
		if r.Key != "client" {
			errs = append(errs, c.errAt(k+".mode", `"ban" needs rate_key = "client": only an address can go into the map`))
		}
	case "suspend":
		if r.Key != "sasl_username" {
			errs = append(errs, c.errAt(k+".mode", `"suspend" needs rate_key = "sasl_username": only an authenticated login may be suspended (anyone can forge an envelope sender)`))
		}
	default:
		errs = append(errs, c.errAt(k+".mode", `must be "ban", "log-only" or "suspend", got %q`, r.Mode))
	}
	if r.NewAccountsWithin < 0 || raw.NewAccounts != nil && raw.NewAccounts.err != nil {
		errs = append(errs, c.errAt(k+".new_accounts_within", "must be a positive duration"))
	} else if r.NewAccountsWithin > 0 && r.Mode != "suspend" {
		errs = append(errs, c.errAt(k+".new_accounts_within", `limits suspension to new accounts, so it needs mode = "suspend"`))
	}
	var err *Error
	if acc := deref(raw.Accounting, "leaky"); acc != "window" {
		if r.Accounting, err = choose(c, k+".accounting", acc, map[string]bucket.Mode{"leaky": bucket.Leaky, "strict": bucket.Strict}); err != nil {
			errs = append(errs, err)
		}
	}
	// Debian 12 ships rspamd 3.4, which lets a message heavier than the
	// burst through on an empty bucket; 3.6 and later refuse it.
	if r.Rspamd, err = choose(c, k+".rspamd_version", deref(raw.RspamdVersion, "3.6"), map[string]bucket.Version{"3.4": bucket.Rspamd34, "3.6": bucket.Rspamd36}); err != nil {
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

// validateLimits checks a rate jail's limits: leaky buckets (messages,
// recipients: rspamd's burst and rate) or, with accounting = "window", a
// sliding window and the most messages and recipients it may hold.
func (c *Config) validateLimits(j *Jail) []*Error {
	k := "jail." + j.Name
	raw := c.raw[j.Name]
	r := j.Rate
	var errs []*Error
	if deref(raw.Accounting, "") != "window" {
		for _, f := range []struct {
			key string
			set bool
		}{{"window", raw.Window != nil}, {"max_messages", raw.MaxMessages != nil}, {"max_recipients", raw.MaxRecipients != nil}} {
			if f.set {
				errs = append(errs, c.errAt(k+"."+f.key, `%s belongs to a sliding window: set accounting = "window"`, f.key))
			}
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
		return errs
	}
	for _, f := range []struct {
		key string
		set bool
	}{{"messages", raw.Messages != nil}, {"recipients", raw.Recipients != nil}} {
		if f.set {
			errs = append(errs, c.errAt(k+"."+f.key, `%s is a leaky bucket; with accounting = "window" use max_%s`, f.key, f.key))
		}
	}
	if raw.RspamdVersion != nil {
		errs = append(errs, c.errAt(k+".rspamd_version", `a sliding window is not rspamd's bucket: rspamd_version does not apply`))
	}
	if raw.Window != nil && (raw.Window.err != nil || r.Window <= 0) {
		errs = append(errs, c.errAt(k+".window", "must be a positive duration"))
	}
	if r.Window <= 0 {
		r.Window = DefaultWindow
	}
	if r.MaxMessages < 0 || r.MaxRecipients < 0 {
		errs = append(errs, c.errAt(k+".max_messages", "limits must be positive"))
	}
	if r.MaxMessages == 0 && r.MaxRecipients == 0 {
		errs = append(errs, c.errAt(k+".accounting", "a sliding window needs max_messages or max_recipients"))
	}
	return errs
}

// DefaultWindow is a sliding window's length when the jail does not say:
// the provider policy's "last 60 minutes".
const DefaultWindow = time.Hour

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
