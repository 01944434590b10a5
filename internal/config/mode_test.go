package config

import (
	"strings"
	"testing"
	"time"
)

// mode = "log-only" is every jail's (issue 16), from the jail or
// [defaults]; a rate jail keeps its own meanings and default by key.
func TestJailMode(t *testing.T) {
	const rate = "[jail.r]\nlogpath = [\"/l\"]\nmessages = { burst = 1, rate = \"1 / 1h\" }\n"
	tests := []struct {
		name, src string
		jail      string
		want      string
		logOnly   bool
	}{
		{"default", okJail, "ok", ModeBan, false},
		{"jail", okJail + "mode = \"log-only\"\n", "ok", ModeLogOnly, true},
		{"defaults", "[defaults]\nmode = \"log-only\"\n" + okJail, "ok", ModeLogOnly, true},
		{"jail over defaults", "[defaults]\nmode = \"log-only\"\n" + okJail + "mode = \"ban\"\n", "ok", ModeBan, false},
		{"rate client", rate + "rate_key = \"client\"\n", "r", ModeBan, false},
		{"rate account", rate + "rate_key = \"sasl_username\"\n", "r", ModeLogOnly, true},
		{"rate suspend", rate + "rate_key = \"sasl_username\"\nmode = \"suspend\"\n", "r", "suspend", false},
		{"defaults ban keeps the rate default", "[defaults]\nmode = \"ban\"\n" + rate + "rate_key = \"sender\"\n", "r", ModeLogOnly, true},
		{"defaults log-only on a rate client jail", "[defaults]\nmode = \"log-only\"\n" + rate + "rate_key = \"client\"\n", "r", ModeLogOnly, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, errs := validate(t, tt.src)
			if errs != "" {
				t.Fatal(errs)
			}
			j := c.Jail(tt.jail)
			if j.Mode != tt.want || j.LogOnly() != tt.logOnly {
				t.Errorf("mode %q, log-only %v; want %q, %v", j.Mode, j.LogOnly(), tt.want, tt.logOnly)
			}
			if j.Rate != nil && j.Rate.Mode != j.Mode {
				t.Errorf("rate mode %q differs from the jail's %q", j.Rate.Mode, j.Mode)
			}
		})
	}
}

// A log-only account jail suspends nothing, so it needs no account
// target; its mode is checked like any key.
func TestJailModeChecks(t *testing.T) {
	acct := "[jail.a]\nfilter = \"rspamd-ratelimit\"\nlogpath = [\"/l\"]\nkey = \"account\"\ntargets = [\"nftables\"]\n"
	if _, errs := validate(t, acct); !strings.Contains(errs, "suspends accounts") {
		t.Fatalf("an enforcing account jail without an account target passed: %q", errs)
	}
	c, errs := validate(t, acct+"mode = \"log-only\"\n")
	if errs != "" {
		t.Fatalf("log-only account jail: %s", errs)
	}
	if c.Jail("a").CanSuspend() {
		t.Error("a log-only account jail may suspend")
	}
	wantErrors(t, okJail+"mode = \"dry\"\n", `t.toml:4: jail.ok.mode: must be "ban" or "log-only", got "dry"`)
	wantErrors(t, "[defaults]\nmode = \"dry\"\n"+okJail, `t.toml:2: defaults.mode: must be "ban" or "log-only", got "dry"`)
}

func TestBreakerConfig(t *testing.T) {
	c, errs := validate(t, okJail)
	if errs != "" {
		t.Fatal(errs)
	}
	if b := c.Global.Breaker; b.Bans != 1000 || b.Window != time.Minute || b.MaxEntries != 1_000_000 || !b.Enabled() {
		t.Errorf("defaults: %+v", b)
	}
	c, errs = validate(t, "[global]\nbreaker_bans = 0\nbreaker_max_entries = 0\n"+okJail)
	if errs != "" || c.Global.Breaker.Enabled() {
		t.Errorf("off: %+v, %s", c.Global.Breaker, errs)
	}
	c, errs = validate(t, "[global]\nbreaker_bans = 50\nbreaker_window = \"10s\"\nbreaker_max_entries = 20000\n"+okJail)
	if b := c.Global.Breaker; errs != "" || b.Bans != 50 || b.Window != 10*time.Second || b.MaxEntries != 20000 {
		t.Errorf("set: %+v, %s", b, errs)
	}
	for _, tt := range []struct{ src, want string }{
		{"breaker_bans = -1\n", "t.toml:2: global.breaker_bans: must be between 0 (off) and"},
		{"breaker_max_entries = -5\n", "t.toml:2: global.breaker_max_entries: must be 0 (off) or more"},
		{"breaker_bans = 0\nbreaker_window = \"5m\"\n", "t.toml:3: global.breaker_window: breaker_bans = 0 turns the rate rule off"},
		{"breaker_window = \"soon\"\n", "t.toml:2: global.breaker_window:"},
		{"breaker_window = \"2d\"\n", "t.toml:2: global.breaker_window: must be a duration between 1s and 1d"},
	} {
		wantErrors(t, "[global]\n"+tt.src+okJail, tt.want)
	}
}
