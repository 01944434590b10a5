package config

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestEmbeddedDefault(t *testing.T) {
	c, err := LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	if len(c.EnabledJails()) != 2 {
		t.Fatalf("jails = %v", c.Jails)
	}
	j := c.Jail("rspamd-ratelimit")
	if j.Name != "rspamd-ratelimit" || j.MaxRetry != 10 || j.FindTime != 10*time.Minute || j.BanTime != time.Hour ||
		j.LogPath[0] != "/var/log/rspamd/rspamd.log" {
		t.Errorf("jail = %+v", j)
	}
	if strings.Join(j.Buckets, ",") != "ip,to_ip,to_ip_from,bounce_to_ip" {
		t.Errorf("default buckets = %v: user bucket must not ban by default", j.Buckets)
	}
	if c.Global.MapFile != "/etc/rspamd/local.d/maps/ip_blacklist_ratelimit.map" {
		t.Errorf("map file = %s", c.Global.MapFile)
	}
	// Accounts are protected out of the box: the user bucket strikes the
	// login, which is suspended, its sources banned, and an alert sent.
	a := c.Jail("rspamd-user")
	if a == nil || !a.Enabled || !a.Accounts() || !a.CanSuspend() || !a.BanSources || !a.Alert || a.MaxRetry != 10 || a.FindTime != 10*time.Minute ||
		strings.Join(a.Buckets, ",") != "user" || a.LogPath[0] != "/var/log/rspamd/rspamd.log" {
		t.Errorf("account jail = %+v", a)
	}
	if c.Global.AccountMapFile != "/etc/rspamd/local.d/maps/mailjail_accounts.map" {
		t.Errorf("account map file = %s", c.Global.AccountMapFile)
	}
}

func TestExampleConfigIsValid(t *testing.T) {
	fh, err := os.Open("../../examples/mailjail.toml")
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	c, err := Parse(fh, "mailjail.toml")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestDefaultsAndOverrides(t *testing.T) {
	c, err := Parse(strings.NewReader(`
[global]
ignoreip = ["10.0.0.0/8"]
[defaults]
maxretry = 4
bantime = "1d"
[jail.a]
filter = "rspamd-ratelimit"
logpath = ["/var/log/rspamd/rspamd.log"]
findtime = "1w"
bantime = "permanent"
ignoreip = ["192.0.2.0/24"]
buckets = ["ip", "user"]
[jail.b]
enabled = false
filter = "postfix-ratelimit"
logpath = ["/var/log/mail.log"]
`), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	a, b := c.Jail("a"), c.Jail("b")
	if a.MaxRetry != 4 || a.FindTime != 7*24*time.Hour || a.BanTime != Permanent || strings.Join(a.IgnoreIP, ",") != "10.0.0.0/8,192.0.2.0/24" || len(a.Buckets) != 2 {
		t.Errorf("a = %+v", a)
	}
	if b.Enabled || b.BanTime != 24*time.Hour {
		t.Errorf("b = %+v", b)
	}
}

// Every problem names the file, the line and the key.
func TestErrorsAreLocated(t *testing.T) {
	tests := []struct {
		name, toml, want string
	}{
		{"unknown key", "[jail.a]\nfilter = \"rspamd-ratelimit\"\nlogpath = [\"/l\"]\nmaxretyr = 3\n", "t.toml:4: jail.a.maxretyr: unknown field"},
		{"bad duration", "[jail.a]\nfilter = \"rspamd-ratelimit\"\nfindtime = \"10x\"\n", `t.toml:3: jail.a.findtime: invalid duration "10x": unit "x"`},
		{"wrong type", "[jail.a]\nmaxretry = \"ten\"\n", "t.toml:2: jail.a.maxretry:"},
		{"syntax", "[jail.a\n", "t.toml:1:"},
		{"bad regex", "[filter.f]\nfailregex = [\"from <HOST> (\"]\n[jail.a]\nfilter = \"f\"\nlogpath = [\"/l\"]\n", "t.toml:2: filter.f.failregex: failregex[0]"},
		{"unknown filter", "[jail.a]\nfilter = \"nope\"\nlogpath = [\"/l\"]\n", "t.toml:2: jail.a.filter: no [filter.nope]"},
		{"maxretry zero", "[jail.a]\nfilter = \"rspamd-ratelimit\"\nlogpath = [\"/l\"]\nmaxretry = 0\n", "t.toml:4: jail.a.maxretry: must be at least 1"},
		{"bad ignoreip", "[global]\nignoreip = [\"300.1.1.1\"]\n[jail.a]\nfilter = \"rspamd-ratelimit\"\nlogpath = [\"/l\"]\n", "t.toml:2: global.ignoreip: invalid address"},
		{"relative logpath", "[jail.a]\nfilter = \"rspamd-ratelimit\"\nlogpath = [\"rspamd.log\"]\n", "t.toml:3: jail.a.logpath: must be an absolute path"},
		{"missing logpath points at the jail", "\n[jail.a]\nfilter = \"rspamd-ratelimit\"\n", "t.toml:2: jail.a.logpath: no log file"},
		{"action needs absolute program", "[jail.a]\nfilter = \"rspamd-ratelimit\"\nlogpath = [\"/l\"]\nban_action = [\"sh\", \"-c\", \"x\"]\n", "t.toml:4: jail.a.ban_action: program must be an absolute path"},
		{"bad alert address", "[alert]\nsmtp = \"127.0.0.1:25\"\nto = [\"root@localhost\\r\\nBcc: x@y\"]\n[jail.a]\nfilter = \"rspamd-ratelimit\"\nlogpath = [\"/l\"]\n", "t.toml:1: alert: invalid address"},
		{"no jail", "[global]\n", "t.toml: jail: no enabled jail"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(strings.NewReader(tt.toml), "t.toml")
			if err == nil {
				err = c.Validate()
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v\nwant containing %q", err, tt.want)
			}
		})
	}
}

func TestParseDuration(t *testing.T) {
	tests := map[string]time.Duration{
		"10m": 10 * time.Minute, "1h": time.Hour, "1d": 24 * time.Hour, "1w": 7 * 24 * time.Hour,
		"1h30m": 90 * time.Minute, "1.5h": 90 * time.Minute, "permanent": Permanent, "-1": Permanent, "250ms": 250 * time.Millisecond,
	}
	for in, want := range tests {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("%q = %v, %v; want %v", in, got, err, want)
		}
		if want > 0 {
			back, _ := ParseDuration(FormatDuration(got))
			if back != got {
				t.Errorf("round trip %q -> %q", in, FormatDuration(got))
			}
		}
	}
	for _, bad := range []string{"", "10", "m", "10y", "0s", "-5m", "1h-"} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestRateJailErrors(t *testing.T) {
	base := "[jail.r]\nlogpath = [\"/var/log/mail.log\"]\n"
	tests := []struct{ toml, want string }{
		{base + "rate_key = \"helo\"\nmessages = { burst = 1, rate = \"1 / 1h\" }\n", `t.toml:3: jail.r.rate_key: must be one of`},
		{base + "rate_key = \"sender\"\n", "needs messages or recipients"},
		{base + "rate_key = \"sender\"\nmessages = { burst = 1, rate = \"1 / 1y\" }\n", "t.toml:4: jail.r.messages:"},
		{base + "rate_key = \"sender\"\nmessages = { burst = 1, rate = \"1 / 1h\" }\nmode = \"ban\"\n", `t.toml:5: jail.r.mode: "ban" needs rate_key = "client"`},
		{base + "rate_key = \"client\"\nmessages = { burst = 1, rate = \"1 / 1h\" }\naccounting = \"lazy\"\n", `t.toml:5: jail.r.accounting: must be one of "leaky", "strict", got "lazy"`},
		{base + "rate_key = \"client\"\nmessages = { burst = 1, rate = \"1 / 1h\" }\non_full = \"x\"\n", `jail.r.on_full: must be one of "fail-closed", "fail-open"`},
		{base + "rate_key = \"client\"\nmessages = { burst = 1, rate = \"1 / 1h\" }\nsuspend_factor = 0.5\n", "jail.r.suspend_factor: must be above 1"},
		{"[jail.j]\nfilter = \"postfix-ratelimit\"\njournalmatch = { units = [] }\n", "t.toml:3: jail.j.journalmatch: needs units or identifiers"},
	}
	for _, tt := range tests {
		c, err := Parse(strings.NewReader(tt.toml), "t.toml")
		if err == nil {
			err = c.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: err = %v, want %q", tt.toml, err, tt.want)
		}
	}
	c, _ := Parse(strings.NewReader(base+"rate_key = \"client\"\nrecipients = { burst = 5, rate = \"5 / 1h\" }\n"), "t.toml")
	if err := c.Validate(); err != nil || c.Jails[0].Rate.Mode != "ban" || c.Jails[0].Rate.Recipients.Burst != 5 {
		t.Errorf("client rate jail: %v %+v", err, c.Jails[0].Rate)
	}
}
