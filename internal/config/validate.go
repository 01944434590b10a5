package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mailjail/mailjail/rules"
)

// problems collects located errors, each once: a bad value in [defaults]
// would otherwise be reported again for every jail that inherits it.
type problems struct {
	errs []error
	seen map[string]bool
}

func (p *problems) add(e *Error) {
	if p.seen == nil {
		p.seen = map[string]bool{}
	}
	if s := e.Error(); !p.seen[s] {
		p.seen[s] = true
		p.errs = append(p.errs, e)
	}
}

// Validate checks everything Parse cannot: filters compile, durations and
// counts make sense, addresses parse. It reports every problem, not just
// the first, each located.
func (c *Config) Validate() error {
	var p problems
	c.warnings = nil
	c.warnLegacy()
	c.validateGlobal(&p)
	c.validateAlert(&p)
	c.validateFilters(&p)
	c.validateReservedFilters(&p)
	c.validateTargets(&p)
	c.validateCluster(&p)
	c.validateWebhooks(&p)
	c.validateWritten(&p, "defaults", c.rawDefaults)
	c.validateDefaultMode(&p)
	for _, k := range rateOnlyKeys(c.rawDefaults) {
		p.add(c.errAt("defaults."+k, "only a rate jail takes %s: set it in the [jail.NAME] with rate_key", k))
	}
	if c.rawDefaults.JournalMatch != nil {
		p.add(c.errAt("defaults.journalmatch", "set journalmatch in the jail that follows the journal, not in [defaults]"))
	}
	enabled := 0
	for _, j := range c.Jails {
		if !validName(j.Name) {
			p.add(&Error{File: c.Source, Line: c.lines["jail."+j.Name], Key: "jail." + strconv.Quote(j.Name),
				Msg: "jail names are letters, digits, '.', '_' and '-'"})
			continue
		}
		if j.Name == ManualJail {
			p.add(c.errAt("jail."+j.Name, "%q is the jail of bans made by hand (mailjail ban): choose another name", j.Name))
		}
		c.validateWritten(&p, "jail."+j.Name, c.raw[j.Name])
		if !j.Enabled {
			continue
		}
		enabled++
		c.validateJail(&p, j)
	}
	if enabled == 0 {
		p.add(&Error{File: c.Source, Key: "jail", Msg: "no enabled jail"})
	}
	return errors.Join(p.errs...)
}

func (c *Config) validateGlobal(p *problems) {
	g := c.Global
	if err := checkIgnore(g.IgnoreIP); err != nil {
		p.add(c.errAt("global.ignoreip", "%v", err))
	}
	if g.DNSRefresh < 10*time.Second {
		p.add(c.errAt("global.dns_refresh", "must be at least 10s, got %s", FormatDuration(g.DNSRefresh)))
	}
	if g.Timezone != "" {
		if _, err := time.LoadLocation(g.Timezone); err != nil {
			p.add(c.errAt("global.timezone", "unknown time zone %q", g.Timezone))
		}
	}
	if _, err := rules.NewAllowList(g.AllowSenders); err != nil {
		p.add(c.errAt("global.allow_senders", "%v", err))
	}
	if filepath.Clean(g.AccountMapFile) == filepath.Clean(g.MapFile) {
		p.add(c.errAt("global.account_map_file", "must differ from map_file (%s): one holds addresses, the other accounts", g.MapFile))
	}
	for _, kv := range [][2]string{{"global.database", g.Database}, {"global.map_file", g.MapFile}, {"global.account_map_file", g.AccountMapFile}, {"global.socket", g.Socket}} {
		if !filepath.IsAbs(kv[1]) {
			p.add(c.errAt(kv[0], "must be an absolute path, got %q", kv[1]))
		}
	}
	switch g.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		p.add(c.errAt("global.log_level", "must be debug, info, warn or error, got %q", g.LogLevel))
	}
	c.validateObservability(p)
	if g.MinPrefixV4 < 0 || g.MinPrefixV4 > 32 {
		p.add(c.errAt("global.min_prefix_v4", "must be between 0 and 32, got %d", g.MinPrefixV4))
	}
	if g.MinPrefixV6 < 0 || g.MinPrefixV6 > 128 {
		p.add(c.errAt("global.min_prefix_v6", "must be between 0 and 128, got %d", g.MinPrefixV6))
	}
	c.validateBreaker(p)
	if g.DBPurgeAge < time.Hour {
		p.add(c.errAt("global.dbpurgeage", "must be at least 1h, got %s", FormatDuration(g.DBPurgeAge)))
	}
	if g.DBMaxMatches < 0 {
		p.add(c.errAt("global.dbmaxmatches", "must be 0 or more, got %d", g.DBMaxMatches))
	}
}

// validateFilters compiles every [filter.NAME] and locates a problem at
// the line of the field it is about.
func (c *Config) validateFilters(p *problems) {
	names := make([]string, 0, len(c.Filters))
	for n := range c.Filters {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, name := range names {
		if !validName(name) {
			p.add(&Error{File: c.Source, Line: c.lines["filter."+name], Key: "filter." + strconv.Quote(name),
				Msg: "filter names are letters, digits, '.', '_' and '-'"})
			continue
		}
		if _, err := rules.CompileFilter(name, c.Filters[name]); err != nil {
			field := "failregex"
			if se, ok := errors.AsType[*rules.SpecError](err); ok {
				field = se.Field
			}
			p.add(c.errAt("filter."+name+"."+field, "%v", err))
		}
	}
}

// ManualJail is the name under which bans made by hand (and entries
// adopted from an existing map) are kept, so no configured jail may use it.
const ManualJail = "manual"

// validName reports whether a jail or filter name is safe to write into
// the map's comments, logs and the terminal as it is.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// validateWritten checks what a table (a jail or [defaults]) writes
// itself, in every jail, enabled or not: durations that did not parse, and
// its own ignoreip (global ignoreip is checked once, under [global]).
func (c *Config) validateWritten(p *problems, table string, jf jailFile) {
	for _, d := range []struct {
		key string
		v   *Duration
	}{{"findtime", jf.FindTime}, {"bantime", jf.BanTime}, {"bantime_maxtime", jf.BanMaxTime}, {"bantime_lookback", jf.Lookback}, {"bantime_rndtime", jf.RndTime}} {
		if d.v != nil && d.v.err != nil {
			p.add(c.errAt(table+"."+d.key, "%v", d.v.err))
		}
	}
	if _, err := parseMultipliers(jf.Multipliers); err != nil {
		p.add(c.errAt(table+".bantime_multipliers", "%v", err))
	}
	if jf.IgnoreIP != nil {
		if err := checkIgnore(jf.IgnoreIP); err != nil {
			p.add(c.errAt(table+".ignoreip", "%v", err))
		}
	}
	c.validateWrittenActions(p, table, jf.actionsFile)
}

// jkey is the key under which a jail's setting is reported: the jail's own
// line when the jail writes it, else the [defaults] line it inherits.
func (c *Config) jkey(j *Jail, field string) string {
	own := "jail." + j.Name + "." + field
	if _, ok := c.lines[own]; !ok {
		if _, ok := c.lines["defaults."+field]; ok {
			return "defaults." + field
		}
	}
	return own
}

// validateJail checks one enabled jail.
func (c *Config) validateJail(p *problems, j *Jail) {
	k := "jail." + j.Name
	raw := c.raw[j.Name]
	if j.Rate != nil {
		for _, e := range c.validateRate(j) {
			p.add(e)
		}
		for _, f := range []struct {
			key string
			set bool
		}{{"filter", raw.Filter != nil}, {"buckets", raw.Buckets != nil}} {
			if f.set {
				p.add(c.errAt(k+"."+f.key, "a rate jail reads Postfix's log itself: %s does not apply", f.key))
			}
		}
	} else {
		if _, err := c.CompileFilter(j.Filter); err != nil && !j.OnBans() {
			p.add(c.errAt(c.jkey(j, "filter"), "%v", err))
		}
		for _, key := range rateOnlyKeys(raw) {
			p.add(c.errAt(k+"."+key, "only a rate jail (with rate_key) takes %s; this jail uses filter %q", key, j.Filter))
		}
	}
	c.validateMode(p, j)
	c.validateOnBans(p, j)
	if !j.OnBans() {
		c.validateKey(p, j)
		c.validateSources(p, j)
	}
	c.validatePolicy(p, j)
	c.validateJailTargets(p, j)
	c.validateJailActions(p, j)
	for _, b := range j.Buckets {
		if b == "" || strings.ContainsAny(b, "\" ") {
			p.add(c.errAt(c.jkey(j, "buckets"), "invalid bucket name %q", b))
		}
	}
	for _, kv := range []struct {
		key  string
		argv []string
	}{{"ban_action", j.BanAction}, {"unban_action", j.UnbanAction}} {
		if len(kv.argv) > 0 && !filepath.IsAbs(kv.argv[0]) {
			p.add(c.errAt(c.jkey(j, kv.key), "program must be an absolute path (it runs without a shell), got %q", kv.argv[0]))
		}
	}
}

// validateKey checks what the jail counts and its account responses.
func (c *Config) validateKey(p *problems, j *Jail) {
	k := "jail." + j.Name
	raw := c.raw[j.Name]
	switch {
	case j.Rate != nil && raw.Key != nil:
		p.add(c.errAt(k+".key", "a rate jail counts by its rate_key: key does not apply"))
	case j.Key != KeyAddress && j.Key != KeyAccount:
		p.add(c.errAt(c.jkey(j, "key"), "must be %q or %q, got %q", KeyAddress, KeyAccount, j.Key))
	case j.Rate == nil && j.Accounts():
		if f, err := c.CompileFilter(j.Filter); err == nil && !f.CapturesUser() {
			p.add(c.errAt(c.jkey(j, "key"), "filter %q names no account: an account jail's filter captures <USER>", j.Filter))
		}
	}
	if j.Accounts() {
		if j.Rate != nil && j.Rate.Key == "sender" && raw.Suspend != nil && *raw.Suspend {
			p.add(c.errAt(k+".suspend", "a sender-keyed jail never suspends (anyone can forge an envelope sender): use rate_key = \"sasl_username\""))
		}
		return
	}
	for _, f := range []struct {
		key string
		set bool
	}{{"suspend", raw.Suspend != nil}, {"ban_sources", raw.BanSources != nil}} {
		if f.set {
			p.add(c.errAt(k+"."+f.key, "only an account jail (key = \"account\") takes %s", f.key))
		}
	}
}

// validateSources checks what a jail reads: files or the journal.
func (c *Config) validateSources(p *problems, j *Jail) {
	k := "jail." + j.Name
	if len(j.LogPath) == 0 && j.Journal == nil {
		p.add(c.errAt(k+".logpath", "no log file (or journalmatch) to follow"))
	}
	if jm := j.Journal; jm != nil && len(jm.Units) == 0 && len(jm.Identifiers) == 0 {
		p.add(c.errAt(k+".journalmatch", "needs units or identifiers"))
	}
	for _, path := range j.LogPath {
		if !filepath.IsAbs(path) {
			p.add(c.errAt(c.jkey(j, "logpath"), "must be an absolute path, got %q", path))
		} else if _, err := filepath.Match(path, ""); err != nil {
			p.add(c.errAt(c.jkey(j, "logpath"), "bad glob %q: %v", path, err))
		}
	}
}

// validatePolicy checks the counts and durations of strikes and bans.
func (c *Config) validatePolicy(p *problems, j *Jail) {
	if j.MaxRetry < 1 {
		p.add(c.errAt(c.jkey(j, "maxretry"), "must be at least 1, got %d", j.MaxRetry))
	}
	if j.FindTime <= 0 {
		p.add(c.errAt(c.jkey(j, "findtime"), "must be a positive duration"))
	}
	if j.BanTime == 0 {
		p.add(c.errAt(c.jkey(j, "bantime"), "must be a positive duration or \"permanent\""))
	}
	if j.BanMaxTime < 0 {
		p.add(c.errAt(c.jkey(j, "bantime_maxtime"), "must be a positive duration"))
	}
	if j.Lookback < 0 {
		p.add(c.errAt(c.jkey(j, "bantime_lookback"), "must be a positive duration"))
	}
	if j.BanIncrement && j.BanTime > 0 && j.BanMaxTime > 0 && j.BanTime > j.BanMaxTime {
		// The policy caps every escalated ban at bantime_maxtime: a repeat
		// offender would get less than bantime. (Without escalation there
		// is no cap.)
		limit := FormatDuration(j.BanMaxTime)
		if c.lines["jail."+j.Name+".bantime_maxtime"] == 0 && c.lines["defaults.bantime_maxtime"] == 0 {
			limit += " (the default)"
		}
		p.add(c.errAt(c.jkey(j, "bantime"), "%s is longer than bantime_maxtime %s, which caps every ban: raise bantime_maxtime or shorten bantime",
			FormatDuration(j.BanTime), limit))
	}
	c.validateEscalation(p, j)
	if j.IPv6Prefix < 32 || j.IPv6Prefix > 128 {
		p.add(c.errAt(c.jkey(j, "ipv6_prefix"), "must be between 32 and 128, got %d", j.IPv6Prefix))
	}
}

// rateOnlyKeys lists the rate-jail keys a table writes.
func rateOnlyKeys(jf jailFile) []string {
	var out []string
	for _, f := range []struct {
		key string
		set bool
	}{
		{"rate_key", jf.RateKey != nil}, {"messages", jf.Messages != nil}, {"recipients", jf.Recipients != nil},
		{"accounting", jf.Accounting != nil}, {"max_entries", jf.MaxEntries != nil},
		{"on_full", jf.OnFull != nil}, {"suspend_factor", jf.SuspendFactor != nil}, {"window", jf.Window != nil},
		{"max_messages", jf.MaxMessages != nil}, {"max_recipients", jf.MaxRecipients != nil}, {"new_accounts_within", jf.NewAccounts != nil}, {"rspamd_version", jf.RspamdVersion != nil},
	} {
		if f.set {
			out = append(out, f.key)
		}
	}
	return out
}

// checkIgnore parses ignoreip entries and reads the files they name, so
// that a typo in a list file stops the start or the reload with its line
// instead of leaving a gateway unprotected. Host names are resolved by
// the daemon, not here: DNS may be down while the configuration is fine.
func checkIgnore(entries []string) error {
	var errs []error
	for _, raw := range entries {
		e, err := rules.ParseIgnoreEntry(raw)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if e.File == "" {
			continue
		}
		if _, err := ReadIgnoreFile(e.File); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", raw, err))
		}
	}
	return errors.Join(errs...)
}

// ReadIgnoreFile reads and parses an ignoreip list file.
func ReadIgnoreFile(path string) ([]rules.IgnoreEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return rules.ParseIgnoreList(f, path)
}
