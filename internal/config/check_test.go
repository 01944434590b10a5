package config

import (
	"strings"
	"testing"
	"time"
)

const okJail = "[jail.ok]\nfilter = \"rspamd-ratelimit\"\nlogpath = [\"/l\"]\n"

// validate parses and validates src, returning the joined error text.
func validate(t *testing.T, src string) (*Config, string) {
	t.Helper()
	c, err := Parse(strings.NewReader(src), "t.toml")
	if err == nil {
		err = c.Validate()
	}
	if err == nil {
		return c, ""
	}
	return c, err.Error()
}

// wantErrors checks that every want is in the error text, each located.
func wantErrors(t *testing.T, src string, want ...string) {
	t.Helper()
	_, got := validate(t, src)
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("errors:\n%s\nwant containing %q", got, w)
		}
	}
}

// Rate-jail keys on a filter jail used to be taken and ignored (issue 11
// #4); in [defaults] they were ignored for every jail. mode is every
// jail's since issue 16 (log-only); "suspend" stays a rate jail's.
func TestRateKeysOnFilterJailRejected(t *testing.T) {
	wantErrors(t, okJail+"mode = \"suspend\"\nmessages = { burst = 1, rate = \"1 / 1h\" }\nsuspend_factor = 2.0\naccounting = \"strict\"\nmax_entries = 5\non_full = \"fail-open\"\nrecipients = { burst = 1, rate = \"1 / 1h\" }\n",
		`t.toml:4: jail.ok.mode: "suspend" is a rate jail's mode`,
		"t.toml:5: jail.ok.messages: only a rate jail",
		"t.toml:6: jail.ok.suspend_factor: only a rate jail",
		"t.toml:7: jail.ok.accounting: only a rate jail",
		"t.toml:8: jail.ok.max_entries:",
		"t.toml:9: jail.ok.on_full:",
		"t.toml:10: jail.ok.recipients:")
	wantErrors(t, "[defaults]\nmode = \"suspend\"\njournalmatch = { units = [\"postfix.service\"] }\n"+okJail,
		`t.toml:2: defaults.mode: must be "ban" or "log-only", got "suspend"`, "t.toml:3: defaults.journalmatch:")
	wantErrors(t, "[jail.r]\nrate_key = \"client\"\nfilter = \"x\"\nbuckets = [\"ip\"]\nlogpath = [\"/l\"]\nmessages = { burst = 1, rate = \"1 / 1h\" }\n",
		"t.toml:3: jail.r.filter: a rate jail reads Postfix's log itself", "t.toml:4: jail.r.buckets:")
}

// Durations used to wrap around int64 (issue 11 #12); ParseDuration is
// also what the CLI's --for and the control socket use.
func TestDurationOutOfRangeRejected(t *testing.T) {
	for _, s := range []string{"10000w10000w10000w10000w", "15000w", "36526d", "99999999999999999999h", "5218w"} {
		if d, err := ParseDuration(s); err == nil || !strings.Contains(err.Error(), "longer than 100 years") {
			t.Errorf("%q = %v, %v", s, d, err)
		}
	}
	if d, err := ParseDuration("36525d"); err != nil || d != MaxDuration {
		t.Errorf("100 years = %v, %v", d, err)
	}
	wantErrors(t, okJail+"bantime = \"10000w10000w10000w10000w\"\n",
		`t.toml:4: jail.ok.bantime: invalid duration "10000w10000w10000w10000w": longer than 100 years`)
}

// One bad duration used to stop the decoder and hide every other problem
// (issue 11 #26).
func TestCheckReportsEveryBadDuration(t *testing.T) {
	wantErrors(t, "[defaults]\nbantime_lookback = \"1y\"\n"+okJail+"findtime = \"10x\"\nbantime = \"\"\nmaxretry = 0\n[jail.b]\nfilter = \"rspamd-ratelimit\"\nlogpath = [\"/l\"]\nbantime_maxtime = \"1q\"\n",
		`t.toml:2: defaults.bantime_lookback: invalid duration "1y"`,
		`t.toml:6: jail.ok.findtime: invalid duration "10x"`,
		`t.toml:7: jail.ok.bantime: empty duration`,
		`t.toml:8: jail.ok.maxretry: must be at least 1`,
		`t.toml:12: jail.b.bantime_maxtime: invalid duration "1q"`)
}

// A bad global ignoreip was reported twice, the second time under a jail
// at the jail's line (issue 11 #26).
func TestGlobalIgnoreIPReportedOnce(t *testing.T) {
	_, got := validate(t, "[global]\nignoreip = [\"300.1.1.1\"]\n"+okJail)
	if strings.Count(got, "300.1.1.1") != 1 || !strings.Contains(got, "t.toml:2: global.ignoreip:") {
		t.Errorf("errors:\n%s", got)
	}
	wantErrors(t, "[global]\n"+okJail+"ignoreip = [\"10.0.0.0/33\"]\n", "t.toml:5: jail.ok.ignoreip:")
}

// A value written in [defaults] is reported once, at its own line.
func TestDefaultsValueReportedAtDefaultsLine(t *testing.T) {
	_, got := validate(t, "[defaults]\nmaxretry = 0\n"+okJail+"[jail.b]\nfilter = \"rspamd-ratelimit\"\nlogpath = [\"/l\"]\n")
	if !strings.Contains(got, "t.toml:2: defaults.maxretry: must be at least 1") || strings.Count(got, "maxretry") != 1 {
		t.Errorf("errors:\n%s", got)
	}
}

// bantime = "2w" used to give 7-day bans without a word (issue 11 #14).
func TestBantimeAboveMaxtimeRejected(t *testing.T) {
	wantErrors(t, okJail+"bantime = \"2w\"\n",
		"t.toml:4: jail.ok.bantime: 2w is longer than bantime_maxtime 1w (the default), which caps every ban")
	wantErrors(t, "[defaults]\nbantime_maxtime = \"1d\"\n"+okJail+"bantime = \"2d\"\n",
		"t.toml:6: jail.ok.bantime: 2d is longer than bantime_maxtime 1d, which caps every ban")
	if _, got := validate(t, okJail+"bantime = \"2w\"\nbantime_maxtime = \"2w\"\n"); got != "" {
		t.Errorf("bantime = maxtime: %s", got)
	}
	if _, got := validate(t, okJail+"bantime = \"permanent\"\n"); got != "" {
		t.Errorf("permanent: %s", got)
	}
}

// Jail names went raw into the map, where a newline made a new entry
// (issue 11 #16).
func TestJailNameValidated(t *testing.T) {
	wantErrors(t, okJail+"[jail.\"x\\n0.0.0.0/0 \"]\nfilter = \"rspamd-ratelimit\"\nlogpath = [\"/l\"]\n",
		`t.toml:4: jail."x\n0.0.0.0/0 ": jail names are letters, digits, '.', '_' and '-'`)
	wantErrors(t, okJail+"[jail.\"a b\"]\nenabled = false\n", `t.toml:4: jail."a b": jail names`)
	wantErrors(t, okJail+"[jail.manual]\nfilter = \"rspamd-ratelimit\"\nlogpath = [\"/l\"]\n", `t.toml:4: jail.manual: "manual" is the jail of bans made by hand`)
	wantErrors(t, okJail+"[filter.\"f\\u001b]0;x\"]\nfailregex = [\"a <HOST>\"]\n", `t.toml:4: filter."f\x1b]0;x": filter names`)
	if _, got := validate(t, "[jail.\"Mail_rate-1.x\"]\nfilter = \"rspamd-ratelimit\"\nlogpath = [\"/l\"]\n"); got != "" {
		t.Errorf("good name: %s", got)
	}
}

// prefilter = "" turns the derived prefilter off (issue 11 #27); a bad one
// is reported at its own line, not the failregex's (#30).
func TestPrefilterSetting(t *testing.T) {
	base := "[filter.f]\nfailregex = ['failed for <HOST>']\n"
	jail := "[jail.f]\nlogpath = [\"/l\"]\n"
	for _, tt := range []struct{ extra, lit string }{{"", "failed for "}, {"prefilter = \"\"\n", ""}, {"prefilter = \"failed\"\n", "failed"}} {
		c, got := validate(t, base+tt.extra+jail)
		if got != "" {
			t.Fatal(got)
		}
		f, err := c.CompileFilter("f")
		if err != nil || string(f.Literal()) != tt.lit {
			t.Errorf("%q: literal %q, %v; want %q", tt.extra, f.Literal(), err, tt.lit)
		}
	}
	wantErrors(t, base+"ignoreregex = []\nprefilter = \"zzz\"\n"+jail, `t.toml:4: filter.f.prefilter: prefilter "zzz": not a literal`)
	wantErrors(t, base+"ignoreregex = ['(']\n"+jail, `t.toml:3: filter.f.ignoreregex: ignoreregex[0]`)
}

// A filter's datepattern reaches the compiled filter; a bad one is
// reported at its line (issue 11 #29).
func TestDatePatternSetting(t *testing.T) {
	c, got := validate(t, "[filter.f]\nfailregex = ['^login failed from <HOST>']\ndatepattern = '^\\[%d/%b/%Y %H:%M:%S\\]'\n[jail.f]\nlogpath = [\"/l\"]\n")
	if got != "" {
		t.Fatal(got)
	}
	f, _ := c.CompileFilter("f")
	line := []byte("[17/Jun/2011 17:00:45] login failed from 192.0.2.1")
	at, n, ok := f.ParseTime(line, time.UTC, time.Date(2011, 6, 20, 0, 0, 0, 0, time.UTC))
	if _, matched := f.Match(line[n:]); !ok || !matched || at.Day() != 17 {
		t.Errorf("at %v ok=%v matched=%v", at, ok, matched)
	}
	wantErrors(t, "[filter.f]\nfailregex = ['x <HOST>']\ndatepattern = '(%d)'\n[jail.f]\nlogpath = [\"/l\"]\n", "t.toml:3: filter.f.datepattern: datepattern")
}

// The shortest ban prefixes (issue 11 #17): defaults, 0 allowed, bounds.
func TestMinPrefixSettings(t *testing.T) {
	c, got := validate(t, okJail)
	if got != "" || c.Global.MinPrefixV4 != 16 || c.Global.MinPrefixV6 != 32 {
		t.Errorf("defaults: %d %d %s", c.Global.MinPrefixV4, c.Global.MinPrefixV6, got)
	}
	c, got = validate(t, "[global]\nmin_prefix_v4 = 0\nmin_prefix_v6 = 128\n"+okJail)
	if got != "" || c.Global.MinPrefixV4 != 0 || c.Global.MinPrefixV6 != 128 {
		t.Errorf("set: %d %d %s", c.Global.MinPrefixV4, c.Global.MinPrefixV6, got)
	}
	wantErrors(t, "[global]\nmin_prefix_v4 = 33\nmin_prefix_v6 = -1\n"+okJail,
		"t.toml:2: global.min_prefix_v4: must be between 0 and 32, got 33", "t.toml:3: global.min_prefix_v6: must be between 0 and 128, got -1")
}

// An unknown key is reported together with the other problems of the
// file, not instead of them (issue 11 #26).
func TestUnknownKeyHidesNothing(t *testing.T) {
	wantErrors(t, "[jail.x]\nfilter = \"rspamd-ratelimit\"\nlogpath = [\"/l\"]\nfindtime = \"1y\"\nmaxretyr = 1\nmaxretry = 0\n",
		"t.toml:5: jail.x.maxretyr: unknown field", `t.toml:4: jail.x.findtime: invalid duration "1y"`, "t.toml:6: jail.x.maxretry: must be at least 1")
}

// Every account setting works or check rejects it.
func TestAccountSettings(t *testing.T) {
	const rate = "[jail.r]\nlogpath = [\"/l\"]\n"
	tests := []struct {
		name, src string
		want      []string // "" for a valid configuration
	}{
		{"account jail on the rspamd filter", okJail + "key = \"account\"\n", nil},
		{"unknown key", okJail + "key = \"login\"\n", []string{`t.toml:4: jail.ok.key: must be "address" or "account", got "login"`}},
		{"a filter without <USER>", "[filter.f]\nfailregex = ['^x <HOST>$']\n[jail.f]\nfilter = \"f\"\nkey = \"account\"\nlogpath = [\"/l\"]\n",
			[]string{`t.toml:5: jail.f.key: filter "f" names no account`}},
		{"a filter with <USER>", "[filter.f]\nfailregex = ['^x <HOST> <USER>$']\n[jail.f]\nfilter = \"f\"\nkey = \"account\"\nlogpath = [\"/l\"]\n", nil},
		{"responses on an address jail", okJail + "suspend = false\nban_sources = true\n",
			[]string{`t.toml:4: jail.ok.suspend: only an account jail`, `t.toml:5: jail.ok.ban_sources: only an account jail`}},
		{"key on a rate jail", rate + "rate_key = \"sasl_username\"\nkey = \"account\"\nmessages = { burst = 1, rate = \"1 / 1h\" }\n",
			[]string{"t.toml:4: jail.r.key: a rate jail counts by its rate_key"}},
		{"suspend by sender", rate + "rate_key = \"sender\"\nmode = \"suspend\"\nmessages = { burst = 1, rate = \"1 / 1h\" }\n",
			[]string{`t.toml:4: jail.r.mode: "suspend" needs rate_key = "sasl_username"`}},
		{"window", rate + "rate_key = \"sasl_username\"\naccounting = \"window\"\nmax_messages = 10\nmax_recipients = 250\nmode = \"suspend\"\nnew_accounts_within = \"60d\"\n", nil},
		{"window without limits", rate + "rate_key = \"sasl_username\"\naccounting = \"window\"\n",
			[]string{"t.toml:4: jail.r.accounting: a sliding window needs max_messages or max_recipients"}},
		{"window keys on a bucket jail", rate + "rate_key = \"sasl_username\"\nmessages = { burst = 1, rate = \"1 / 1h\" }\nwindow = \"1h\"\nmax_messages = 3\n",
			[]string{`t.toml:5: jail.r.window: window belongs to a sliding window`, `t.toml:6: jail.r.max_messages: max_messages belongs`}},
		{"bucket keys on a window jail", rate + "rate_key = \"sasl_username\"\naccounting = \"window\"\nmax_messages = 3\nmessages = { burst = 1, rate = \"1 / 1h\" }\nrspamd_version = \"3.4\"\n",
			[]string{`t.toml:6: jail.r.messages: messages is a leaky bucket`, `t.toml:7: jail.r.rspamd_version: a sliding window is not rspamd's bucket`}},
		{"new accounts without suspend", rate + "rate_key = \"sasl_username\"\nmessages = { burst = 1, rate = \"1 / 1h\" }\nnew_accounts_within = \"60d\"\n",
			[]string{`t.toml:5: jail.r.new_accounts_within: limits suspension to new accounts, so it needs mode = "suspend"`}},
		{"rspamd version", rate + "rate_key = \"client\"\nmessages = { burst = 1, rate = \"1 / 1h\" }\nrspamd_version = \"3.5\"\n",
			[]string{`t.toml:5: jail.r.rspamd_version: must be one of "3.4", "3.6", got "3.5"`}},
		{"allow list", "[global]\nallow_senders = [\"ceo@Example.org\", \"@example.net\", \"bad entry\"]\n" + okJail,
			[]string{`t.toml:2: global.allow_senders:`}},
		{"account map is the address map", "[global]\naccount_map_file = \"/etc/rspamd/local.d/maps/ip_blacklist_ratelimit.map\"\n" + okJail,
			[]string{"t.toml:2: global.account_map_file: must differ from map_file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, got := validate(t, tt.src)
			if len(tt.want) == 0 && got != "" {
				t.Fatalf("rejected: %s", got)
			}
			if len(tt.want) > 0 && got == "" {
				t.Fatal("accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("errors:\n%s\nwant containing %q", got, w)
				}
			}
		})
	}
}
