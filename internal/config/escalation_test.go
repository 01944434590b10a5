package config

import (
	"flag"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files of testdata/escalation")

// TestEscalationKeys: each key is read with its meaning, from the jail or
// [defaults], multipliers as a list or as fail2ban's string.
func TestEscalationKeys(t *testing.T) {
	tests := []struct {
		name, toml string
		want       func(j *Jail) bool
	}{
		{"defaults: doubling, up to a week", okJail, func(j *Jail) bool {
			return j.BanIncrement && j.BanFactor == 1 && j.BanLegacyBase == 0 && j.BanMaxTime == 7*24*time.Hour && j.Lookback == 30*24*time.Hour &&
				j.BanRndTime == 0 && !j.OverallJails && j.PermanentAfter == 0 && j.BanMultipliers == nil
		}},
		{"fail2ban's factor", "[defaults]\nbantime_increment = true\nbantime_factor = 3\n" + okJail, func(j *Jail) bool {
			return j.BanIncrement && j.BanFactor == 3 && j.BanLegacyBase == 0
		}},
		{"multipliers list", okJail + "bantime_multipliers = [1, 5, 30, 60.5]\n", func(j *Jail) bool {
			return reflect.DeepEqual(j.BanMultipliers, []float64{1, 5, 30, 60.5})
		}},
		{"multipliers string", "[defaults]\nbantime_multipliers = \"1 5 30 60 300 720 1440 2880\"\n" + okJail, func(j *Jail) bool {
			return reflect.DeepEqual(j.BanMultipliers, []float64{1, 5, 30, 60, 300, 720, 1440, 2880})
		}},
		{"rndtime, overalljails, permanent_after", okJail + "bantime_rndtime = \"10m\"\nbantime_overalljails = true\npermanent_after = 5\n", func(j *Jail) bool {
			return j.BanRndTime == 10*time.Minute && j.OverallJails && j.PermanentAfter == 5
		}},
		{"increment off", okJail + "bantime_increment = false\n", func(j *Jail) bool { return !j.BanIncrement }},
		{"former meaning kept when no table sets bantime_increment", "[defaults]\nbantime_factor = 3\n" + okJail, func(j *Jail) bool {
			return j.BanIncrement && j.BanLegacyBase == 3 && j.BanFactor == 1
		}},
		{"bantime_increment in another jail gives every factor fail2ban's meaning", okJail + "bantime_factor = 3\n[jail.b]\nfilter = \"rspamd-ratelimit\"\nlogpath = [\"/l\"]\nbantime_increment = true\n",
			func(j *Jail) bool { return j.BanLegacyBase == 0 && j.BanFactor == 3 }},
		{"bantime above the default maxtime without escalation", okJail + "bantime_increment = false\nbantime = \"2w\"\n", func(j *Jail) bool { return j.BanTime == 14*24*time.Hour }},
		{"permanent bantime with permanent_after", okJail + "bantime = \"permanent\"\npermanent_after = 2\n", func(j *Jail) bool { return j.PermanentAfter == 2 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, got := validate(t, tt.toml)
			if got != "" {
				t.Fatal(got)
			}
			if j := c.Jail("ok"); !tt.want(j) {
				t.Errorf("jail = %+v", j)
			}
		})
	}
}

// TestEscalationContradictionsRejected: check refuses what cannot work or
// would do nothing, located.
func TestEscalationContradictionsRejected(t *testing.T) {
	inc := "[defaults]\nbantime_increment = true\n"
	tests := []struct{ name, toml, want string }{
		{"multipliers and factor", inc + okJail + "bantime_factor = 2\nbantime_multipliers = [1, 2]\n",
			"t.toml:6: jail.ok.bantime_factor: contradicts bantime_multipliers (jail.ok.bantime_multipliers)"},
		{"multipliers and a [defaults] factor", "[defaults]\nbantime_increment = true\nbantime_factor = 2\n" + okJail + "bantime_multipliers = \"1 2\"\n",
			"t.toml:3: defaults.bantime_factor: contradicts bantime_multipliers"},
		{"lookback longer than dbpurgeage", "[global]\ndbpurgeage = \"7d\"\n" + okJail + "bantime_lookback = \"30d\"\n",
			"t.toml:6: jail.ok.bantime_lookback: 4w2d is longer than [global] dbpurgeage 1w"},
		{"default lookback longer than dbpurgeage", "[global]\ndbpurgeage = \"1d\"\n" + okJail, "jail.ok.bantime_lookback: 4w2d is longer than [global] dbpurgeage 1d"},
		{"negative rndtime", okJail + "bantime_rndtime = \"permanent\"\n", "t.toml:4: jail.ok.bantime_rndtime: must be a positive duration"},
		{"bad rndtime", okJail + "bantime_rndtime = \"5x\"\n", "t.toml:4: jail.ok.bantime_rndtime: invalid duration"},
		{"negative permanent_after", okJail + "permanent_after = -1\n", "t.toml:4: jail.ok.permanent_after: must be a number of bans"},
		{"zero factor", inc + okJail + "bantime_factor = 0\n", "t.toml:6: jail.ok.bantime_factor: must be a positive number, got 0"},
		{"negative factor", inc + okJail + "bantime_factor = -2\n", "t.toml:6: jail.ok.bantime_factor: must be a positive number"},
		{"legacy factor below 1", okJail + "bantime_factor = 0.5\n", "t.toml:4: jail.ok.bantime_factor: must be at least 1 (1 turns escalation off), got 0.5"},
		{"zero multiplier", okJail + "bantime_multipliers = [1, 0]\n", "t.toml:4: jail.ok.bantime_multipliers: multipliers must be positive numbers, got 0"},
		{"word in multipliers", okJail + "bantime_multipliers = \"1 five\"\n", `t.toml:4: jail.ok.bantime_multipliers: "five" is not a number`},
		{"empty multipliers", okJail + "bantime_multipliers = []\n", "t.toml:4: jail.ok.bantime_multipliers: lists no multiplier"},
		{"multipliers of the wrong type", okJail + "bantime_multipliers = 5\n", "t.toml:4: jail.ok.bantime_multipliers: must be a list of numbers"},
		{"factor with increment off", okJail + "bantime_increment = false\nbantime_factor = 2\n", "t.toml:5: jail.ok.bantime_factor: does nothing with bantime_increment = false (jail.ok.bantime_increment)"},
		{"rndtime with increment off in [defaults]", "[defaults]\nbantime_increment = false\nbantime_rndtime = \"1m\"\n" + okJail, "t.toml:3: defaults.bantime_rndtime: does nothing with bantime_increment = false (defaults.bantime_increment)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { wantErrors(t, tt.toml, tt.want) })
	}
	// Increment off in a jail while [defaults] sets escalation for the
	// others is fine.
	if _, got := validate(t, "[defaults]\nbantime_increment = true\nbantime_factor = 2\n"+okJail+"bantime_increment = false\n"); got != "" {
		t.Error(got)
	}
}

// TestLegacyFactorWarning: a file written for bantime_factor's former
// meaning keeps its lengths and is told, at each table that writes it,
// what to write instead (golden files: go test -update).
func TestLegacyFactorWarning(t *testing.T) {
	tests := []struct{ name, toml string }{
		{"base3", "[defaults]\nbantime_factor = 3\n" + okJail + "[jail.two]\nfilter = \"rspamd-ratelimit\"\nlogpath = [\"/l\"]\nbantime = \"10m\"\nbantime_maxtime = \"1d\"\nbantime_factor = 1.5\n"},
		{"base2", okJail + "bantime_factor = 2.0\n"},
		{"base1", okJail + "bantime_factor = 1\n"},
		{"long", okJail + "bantime_factor = 1.1\nbantime_maxtime = \"100w\"\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, got := validate(t, tt.toml)
			if got != "" {
				t.Fatal(got)
			}
			var b strings.Builder
			for _, w := range c.Warnings() {
				b.WriteString(w.Error() + "\n")
			}
			path := filepath.Join("testdata/escalation", tt.name+".golden")
			if *updateGolden {
				if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if b.String() != string(want) {
				t.Errorf("warnings:\n%s\nwant:\n%s", b.String(), want)
			}
		})
	}
	// Neither the embedded default, nor a file in the new meaning, warns.
	for _, src := range []string{string(DefaultTOML()), "[defaults]\nbantime_increment = true\nbantime_factor = 3\n" + okJail} {
		c, got := validate(t, src)
		if got != "" || len(c.Warnings()) != 0 {
			t.Errorf("%q: %s %v", src, got, c.Warnings())
		}
	}
}

// TestLegacyReplacementKeepsLengths: the replacement a warning gives
// yields the lengths the former meaning gave.
func TestLegacyReplacementKeepsLengths(t *testing.T) {
	for _, tt := range []struct{ old, replacement string }{
		{"bantime_factor = 3\n", "bantime_increment = true\nbantime_multipliers = [1, 3, 9, 27, 81, 243]\n"},
		{"bantime_factor = 2\n", "bantime_increment = true\nbantime_factor = 1\n"},
		{"bantime_factor = 1\n", "bantime_increment = false\n"},
	} {
		old, _ := validate(t, okJail+tt.old)
		repl, got := validate(t, okJail+tt.replacement)
		if got != "" {
			t.Fatal(got)
		}
		po, pr := old.Jail("ok").Policy(), repl.Jail("ok").Policy()
		for earlier := range 12 {
			if a, b := po.BanLength(earlier, 0), pr.BanLength(earlier, 0); a != b {
				t.Errorf("%q, %d earlier: former %v, replacement %v", tt.old, earlier, a, b)
			}
		}
	}
}

// FuzzMultipliers: fail2ban's string form never panics, and what it
// accepts is positive and finite, one per field.
func FuzzMultipliers(f *testing.F) {
	for _, s := range []string{"1 5 30 60 300 720 1440 2880", "1", "", " ", "1e308 1e309", "NaN", "-1", "0x10", "1_000", "Inf"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := parseMultipliers(s)
		if err != nil {
			return
		}
		if len(m) != len(strings.Fields(s)) {
			t.Fatalf("%q: %v", s, m)
		}
		for _, v := range m {
			if !(v > 0) || v > math.MaxFloat64 {
				t.Fatalf("%q: %v", s, m)
			}
		}
	})
}
