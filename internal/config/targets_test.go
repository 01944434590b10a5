package config

import (
	"slices"
	"testing"
)

// Jails route their bans to their own targets, else to [global]'s, which
// default to the rspamd map; manual bans follow [global].
func TestTargetsRouting(t *testing.T) {
	c, errs := validate(t, `[global]
targets = ["rspamd-map", "nftables"]

[jail.own]
filter = "rspamd-ratelimit"
logpath = ["/l"]
targets = ["postfix"]

[jail.inherits]
filter = "rspamd-ratelimit"
logpath = ["/l"]
`)
	if errs != "" {
		t.Fatal(errs)
	}
	for _, tc := range []struct {
		jail string
		want []string
	}{
		{"own", []string{"postfix"}},
		{"inherits", []string{"rspamd-map", "nftables"}},
		{ManualJail, []string{"rspamd-map", "nftables"}},
		{"removed-jail", []string{"rspamd-map", "nftables"}},
	} {
		if got := c.TargetsOf(tc.jail); !slices.Equal(got, tc.want) {
			t.Errorf("TargetsOf(%q) = %v, want %v", tc.jail, got, tc.want)
		}
	}
	if got, want := c.UsedTargets(), []string{"rspamd-map", "postfix", "nftables"}; !slices.Equal(got, want) {
		t.Errorf("UsedTargets = %v, want %v", got, want)
	}
	if c.Postfix.Table != "/etc/postfix/mailjail/access" || c.Postfix.Type != "hash" || c.Postfix.Reload != nil {
		t.Errorf("postfix defaults = %+v", c.Postfix)
	}
	if c.Nftables.Table != "mailjail" || !slices.Equal(c.Nftables.Ports, []int{25, 465, 587}) || c.Nftables.Priority != -10 {
		t.Errorf("nftables defaults = %+v", c.Nftables)
	}
}

func TestTargetsDefault(t *testing.T) {
	c, errs := validate(t, okJail)
	if errs != "" {
		t.Fatal(errs)
	}
	if got := c.UsedTargets(); !slices.Equal(got, []string{TargetRspamdMap}) {
		t.Errorf("UsedTargets = %v, want the rspamd map alone", got)
	}
}

func TestRedisDefaults(t *testing.T) {
	c, errs := validate(t, "[global]\ntargets = [\"rspamd-redis\"]\n[redis]\nkey_prefix = \"\"\n[rspamd_redis]\nowner = \"mx1\"\n"+okJail)
	if errs != "" {
		t.Fatal(errs)
	}
	if c.BansKey() != "bans" || c.AccountsKey() != "accounts" || c.Redis.Address != "127.0.0.1:6379" || c.Redis.Timeout.D.Seconds() != 2 || c.RspamdRedis.Owner != "mx1" {
		t.Errorf("redis = %+v %+v", c.Redis, c.RspamdRedis)
	}
	c, _ = validate(t, "[global]\ntargets = [\"rspamd-redis\"]\n"+okJail)
	if c.BansKey() != "mailjail_bans" || c.AccountsKey() != "mailjail_accounts" || c.RspamdRedis.Owner == "" {
		t.Errorf("default keys %q %q owner %q", c.BansKey(), c.AccountsKey(), c.RspamdRedis.Owner)
	}
}

func TestTargetsRejected(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  string
		want []string
	}{
		{"unknown and twice", "[global]\ntargets = [\"nft\", \"postfix\", \"postfix\"]\n" + okJail,
			[]string{`t.toml:2: global.targets: unknown target "nft"`, `t.toml:2: global.targets: target "postfix" is listed twice`}},
		{"empty", okJail + "targets = []\n", []string{"t.toml:4: jail.ok.targets: names no target"}},
		{"unused section", "[nftables]\nports = [25]\n[postfix]\ntype = \"cidr\"\n" + okJail,
			[]string{`t.toml:1: nftables: no jail (nor [global] targets) uses the "nftables" target`, `t.toml:3: postfix: no jail`}},
		{"map without its target", "[global]\nmap_file = \"/m\"\ntargets = [\"nftables\"]\n" + okJail,
			[]string{`t.toml:2: global.map_file: no jail (nor [global] targets) uses the "rspamd-map" target`}},
		{"redis ipv6 prefix", "[global]\ntargets = [\"rspamd-redis\"]\n" + okJail + "ipv6_prefix = 56\n",
			[]string{"t.toml:6: jail.ok.ipv6_prefix: 56 is shorter than /64"}},
		{"accounts need an account target", "[jail.u]\nfilter = \"rspamd-ratelimit\"\nkey = \"account\"\nlogpath = [\"/l\"]\ntargets = [\"nftables\"]\n",
			[]string{"t.toml:5: jail.u.targets: jail u suspends accounts, which only rspamd-map or rspamd-redis can hold"}},
		{"postfix settings", "[global]\ntargets = [\"postfix\"]\n[postfix]\ntable = \"rel\"\ntype = \"btree\"\nmessage = \"a\\nb\"\n" + okJail,
			[]string{"t.toml:4: postfix.table: must be an absolute path", `t.toml:5: postfix.type: must be "hash" or "cidr"`, "t.toml:6: postfix.message: must be one line"}},
		{"hash reload", "[global]\ntargets = [\"postfix\"]\n[postfix]\nreload = [\"postfix\", \"reload\"]\n" + okJail,
			[]string{"t.toml:4: postfix.reload: a hash table is reread by Postfix itself"}},
		{"cidr without reload", "[global]\ntargets = [\"postfix\"]\n[postfix]\ntype = \"cidr\"\nreload = []\n" + okJail,
			[]string{"t.toml:5: postfix.reload: a cidr table is read when smtpd starts"}},
		{"nftables settings", "[global]\ntargets = [\"nftables\"]\n[nftables]\ntable = \"my table\"\nports = [0, 70000]\n" + okJail,
			[]string{"t.toml:4: nftables.table:", "t.toml:5: nftables.ports: port 0 is not", "port 70000 is not"}},
		{"redis settings", "[global]\ntargets = [\"rspamd-redis\"]\n[redis]\nsentinels = [\"a:1\"]\npassword = \"x\"\npassword_file = \"rel\"\nca_file = \"/ca\"\ntimeout = \"soon\"\n[rspamd_redis]\nbans = \"x\"\naccounts = \"x\"\nowner = \"a b\"\n" + okJail,
			[]string{"t.toml:3: redis: sentinels and master_name go together", "t.toml:6: redis.password_file: password and password_file are both set",
				"t.toml:6: redis.password_file: must be an absolute path", "t.toml:7: redis.ca_file: applies with tls = true only", "t.toml:8: redis.timeout:",
				`t.toml:11: rspamd_redis.accounts: must differ from bans ("x")`, "t.toml:12: rspamd_redis.owner:"}},
	} {
		t.Run(tc.name, func(t *testing.T) { wantErrors(t, tc.src, tc.want...) })
	}
}
