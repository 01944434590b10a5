// Package config reads mailjail's TOML configuration. It is parsed from an
// io.Reader and then checked by Validate, and every problem is reported as
// "file:line: key: problem" so an operator can go straight to the line.
//
// The words are fail2ban's: a [jail.NAME] has a filter, logpath, maxretry,
// findtime, bantime and ignoreip; [defaults] plays the part of [DEFAULT].
package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"

	"github.com/mailjail/mailjail/internal/core"
	"github.com/mailjail/mailjail/rules"
	"github.com/mailjail/mailjail/rules/bucket"
)

// DefaultPath is where the daemon looks for its configuration.
const DefaultPath = "/etc/mailjail/mailjail.toml"

// EnvPath names the environment variable that overrides DefaultPath.
const EnvPath = "MAILJAIL_CONFIG"

//go:embed default.toml
var defaultTOML []byte

// DefaultTOML is the embedded configuration used when no file exists.
func DefaultTOML() []byte { return slices.Clone(defaultTOML) }

// Config is a whole configuration after defaults are applied.
type Config struct {
	Global  Global
	Alert   Alert
	Jails   []*Jail // sorted by name, enabled and disabled
	Filters map[string]rules.FilterSpec

	// Source names where the configuration came from ("embedded default"
	// or a path), for messages.
	Source string
	lines  map[string]int
	raw    map[string]jailFile // as written, for checks that need more than the result
}

// Global holds settings shared by all jails.
type Global struct {
	Database    string   `toml:"database"`
	MapFile     string   `toml:"map_file"`
	Socket      string   `toml:"socket"`
	SocketGroup string   `toml:"socket_group"`
	IgnoreIP    []string `toml:"ignoreip"`
	Timezone    string   `toml:"timezone"`   // zone of log timestamps that carry none; default: the host's
	FromStart   bool     `toml:"from_start"` // read existing log content on the very first start
	LogLevel    string   `toml:"log_level"`
}

// Alert configures email alerts to administrators.
type Alert struct {
	SMTP    string   `toml:"smtp"` // host:port of a relay, normally the local Postfix
	From    string   `toml:"from"`
	To      []string `toml:"to"`
	Subject string   `toml:"subject_prefix"`
}

// Enabled reports whether alerts are configured.
func (a Alert) Enabled() bool { return a.SMTP != "" && len(a.To) > 0 }

// Jail is one jail with defaults applied.
type Jail struct {
	Name       string
	Enabled    bool
	Filter     string
	LogPath    []string
	MaxRetry   int
	FindTime   time.Duration
	BanTime    time.Duration // Permanent (-1) for no end
	BanFactor  float64
	BanMaxTime time.Duration
	Lookback   time.Duration
	// IPv6Prefix groups IPv6 clients: strikes and bans go to the /N that
	// holds the address (64: one customer network), 128 = each address.
	IPv6Prefix  int
	IgnoreIP    []string // the jail's own plus global ignoreip
	Buckets     []string // rspamd buckets that strike; empty means any
	BanAction   []string // argv, with <ip>, <jail>, <bantime> placeholders
	UnbanAction []string
	Alert       bool
	Rate        *RateSpec // set for a rate jail (rate_key given): Postfix messages/recipients per key
	// Journal, when set, follows the systemd journal instead of (or beside)
	// logpath: for hosts where Postfix logs only to journald.
	Journal *core.JournalMatch
}

// RateSpec is a rate jail: it joins Postfix's smtpd, cleanup and qmgr
// lines per queue id and runs leaky buckets of messages and recipients
// per key. Going over a limit is an event: with key "client" and mode
// "ban" it strikes the address like any jail; otherwise it is recorded and
// logged, never touching the map.
type RateSpec struct {
	Key           string        // "sasl_username", "sender" or "client"
	Messages      *bucket.Limit // nil: not limited
	Recipients    *bucket.Limit
	Mode          string // "ban" or "log-only"
	Accounting    bucket.Mode
	MaxEntries    int
	OnFull        bucket.OnFull
	SuspendFactor float64 // an event at this many times the burst is urgent; 0 = off
}

// RateKeys are the keys a rate jail can count by.
var RateKeys = []string{"sasl_username", "sender", "client"}

// Policy is the jail's strike/ban policy for the rules core.
func (j *Jail) Policy() rules.PolicyConfig {
	return rules.PolicyConfig{
		MaxRetry: j.MaxRetry, FindTime: j.FindTime, BanTime: j.BanTime,
		BanFactor: j.BanFactor, BanMaxTime: j.BanMaxTime, Lookback: j.Lookback,
	}
}

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
	IgnoreIP    []string  `toml:"ignoreip"`
	Buckets     []string  `toml:"buckets"`
	BanAction   []string  `toml:"ban_action"`
	UnbanAction []string  `toml:"unban_action"`
	Alert       *bool     `toml:"alert"`

	RateKey       *string    `toml:"rate_key"`
	Messages      *limitFile `toml:"messages"`
	Recipients    *limitFile `toml:"recipients"`
	Mode          *string    `toml:"mode"`
	Accounting    *string    `toml:"accounting"`
	MaxEntries    *int       `toml:"max_entries"`
	OnFull        *string    `toml:"on_full"`
	SuspendFactor *float64   `toml:"suspend_factor"`

	JournalMatch *journalFile `toml:"journalmatch"`
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

type filterFile struct {
	FailRegex   []string `toml:"failregex"`
	IgnoreRegex []string `toml:"ignoreregex"`
	Prefilter   string   `toml:"prefilter"`
}

type file struct {
	Global   Global                `toml:"global"`
	Alert    Alert                 `toml:"alert"`
	Defaults jailFile              `toml:"defaults"`
	Jail     map[string]jailFile   `toml:"jail"`
	Filter   map[string]filterFile `toml:"filter"`
}

// Error is one configuration problem, located.
type Error struct {
	File string
	Line int // 0 when the key is not written in the file (a default)
	Key  string
	Msg  string
}

// Error formats the problem as FILE:LINE: KEY: PROBLEM.
func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Key, e.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", e.File, e.Key, e.Msg)
}

// Parse reads a configuration from r; name is used in error messages.
// Syntax errors, unknown keys and values of the wrong type fail here; the
// rest is checked by Validate.
func Parse(r io.Reader, name string) (*Config, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	var f file
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, decodeError(name, err)
	}
	c := &Config{Global: f.Global, Alert: f.Alert, Filters: map[string]rules.FilterSpec{}, Source: name, lines: keyLines(data), raw: f.Jail}
	applyGlobalDefaults(&c.Global)
	for n, ff := range f.Filter {
		c.Filters[n] = rules.FilterSpec{FailRegex: ff.FailRegex, IgnoreRegex: ff.IgnoreRegex, Prefilter: ff.Prefilter}
	}
	names := make([]string, 0, len(f.Jail))
	for n := range f.Jail {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c.Jails = append(c.Jails, buildJail(n, f.Jail[n], f.Defaults, c.Global.IgnoreIP))
	}
	return c, nil
}

// Load reads the configuration at path. An empty path means: $MAILJAIL_CONFIG,
// else DefaultPath if it exists, else the embedded default. A path that was
// asked for explicitly must exist.
func Load(path string) (*Config, error) {
	if path == "" {
		path = os.Getenv(EnvPath)
	}
	if path == "" {
		if _, err := os.Stat(DefaultPath); errors.Is(err, os.ErrNotExist) {
			return LoadDefault()
		}
		path = DefaultPath
	}
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	defer fh.Close()
	c, err := Parse(fh, path)
	if err != nil {
		return nil, err
	}
	return c, c.Validate()
}

// LoadDefault returns the embedded default configuration.
func LoadDefault() (*Config, error) {
	c, err := Parse(bytes.NewReader(defaultTOML), "embedded default")
	if err != nil {
		return nil, err
	}
	return c, c.Validate()
}

func applyGlobalDefaults(g *Global) {
	if g.Database == "" {
		g.Database = "/var/lib/mailjail/mailjail.db"
	}
	if g.MapFile == "" {
		g.MapFile = "/etc/rspamd/local.d/maps/ip_blacklist_ratelimit.map"
	}
	if g.Socket == "" {
		g.Socket = "/run/mailjail/mailjail.sock"
	}
	if g.IgnoreIP == nil {
		g.IgnoreIP = []string{"127.0.0.0/8", "::1"}
	}
	if g.LogLevel == "" {
		g.LogLevel = "info"
	}
}

func buildJail(name string, j, d jailFile, globalIgnore []string) *Jail {
	out := &Jail{
		Name:        name,
		Enabled:     deref(j.Enabled, deref(d.Enabled, true)),
		Filter:      deref(j.Filter, deref(d.Filter, name)),
		LogPath:     first(j.LogPath, d.LogPath),
		MaxRetry:    deref(j.MaxRetry, deref(d.MaxRetry, 10)),
		FindTime:    dur(j.FindTime, d.FindTime, 10*time.Minute),
		BanTime:     dur(j.BanTime, d.BanTime, time.Hour),
		BanFactor:   deref(j.BanFactor, deref(d.BanFactor, 2)),
		BanMaxTime:  dur(j.BanMaxTime, d.BanMaxTime, 7*24*time.Hour),
		Lookback:    dur(j.Lookback, d.Lookback, 30*24*time.Hour),
		IPv6Prefix:  deref(j.IPv6Prefix, deref(d.IPv6Prefix, 128)),
		IgnoreIP:    append(slices.Clone(globalIgnore), first(j.IgnoreIP, d.IgnoreIP)...),
		Buckets:     first(j.Buckets, d.Buckets),
		BanAction:   first(j.BanAction, d.BanAction),
		UnbanAction: first(j.UnbanAction, d.UnbanAction),
		Alert:       deref(j.Alert, deref(d.Alert, true)),
	}
	if jm := j.JournalMatch; jm != nil {
		out.Journal = &core.JournalMatch{Units: jm.Units, Identifiers: jm.Identifiers}
	}
	if j.RateKey != nil {
		out.Rate = &RateSpec{Key: *j.RateKey, Mode: deref(j.Mode, ""), MaxEntries: deref(j.MaxEntries, bucket.DefaultMaxEntries), SuspendFactor: deref(j.SuspendFactor, 0)}
		out.Filter = "postfix-rate"
	}
	if out.Buckets == nil && strings.HasSuffix(out.Filter, "ratelimit") {
		out.Buckets = slices.Clone(rules.AddressBuckets)
	}
	return out
}

func deref[T any](p *T, def T) T {
	if p != nil {
		return *p
	}
	return def
}

func dur(j, d *Duration, def time.Duration) time.Duration {
	if j != nil && j.set {
		return j.D
	}
	if d != nil && d.set {
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
