package config

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Enforcement target kinds: where a jail's bans are put into force.
const (
	// TargetRspamdMap is the rspamd multimap file (map_file) and, for
	// suspended accounts, account_map_file.
	TargetRspamdMap = "rspamd-map"
	// TargetPostfix is a Postfix access table ([postfix]): the client is
	// refused by smtpd before rspamd sees a message.
	TargetPostfix = "postfix"
	// TargetNftables is a set in an nftables table mailjail owns
	// ([nftables]): the client's packets to the mail ports are dropped.
	TargetNftables = "nftables"
	// TargetRspamdRedis is a Redis hash rspamd's multimap reads
	// ([redis], [rspamd_redis]): one list for several rspamd hosts.
	TargetRspamdRedis = "rspamd-redis"
)

// TargetKinds are the target kinds, in the order status lists them.
var TargetKinds = []string{TargetRspamdMap, TargetPostfix, TargetNftables, TargetRspamdRedis}

// AccountTargets are the kinds that can hold suspended accounts: rspamd
// answers per login, Postfix's client table and a firewall cannot.
var AccountTargets = []string{TargetRspamdMap, TargetRspamdRedis}

// DefaultTargets is where bans go when neither the jail nor [global]
// says: the rspamd map, as before targets existed.
var DefaultTargets = []string{TargetRspamdMap}

// Postfix is the [postfix] section: the access table of the postfix
// target.
type Postfix struct {
	Table   string   `toml:"table"`   // the table's source file; hash: postmap builds TABLE.db
	Type    string   `toml:"type"`    // "hash" (reread by smtpd itself) or "cidr" (needs reload)
	Postmap string   `toml:"postmap"` // postmap program, for hash
	Reload  []string `toml:"reload"`  // argv run after a cidr table changed
	Message string   `toml:"message"` // text after REJECT
}

// Nftables is the [nftables] section: the table mailjail owns.
type Nftables struct {
	Table    string `toml:"table"` // family inet
	Ports    []int  `toml:"ports"` // TCP ports whose packets from banned clients are dropped
	Priority int    `toml:"-"`     // priority, of the input chain: -10 by default (before a distribution's filter chains)
}

// nftablesFile is [nftables] as written: priority = 0 differs from
// leaving it out.
type nftablesFile struct {
	Nftables
	Priority *int `toml:"priority"`
}

// Redis is the [redis] section: the connection of the rspamd-redis
// target (and, later, of the cluster).
type Redis struct {
	Address      string   `toml:"address"`       // host:port of a standalone server
	Sentinels    []string `toml:"sentinels"`     // host:port of Sentinels, with master_name
	MasterName   string   `toml:"master_name"`   //
	Username     string   `toml:"username"`      // ACL user
	Password     string   `toml:"password"`      //
	PasswordFile string   `toml:"password_file"` // read at start, trailing newline dropped
	DB           int      `toml:"db"`            //
	TLS          bool     `toml:"tls"`           //
	CAFile       string   `toml:"ca_file"`       // PEM; default: the system's roots
	KeyPrefix    string   `toml:"-"`             // key_prefix, prepended to every key mailjail writes
	Timeout      Duration `toml:"timeout"`       // dial, read and write
}

// RspamdRedis is the [rspamd_redis] section: the hashes rspamd's
// multimap reads as map = "redis://KEY_PREFIX+NAME".
type RspamdRedis struct {
	Bans     string `toml:"bans"`     // hash of banned addresses and prefixes (type "ip")
	Accounts string `toml:"accounts"` // hash of suspended logins (type "user")
	// Owner marks the fields this host writes, so that hosts sharing a
	// hash remove only their own. Default: the host name.
	Owner string `toml:"owner"`
}

// BansKey and AccountsKey are the full Redis keys of the hashes.
func (c *Config) BansKey() string     { return c.Redis.KeyPrefix + c.RspamdRedis.Bans }
func (c *Config) AccountsKey() string { return c.Redis.KeyPrefix + c.RspamdRedis.Accounts }

// TargetsOf returns the target kinds that enforce the bans and
// suspensions of the named jail: its own targets, else [global]'s. Manual
// bans, bans adopted from a map and bans of a jail no longer configured
// follow [global].
func (c *Config) TargetsOf(jail string) []string {
	if j := c.Jail(jail); j != nil && j.Targets != nil {
		return j.Targets
	}
	return c.Global.Targets
}

// UsesTarget reports whether any enabled jail, or [global] (manual bans),
// enforces on kind.
func (c *Config) UsesTarget(kind string) bool {
	if slices.Contains(c.Global.Targets, kind) {
		return true
	}
	for _, j := range c.Jails {
		if j.Enabled && slices.Contains(c.TargetsOf(j.Name), kind) {
			return true
		}
	}
	return false
}

// UsedTargets are the kinds UsesTarget reports, in TargetKinds order.
func (c *Config) UsedTargets() []string {
	var out []string
	for _, k := range TargetKinds {
		if c.UsesTarget(k) {
			out = append(out, k)
		}
	}
	return out
}

// targetsFile is what the target sections look like as written; the
// zero values are filled by applyTargetDefaults.
type targetsFile struct {
	Postfix     *Postfix      `toml:"postfix"`
	Nftables    *nftablesFile `toml:"nftables"`
	Redis       *redisFile    `toml:"redis"`
	RspamdRedis *RspamdRedis  `toml:"rspamd_redis"`
}

// redisFile is [redis] as written: key_prefix = "" (no prefix) differs
// from leaving it out.
type redisFile struct {
	Redis
	KeyPrefix *string `toml:"key_prefix"`
}

// applyTargetDefaults fills the target sections, written or not.
func (c *Config) applyTargetDefaults(f targetsFile) {
	if c.Global.Targets == nil {
		c.Global.Targets = slices.Clone(DefaultTargets)
	}
	c.written = map[string]bool{"postfix": f.Postfix != nil, "nftables": f.Nftables != nil, "redis": f.Redis != nil, "rspamd_redis": f.RspamdRedis != nil}
	c.Postfix = deref(f.Postfix, Postfix{})
	if c.Postfix.Table == "" {
		c.Postfix.Table = "/etc/postfix/mailjail/access"
	}
	if c.Postfix.Type == "" {
		c.Postfix.Type = "hash"
	}
	if c.Postfix.Postmap == "" {
		c.Postfix.Postmap = "postmap"
	}
	if c.Postfix.Reload == nil && c.Postfix.Type == "cidr" {
		c.Postfix.Reload = []string{"postfix", "reload"}
	}
	if c.Postfix.Message == "" {
		c.Postfix.Message = "banned by mailjail"
	}
	nf := deref(f.Nftables, nftablesFile{})
	c.Nftables = nf.Nftables
	c.Nftables.Priority = deref(nf.Priority, -10)
	if c.Nftables.Table == "" {
		c.Nftables.Table = "mailjail"
	}
	if c.Nftables.Ports == nil {
		c.Nftables.Ports = []int{25, 465, 587}
	}
	rf := deref(f.Redis, redisFile{})
	c.Redis = rf.Redis
	c.Redis.KeyPrefix = deref(rf.KeyPrefix, "mailjail_")
	if c.Redis.Address == "" && len(c.Redis.Sentinels) == 0 {
		c.Redis.Address = "127.0.0.1:6379"
	}
	if c.Redis.Timeout.D == 0 {
		c.Redis.Timeout.D = 2 * time.Second
	}
	c.RspamdRedis = deref(f.RspamdRedis, RspamdRedis{})
	if c.RspamdRedis.Bans == "" {
		c.RspamdRedis.Bans = "bans"
	}
	if c.RspamdRedis.Accounts == "" {
		c.RspamdRedis.Accounts = "accounts"
	}
	if c.RspamdRedis.Owner == "" {
		c.RspamdRedis.Owner, _ = os.Hostname()
	}
}

// validateTargets checks the target lists and the sections of the kinds
// in use, and rejects a section no jail uses: it would do nothing.
func (c *Config) validateTargets(p *problems) {
	c.validateTargetList(p, "global.targets", c.Global.Targets)
	for _, j := range c.Jails {
		if j.Enabled && j.Targets != nil {
			c.validateTargetList(p, "jail."+j.Name+".targets", j.Targets)
		}
	}
	for _, s := range []struct{ section, kind string }{
		{"postfix", TargetPostfix}, {"nftables", TargetNftables}, {"redis", TargetRspamdRedis}, {"rspamd_redis", TargetRspamdRedis},
	} {
		if s.section == "redis" && c.Cluster.Enabled {
			continue // the cluster's connection
		}
		if c.written[s.section] && !c.UsesTarget(s.kind) {
			p.add(c.errAt(s.section, "no jail (nor [global] targets) uses the %q target: this section would do nothing", s.kind))
		}
	}
	if !c.UsesTarget(TargetRspamdMap) {
		for _, key := range []string{"global.map_file", "global.account_map_file"} {
			if c.lines[key] > 0 {
				p.add(c.errAt(key, "no jail (nor [global] targets) uses the %q target: this file would never be written", TargetRspamdMap))
			}
		}
	}
	if c.UsesTarget(TargetPostfix) {
		c.validatePostfix(p)
	}
	if c.UsesTarget(TargetNftables) {
		c.validateNftables(p)
	}
	if c.UsesTarget(TargetRspamdRedis) {
		c.validateRedis(p)
	}
}

func (c *Config) validateTargetList(p *problems, key string, kinds []string) {
	if len(kinds) == 0 {
		p.add(c.errAt(key, "names no target: bans would be recorded but enforced nowhere (use mode = \"log-only\" to try a jail)"))
	}
	for i, k := range kinds {
		if !slices.Contains(TargetKinds, k) {
			p.add(c.errAt(key, "unknown target %q: must be one of %s", k, strings.Join(TargetKinds, ", ")))
		} else if slices.Index(kinds, k) < i {
			p.add(c.errAt(key, "target %q is listed twice", k))
		}
	}
}

// validateJailTargets checks what a jail's targets must be able to do:
// hold its accounts, express its prefixes.
func (c *Config) validateJailTargets(p *problems, j *Jail) {
	kinds := c.TargetsOf(j.Name)
	key := "global.targets"
	if j.Targets != nil {
		key = "jail." + j.Name + ".targets"
	}
	if j.CanSuspend() && !slices.ContainsFunc(kinds, func(k string) bool { return slices.Contains(AccountTargets, k) }) {
		p.add(c.errAt(key, "jail %s suspends accounts, which only %s can hold: add one, or set suspend = false",
			j.Name, strings.Join(AccountTargets, " or ")))
	}
	if slices.Contains(kinds, TargetRspamdRedis) && j.IPv6Prefix < MinRedisPrefixV6 {
		p.add(c.errAt(c.jkey(j, "ipv6_prefix"), "%d is shorter than /%d, the shortest IPv6 prefix rspamd looks up in a Redis map (target %s)",
			j.IPv6Prefix, MinRedisPrefixV6, TargetRspamdRedis))
	}
}

// The shortest prefixes rspamd's multimap looks a client up under in a
// Redis map: it tries the address, then its prefixes down to these.
const (
	MinRedisPrefixV4 = 8
	MinRedisPrefixV6 = 64
)

func (c *Config) validatePostfix(p *problems) {
	pf := c.Postfix
	if !filepath.IsAbs(pf.Table) {
		p.add(c.errAt("postfix.table", "must be an absolute path, got %q", pf.Table))
	}
	switch pf.Type {
	case "hash":
		if pf.Reload != nil {
			p.add(c.errAt("postfix.reload", "a hash table is reread by Postfix itself: reload applies to type = \"cidr\" only"))
		}
	case "cidr":
		if len(pf.Reload) == 0 {
			p.add(c.errAt("postfix.reload", "a cidr table is read when smtpd starts: it needs a reload command"))
		}
	default:
		p.add(c.errAt("postfix.type", "must be \"hash\" or \"cidr\", got %q", pf.Type))
	}
	if strings.ContainsAny(pf.Message, "\r\n") {
		p.add(c.errAt("postfix.message", "must be one line"))
	}
}

func (c *Config) validateNftables(p *problems) {
	n := c.Nftables
	if !validName(n.Table) {
		p.add(c.errAt("nftables.table", "table names are letters, digits, '.', '_' and '-', got %q", n.Table))
	}
	if len(n.Ports) == 0 {
		p.add(c.errAt("nftables.ports", "names no port: nothing would be dropped"))
	}
	for _, port := range n.Ports {
		if port < 1 || port > 65535 {
			p.add(c.errAt("nftables.ports", "port %d is not between 1 and 65535", port))
		}
	}
}

func (c *Config) validateRedis(p *problems) {
	c.validateRedisConn(p)
	c.validateRspamdRedis(p)
}

// validateRedisConn checks [redis], the connection the rspamd-redis
// target and the cluster share.
func (c *Config) validateRedisConn(p *problems) {
	r := c.Redis
	if r.Timeout.err != nil {
		p.add(c.errAt("redis.timeout", "%v", r.Timeout.err))
	} else if r.Timeout.D < 0 {
		p.add(c.errAt("redis.timeout", "must be a positive duration"))
	}
	if (len(r.Sentinels) > 0) != (r.MasterName != "") {
		p.add(c.errAt("redis", "sentinels and master_name go together"))
	}
	if r.Password != "" && r.PasswordFile != "" {
		p.add(c.errAt("redis.password_file", "password and password_file are both set: keep one"))
	}
	for _, kv := range [][2]string{{"redis.password_file", r.PasswordFile}, {"redis.ca_file", r.CAFile}} {
		if kv[1] != "" && !filepath.IsAbs(kv[1]) {
			p.add(c.errAt(kv[0], "must be an absolute path, got %q", kv[1]))
		}
	}
	if r.CAFile != "" && !r.TLS {
		p.add(c.errAt("redis.ca_file", "applies with tls = true only"))
	}
}

func (c *Config) validateRspamdRedis(p *problems) {
	rr := c.RspamdRedis
	if rr.Bans == rr.Accounts {
		p.add(c.errAt("rspamd_redis.accounts", "must differ from bans (%q): one hash holds addresses, the other accounts", rr.Bans))
	}
	if strings.ContainsAny(rr.Owner, " =\t\r\n") || rr.Owner == "" {
		p.add(c.errAt("rspamd_redis.owner", "must be a non-empty word without spaces or '=', got %q", rr.Owner))
	}
	for _, kv := range [][2]string{{"rspamd_redis.bans", c.BansKey()}, {"rspamd_redis.accounts", c.AccountsKey()}} {
		if strings.ContainsAny(kv[1], " \t\r\n\"'") {
			p.add(c.errAt(kv[0], "key %q has a space or quote: rspamd's map = \"redis://KEY\" could not name it", kv[1]))
		}
	}
}

// TargetNote says where the bans of kind are enforced, for check's
// summary.
func (c *Config) TargetNote(kind string) string {
	switch kind {
	case TargetRspamdMap:
		return fmt.Sprintf("%s (accounts: %s)", c.Global.MapFile, c.Global.AccountMapFile)
	case TargetPostfix:
		return c.Postfix.Type + ":" + c.Postfix.Table
	case TargetNftables:
		return "inet " + c.Nftables.Table
	case TargetRspamdRedis:
		return fmt.Sprintf("redis %s: %s, %s (owner %s)", c.Redis.Address, c.BansKey(), c.AccountsKey(), c.RspamdRedis.Owner)
	}
	return ""
}
