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
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/pelletier/go-toml/v2"

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
	// The sections of the enforcement targets, defaults applied; each is
	// used only when a jail's targets (or [global]'s) name its kind.
	Postfix     Postfix
	Nftables    Nftables
	Redis       Redis
	RspamdRedis RspamdRedis
	Webhooks    map[string]*Webhook // [webhook.NAME], by name
	Cluster     Cluster             // [cluster]: bans shared with other nodes

	// Source names where the configuration came from ("embedded default"
	// or a path), for messages.
	Source string
	lines  map[string]int
	// As written, for checks that need more than the result: which keys a
	// jail sets itself, which come from [defaults], durations that did not
	// parse.
	raw         map[string]jailFile
	rawDefaults jailFile
	written     map[string]bool // target sections the file writes
	warnings    []error         // what Validate found questionable but accepted
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
	// MinPrefixV4 and MinPrefixV6 are the shortest prefixes a ban may have
	// (min_prefix_v4 = 16, min_prefix_v6 = 32 by default): a wider range,
	// such as 128.0.0.0/1 typed by mistake, is refused without --force.
	MinPrefixV4 int `toml:"-"`
	MinPrefixV6 int `toml:"-"`
	// DBPurgeAge is how long history is kept in the database (strikes,
	// ended bans and suspensions, rate events, delivered outbox items);
	// active bans and suspensions are never purged. fail2ban's dbpurgeage.
	DBPurgeAge time.Duration `toml:"-"`
	// DBMaxMatches is how many of an address's newest strikes in a jail
	// keep their log line in the database (fail2ban's dbmaxmatches);
	// older ones keep their time and bucket. 0 keeps no line.
	DBMaxMatches int `toml:"-"`
	// IgnoreSelf adds the host's own addresses to every jail's ignoreip
	// (fail2ban's ignoreself); DNSRefresh is how often ignoreip host
	// names and the host's addresses are looked up again.
	IgnoreSelf bool          `toml:"-"`
	DNSRefresh time.Duration `toml:"-"`
	// Breaker is the circuit breaker for mass bans (breaker_bans,
	// breaker_window, breaker_max_entries).
	Breaker Breaker `toml:"-"`
	// AccountMapFile is the rspamd multimap "user" file of suspended
	// accounts.
	AccountMapFile string `toml:"account_map_file"`
	// AllowSenders are senders (user@domain) and domains that are never
	// rate limited or suspended: the rate allow list, beside the one kept
	// in the database (mailjail allow). ignoreip is about addresses.
	AllowSenders []string `toml:"allow_senders"`
	// Targets are the enforcement targets of jails that name none, and
	// of manual bans: rspamd-map by default.
	Targets []string `toml:"targets"`
	// MetricsListen is the host:port of the Prometheus /metrics and
	// /healthz listener ("": none); MetricsPublic allows an address that
	// is not loopback. LogFormat is "text" (default) or "json".
	MetricsListen string `toml:"metrics_listen"`
	MetricsPublic bool   `toml:"metrics_public"`
	LogFormat     string `toml:"log_format"`
}

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
	// The rest of the escalation of repeat offenders' bans (bantime_*,
	// fail2ban's bantime.* keys, and permanent_after); see
	// rules.Escalation. BanLegacyBase is the bantime_factor of a file
	// written for its former meaning (no table sets bantime_increment):
	// the base of the power; 0 otherwise.
	BanIncrement   bool
	BanMultipliers []float64
	BanLegacyBase  float64
	BanRndTime     time.Duration
	OverallJails   bool // bantime_overalljails: count the bans of every jail
	PermanentAfter int
	// IPv6Prefix groups IPv6 clients: strikes and bans go to the /N that
	// holds the address (64: one customer network), 128 = each address.
	IPv6Prefix int
	// IPv4Prefix is a network jail's IPv4 network (24: N banned addresses
	// of one /24 ban the /24); 32 for every other jail.
	IPv4Prefix  int
	IgnoreIP    []string // the jail's own plus global ignoreip
	Buckets     []string // rspamd buckets that strike; empty means any
	BanAction   []string // argv, with <ip>, <jail>, <bantime> placeholders
	UnbanAction []string
	Alert       bool
	// Key is what the jail counts: KeyAddress (the client) or KeyAccount
	// (the authenticated login an event names: rspamd's "user:" field, a
	// filter's <USER>, a rate jail's sasl_username or sender).
	Key string
	// Suspend and BanSources are an account jail's responses when an
	// account reaches maxretry: put it in the account map for the ban
	// time, and ban the client addresses its strikes came from (except
	// ignoreip). Alert sends the urgent alert.
	Suspend    bool
	BanSources bool
	// Targets are the enforcement targets of the jail's bans and
	// suspensions; nil: [global] targets.
	Targets []string
	Rate    *RateSpec // set for a rate jail (rate_key given): Postfix messages/recipients per key
	// Mode is ModeBan or ModeLogOnly (a rate jail: its rate mode, which
	// may also be "suspend"). A log-only jail counts, records and alerts
	// its would-be bans but never enforces them nor runs its actions.
	Mode string
	// Journal, when set, follows the systemd journal instead of (or beside)
	// logpath: for hosts where Postfix logs only to journald.
	Journal *core.JournalMatch
	JailActions
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
	Rspamd        bucket.Version // whose ratelimit check the buckets follow (rspamd_version)
	MaxEntries    int
	OnFull        bucket.OnFull
	SuspendFactor float64 // an event at this many times the burst (or the window's limit) is urgent; 0 = off
	// Window, when set, counts messages and recipients in a sliding
	// window of this length (a provider's policy: "in the last 60
	// minutes") against MaxMessages and MaxRecipients, instead of leaky
	// buckets.
	Window        time.Duration
	MaxMessages   float64
	MaxRecipients float64
	// NewAccountsWithin limits suspension (mode "suspend") to accounts
	// mailjail first saw within this long; 0: every account.
	NewAccountsWithin time.Duration
}

// Keys a jail counts by.
const (
	KeyAddress = "address"
	KeyAccount = "account"
)

// Reserved filter names: jails that judge mailjail's own ban history
// instead of a log.
const (
	// FilterRecidive counts the bans other jails make of an address (or
	// range) and bans it for long after maxretry of them in findtime.
	FilterRecidive = "recidive"
	// FilterNetwork counts the distinct addresses other jails ban in one
	// network (ipv4_prefix, ipv6_prefix) and bans the network after
	// maxretry of them in findtime.
	FilterNetwork = "network"
)

// Recidive reports whether the jail is a recidive jail.
func (j *Jail) Recidive() bool { return j.Rate == nil && j.Filter == FilterRecidive }

// Network reports whether the jail is a network jail.
func (j *Jail) Network() bool { return j.Rate == nil && j.Filter == FilterNetwork }

// OnBans reports whether the jail reads mailjail's own bans, not a log.
func (j *Jail) OnBans() bool { return j.Recidive() || j.Network() }

// Accounts reports whether the jail counts accounts, not addresses.
func (j *Jail) Accounts() bool { return j.Key == KeyAccount }

// CanSuspend reports whether the jail's account may be suspended: only an
// authenticated login may (anyone can forge an envelope sender on port
// 25), only when the jail asks for it, and never by a log-only jail,
// whose suspensions are recorded, not enforced.
func (j *Jail) CanSuspend() bool {
	if !j.Accounts() || !j.Suspend || j.LogOnly() {
		return false
	}
	return j.Rate == nil || j.Rate.Key == "sasl_username" && j.Rate.Mode == "suspend"
}

// RateKeys are the keys a rate jail can count by.
var RateKeys = []string{"sasl_username", "sender", "client"}

// Policy is the jail's strike/ban policy for the rules core.
func (j *Jail) Policy() rules.PolicyConfig {
	return rules.PolicyConfig{
		MaxRetry: j.MaxRetry, FindTime: j.FindTime, BanTime: j.BanTime, Lookback: j.Lookback,
		Escalation: rules.Escalation{
			Increment: j.BanIncrement, Factor: j.BanFactor, Multipliers: j.BanMultipliers, LegacyBase: j.BanLegacyBase,
			MaxTime: j.BanMaxTime, RndTime: j.BanRndTime, PermanentAfter: j.PermanentAfter,
		},
	}
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
// Syntax errors and values of the wrong type fail here; the rest is
// checked by Validate. Unknown keys fail here too, but together with
// everything Validate finds in the rest of the file, so that one misspelt
// key does not hide the other problems.
func Parse(r io.Reader, name string) (*Config, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	var f file
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var unknown error
	if err := dec.Decode(&f); err != nil {
		if _, ok := errors.AsType[*toml.StrictMissingError](err); !ok {
			return nil, decodeError(name, err)
		}
		unknown = decodeError(name, err) // the rest of the file was decoded
	}
	c := build(f, data, name)
	if unknown != nil {
		return nil, errors.Join(unknown, c.Validate())
	}
	return c, nil
}

// build makes the Config of a decoded file.
func build(f file, data []byte, name string) *Config {
	c := &Config{Global: f.Global.Global, Filters: map[string]rules.FilterSpec{}, Source: name,
		lines: keyLines(data), raw: f.Jail, rawDefaults: f.Defaults}
	applyGlobalDefaults(&c.Global, f.Global)
	c.applyTargetDefaults(f.targetsFile)
	c.applyAlertDefaults(f.Alert)
	c.applyWebhookDefaults(f.webhooksFile)
	c.applyClusterDefaults(f.Cluster)
	for n, ff := range f.Filter {
		c.Filters[n] = rules.FilterSpec{FailRegex: ff.FailRegex, IgnoreRegex: ff.IgnoreRegex, Prefilter: ff.Prefilter, DatePattern: ff.DatePattern}
	}
	names := make([]string, 0, len(f.Jail))
	for n := range f.Jail {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c.Jails = append(c.Jails, buildJail(n, f.Jail[n], f.Defaults, c.Global.IgnoreIP, legacyFactor(f.Defaults, f.Jail)))
	}
	return c
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

// IgnoreEntries is every distinct ignoreip entry of [global] and the
// enabled jails, as written: what internal/allowlist reads and resolves.
func (c *Config) IgnoreEntries() []string {
	out := slices.Clone(c.Global.IgnoreIP)
	for _, j := range c.EnabledJails() {
		out = append(out, j.IgnoreIP...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// LoadDefault returns the embedded default configuration.
func LoadDefault() (*Config, error) {
	c, err := Parse(bytes.NewReader(defaultTOML), "embedded default")
	if err != nil {
		return nil, err
	}
	return c, c.Validate()
}

// Default shortest ban prefixes: a /16 is a big provider's block, a /32
// an IPv6 provider's whole allocation.
const (
	DefaultMinPrefixV4 = 16
	DefaultMinPrefixV6 = 32
)

// DefaultDBPurgeAge keeps a month of history: as long as the default
// bantime_lookback, so escalation sees every earlier ban it counts.
const DefaultDBPurgeAge = 30 * 24 * time.Hour

// DefaultDBMaxMatches keeps the line of an address's newest strike per
// jail: what explains its ban, at most 100 bytes a strike in all with
// 10 strikes an address (README, Retention). An alert is planned when
// the ban is committed, before the purge clears lines, so it still
// lists every line of the ban's strikes.
const DefaultDBMaxMatches = 1

func applyGlobalDefaults(g *Global, f globalFile) {
	g.MinPrefixV4 = deref(f.MinPrefixV4, DefaultMinPrefixV4)
	g.MinPrefixV6 = deref(f.MinPrefixV6, DefaultMinPrefixV6)
	g.DBPurgeAge = dur(f.DBPurgeAge, nil, DefaultDBPurgeAge)
	g.DBMaxMatches = deref(f.DBMaxMatch, DefaultDBMaxMatches)
	g.IgnoreSelf = deref(f.IgnoreSelf, true)
	g.DNSRefresh = dur(f.DNSRefresh, nil, 5*time.Minute)
	g.Breaker = buildBreaker(f.breakerFile)
	if g.Database == "" {
		g.Database = "/var/lib/mailjail/mailjail.db"
	}
	if g.MapFile == "" {
		g.MapFile = "/etc/rspamd/local.d/maps/ip_blacklist_ratelimit.map"
	}
	if g.AccountMapFile == "" {
		// Beside the address map: where rspamd already reads mailjail's
		// files, with the same directory permissions.
		g.AccountMapFile = filepath.Join(filepath.Dir(g.MapFile), "mailjail_accounts.map")
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
	if g.LogFormat == "" {
		g.LogFormat = LogText
	}
}
