package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"

	"github.com/mailjail/mailjail/internal/core"
	"github.com/mailjail/mailjail/rules"
	"github.com/mailjail/mailjail/rules/bucket"
)

// jailFile is a jail (or [defaults]) as written: pointers tell "not set"
// from "set to zero", so [defaults] can fill only what a jail leaves out.
type jailFile struct {
	Enabled     *bool     `toml:"enabled"`
	Filter      *string   `toml:"filter"`
	LogPath     []string  `toml:"logpath"`
	MaxRetry    *int      `toml:"maxretry"`
	FindTime    *Duration `toml:"findtime"`
	BanTime     *Duration `toml:"bantime"`
	BanFactor   *float64  `toml:"bantime_factor"`
	BanMaxTime  *Duration `toml:"bantime_maxtime"`
	Lookback    *Duration `toml:"bantime_lookback"`
	IPv6Prefix  *int      `toml:"ipv6_prefix"`
	IPv4Prefix  *int      `toml:"ipv4_prefix"`
	IgnoreIP    []string  `toml:"ignoreip"`
	Buckets     []string  `toml:"buckets"`
	BanAction   []string  `toml:"ban_action"`
	UnbanAction []string  `toml:"unban_action"`
	Alert       *bool     `toml:"alert"`
	Key         *string   `toml:"key"`
	Suspend     *bool     `toml:"suspend"`
	BanSources  *bool     `toml:"ban_sources"`
	Targets     []string  `toml:"targets"`

	RateKey       *string    `toml:"rate_key"`
	Messages      *limitFile `toml:"messages"`
	Recipients    *limitFile `toml:"recipients"`
	Mode          *string    `toml:"mode"`
	Accounting    *string    `toml:"accounting"`
	MaxEntries    *int       `toml:"max_entries"`
	OnFull        *string    `toml:"on_full"`
	SuspendFactor *float64   `toml:"suspend_factor"`
	Window        *Duration  `toml:"window"`
	MaxMessages   *float64   `toml:"max_messages"`
	MaxRecipients *float64   `toml:"max_recipients"`
	NewAccounts   *Duration  `toml:"new_accounts_within"`
	RspamdVersion *string    `toml:"rspamd_version"`

	JournalMatch *journalFile `toml:"journalmatch"`
	actionsFile
	escalationFile
}

// journalFile selects journal entries: by unit, by syslog identifier
// ("postfix/*" for all of Postfix's programs), or both.
type journalFile struct {
	Units       []string `toml:"units"`
	Identifiers []string `toml:"identifiers"`
}

// limitFile is a rate limit as rspamd writes it: burst and "N / period".
type limitFile struct {
	Burst float64 `toml:"burst"`
	Rate  string  `toml:"rate"`
}

// filterFile is a [filter.NAME] as written. Prefilter is a pointer
// because prefilter = "" (none) differs from leaving it out (derived).
type filterFile struct {
	FailRegex   []string `toml:"failregex"`
	IgnoreRegex []string `toml:"ignoreregex"`
	Prefilter   *string  `toml:"prefilter"`
	DatePattern string   `toml:"datepattern"`
}

// globalFile is [global] as written: pointers tell a minimum prefix of 0
// (allowed) from one left out.
type globalFile struct {
	Global
	MinPrefixV4 *int      `toml:"min_prefix_v4"`
	MinPrefixV6 *int      `toml:"min_prefix_v6"`
	DBPurgeAge  *Duration `toml:"dbpurgeage"`
	DBMaxMatch  *int      `toml:"dbmaxmatches"`
	IgnoreSelf  *bool     `toml:"ignoreself"`
	DNSRefresh  *Duration `toml:"dns_refresh"`
	breakerFile
}

type file struct {
	targetsFile
	webhooksFile
	Cluster  *Cluster              `toml:"cluster"`
	Global   globalFile            `toml:"global"`
	Alert    alertFile             `toml:"alert"`
	Defaults jailFile              `toml:"defaults"`
	Jail     map[string]jailFile   `toml:"jail"`
	Filter   map[string]filterFile `toml:"filter"`
}

func buildJail(name string, j, d jailFile, globalIgnore []string, legacy bool) *Jail {
	out := &Jail{
		Name:        name,
		Enabled:     deref(j.Enabled, deref(d.Enabled, true)),
		Filter:      deref(j.Filter, deref(d.Filter, name)),
		LogPath:     first(j.LogPath, d.LogPath),
		MaxRetry:    deref(j.MaxRetry, deref(d.MaxRetry, 10)),
		FindTime:    dur(j.FindTime, d.FindTime, 10*time.Minute),
		BanTime:     dur(j.BanTime, d.BanTime, DefaultBanTime),
		BanFactor:   deref(j.BanFactor, deref(d.BanFactor, 1)),
		BanMaxTime:  dur(j.BanMaxTime, d.BanMaxTime, DefaultBanMaxTime),
		Lookback:    dur(j.Lookback, d.Lookback, 30*24*time.Hour),
		IPv6Prefix:  deref(j.IPv6Prefix, deref(d.IPv6Prefix, 128)),
		IgnoreIP:    append(slices.Clone(globalIgnore), first(j.IgnoreIP, d.IgnoreIP)...),
		Buckets:     first(j.Buckets, d.Buckets),
		BanAction:   first(j.BanAction, d.BanAction),
		UnbanAction: first(j.UnbanAction, d.UnbanAction),
		Alert:       deref(j.Alert, deref(d.Alert, true)),
		Key:         deref(j.Key, deref(d.Key, KeyAddress)),
		Suspend:     deref(j.Suspend, deref(d.Suspend, true)),
		BanSources:  deref(j.BanSources, deref(d.BanSources, true)),
		Targets:     first(j.Targets, d.Targets),
		JailActions: buildJailActions(j.actionsFile, d.actionsFile),
	}
	buildEscalation(out, j, d, legacy)
	applyOnBansDefaults(out, j)
	out.Mode = jailMode(j, d)
	if jm := j.JournalMatch; jm != nil {
		out.Journal = &core.JournalMatch{Units: jm.Units, Identifiers: jm.Identifiers}
	}
	if j.RateKey != nil {
		out.Rate = &RateSpec{Key: *j.RateKey, Mode: out.Mode, MaxEntries: deref(j.MaxEntries, bucket.DefaultMaxEntries), SuspendFactor: deref(j.SuspendFactor, 0),
			Window: dur(j.Window, nil, 0), MaxMessages: deref(j.MaxMessages, 0), MaxRecipients: deref(j.MaxRecipients, 0), NewAccountsWithin: dur(j.NewAccounts, nil, 0)}
		out.Filter = "postfix-rate"
		if out.Rate.Key != "client" {
			out.Key = KeyAccount
		}
	}
	if out.Buckets == nil && strings.HasSuffix(out.Filter, "ratelimit") {
		out.Buckets = slices.Clone(rules.AddressBuckets)
		if out.Key == KeyAccount {
			out.Buckets = slices.Clone(rules.AccountBuckets)
		}
	}
	return out
}

func deref[T any](p *T, def T) T {
	if p != nil {
		return *p
	}
	return def
}

// dur picks the jail's duration, else the default's, else def. A value
// that did not parse counts as left out: Validate reports it, and the
// jail's other checks run on the default.
func dur(j, d *Duration, def time.Duration) time.Duration {
	if j.ok() {
		return j.D
	}
	if d.ok() {
		return d.D
	}
	return def
}

func first[T any](a, b []T) []T {
	if a != nil {
		return a
	}
	return b
}

// decodeError turns go-toml's errors into located Errors.
func decodeError(name string, err error) error {
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, _ := de.Position()
		return &Error{File: name, Line: row, Key: strings.Join(de.Key(), "."), Msg: strings.TrimPrefix(de.Error(), "toml: ")}
	}
	var se *toml.StrictMissingError
	if errors.As(err, &se) {
		var errs []error
		for _, e := range se.Errors {
			row, _ := e.Position()
			errs = append(errs, &Error{File: name, Line: row, Key: strings.Join(e.Key(), "."), Msg: "unknown key"})
		}
		return errors.Join(errs...)
	}
	return fmt.Errorf("%s: %w", name, err)
}

// keyLines maps dotted keys ("jail.x.maxretry") to their line, so that
// Validate can point at the line of a value it rejects.
func keyLines(data []byte) map[string]int {
	lines := map[string]int{}
	p := unstable.Parser{}
	p.Reset(data)
	var table []string
	for p.NextExpression() {
		e := p.Expression()
		var key []string
		var firstNode *unstable.Node
		for it := e.Key(); it.Next(); {
			n := it.Node()
			if firstNode == nil {
				firstNode = n
			}
			key = append(key, string(n.Data))
		}
		if firstNode == nil {
			continue
		}
		line := p.Shape(firstNode.Raw).Start.Line
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			table = key
			lines[strings.Join(key, ".")] = line
		case unstable.KeyValue:
			lines[strings.Join(append(slices.Clone(table), key...), ".")] = line
		}
	}
	return lines
}

// errAt builds an Error for key, located at the key's line, or at the
// line of the nearest table that is written when the key is a default.
func (c *Config) errAt(key, format string, args ...any) *Error {
	line := c.lines[key]
	for k := key; line == 0 && strings.Contains(k, "."); {
		k = k[:strings.LastIndex(k, ".")]
		line = c.lines[k]
	}
	return &Error{File: c.Source, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)}
}
