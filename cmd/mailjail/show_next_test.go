package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailjail/mailjail/internal/testutil"
)

// show gives an address's remaining ban and, per jail that could ban it,
// its next ban escalated by its history (with overalljails, every
// jail's), with and without a daemon.
func TestShowRemainingAndNextBan(t *testing.T) {
	t.Parallel()
	type next struct {
		Jail           string
		Offense        int
		Permanent      bool
		Seconds        int64
		RndTimeSeconds int64 `json:"rndtime_seconds"`
	}
	type show struct {
		Banned    bool
		Remaining *struct {
			Permanent bool
			Seconds   int64
		}
		Next []next
	}
	for _, withDaemon := range []bool{false, true} {
		t.Run(fmt.Sprintf("daemon=%v", withDaemon), func(t *testing.T) {
			e := newEnv(t, func(e *env, c *testutil.Config) {
				list := filepath.Join(e.dir, "gateways")
				if err := os.WriteFile(list, []byte("# the gateways\n203.0.113.77\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				c.IgnoreIP = append(c.IgnoreIP, "file:"+list)
				c.Jails[0].Extra = "bantime_increment = true\nbantime_rndtime = \"10m\"\n"
				c.Jails = append(c.Jails, testutil.Jail{Name: "other", Filter: "rspamd-ratelimit", LogPath: []string{e.log}, MaxRetry: 3, FindTime: "10m", BanTime: "1h",
					Extra: "bantime_overalljails = true\npermanent_after = 3\n"})
			})
			if withDaemon {
				e.startDaemon()
			}
			a := "198.51.100.5"
			var s show
			e.mustJSON(&s, "show", a)
			if s.Banned || s.Remaining != nil || len(s.Next) != 2 || s.Next[0] != (next{"other", 1, false, 3600, 0}) || s.Next[1] != (next{"rspamd-ratelimit", 1, false, 3600, 0}) {
				t.Fatalf("never banned: %+v", s)
			}
			for _, args := range [][]string{{"ban", a, "--jail", "rspamd-ratelimit", "--for", "1m"}, {"unban", a}, {"ban", a, "--jail", "other", "--for", "1h"}} {
				if _, errs, code := e.mj(args...); code != 0 {
					t.Fatalf("%v: exit %d: %s", args, code, errs)
				}
			}
			s = show{}
			e.mustJSON(&s, "show", a)
			// other counts both bans (a third is permanent); rspamd-ratelimit
			// only its own.
			if !s.Banned || s.Remaining == nil || s.Remaining.Permanent || s.Remaining.Seconds < 3500 || s.Remaining.Seconds > 3600 ||
				len(s.Next) != 2 || s.Next[0] != (next{"other", 3, true, 0, 0}) || s.Next[1] != (next{"rspamd-ratelimit", 2, false, 7200, 600}) {
				t.Fatalf("after two bans: %+v", s)
			}
			out, _, code := e.mj("show", a)
			for _, want := range []string{"  remaining 59m", "  next     jail=other offense=3 length=permanent\n", "  next     jail=rspamd-ratelimit offense=2 length=2h + up to 10m\n"} {
				if code != 0 || !strings.Contains(out, want) {
					t.Errorf("text: exit %d\n%s\nwant %q", code, out, want)
				}
			}
			// An address in ignoreip, or in an ignoreip file, has no next
			// ban anywhere.
			for _, ignored := range []string{"192.0.2.9", "203.0.113.77"} {
				s = show{}
				e.mustJSON(&s, "show", ignored)
				if len(s.Next) != 0 {
					t.Errorf("ignored address %s: %+v", ignored, s)
				}
			}
		})
	}
}

// check prints the warning about a bantime_factor read in its former
// meaning and still accepts the file; the daemon logs it at start and a
// reload answers with it.
func TestFormerFactorWarned(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	src, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(src), "[jail.rspamd-ratelimit]\n", "[jail.rspamd-ratelimit]\nbantime_factor = 3.0\n", 1)
	if err := os.WriteFile(e.config, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	line := strings.Count(text[:strings.Index(text, "bantime_factor")], "\n") + 1
	want := fmt.Sprintf("%s:%d: jail.rspamd-ratelimit.bantime_factor: warning: read in its former meaning", e.config, line)
	out, errs, code, err := runCLI(nil, "check", e.config)
	if err != nil || code != 0 || !strings.Contains(out, want) || !strings.Contains(out, "`bantime_multipliers = [1, 3, 9, 27, 81, 243]`") {
		t.Errorf("check: exit %d, stdout %q, stderr %q; want %q", code, out, errs, want)
	}
	e.startDaemon()
	if log := e.daemonLog(); !strings.Contains(log, "configuration: "+want) {
		t.Errorf("daemon log:\n%s\nwant %q", log, want)
	}
	if out, errs, code := e.mj("reload"); code != 0 || !strings.Contains(out+errs, want) {
		t.Errorf("reload: exit %d, %q %q; want %q", code, out, errs, want)
	}
}
