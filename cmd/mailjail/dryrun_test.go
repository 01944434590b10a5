package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/mailjail/mailjail/internal/control"
	"github.com/mailjail/mailjail/internal/testutil"
)

// dryEnv has the default jail (maxretry 3) and a log-only jail "try" on
// the same log (maxretry 2: it decides first, and its would-be ban does
// not stop the other jail), and a circuit breaker that trips at the 4th
// ban in a minute.
func dryEnv(t *testing.T) *env {
	return newEnv(t, func(e *env, c *testutil.Config) {
		c.Global += "\nbreaker_bans = 3\n"
		c.Jails = append(c.Jails, testutil.Jail{Name: "try", Filter: "rspamd-ratelimit", LogPath: []string{e.log}, MaxRetry: 2, Extra: `mode = "log-only"`})
	})
}

// events appends 3 events of each of 198.51.100.FROM..TO-1 in one write.
func (e *env) events(from, to int) {
	e.t.Helper()
	var b strings.Builder
	for range 3 {
		for i := from; i < to; i++ {
			b.WriteString(testutil.RspamdRatelimit{IP: fmt.Sprintf("198.51.100.%d", i)}.Line())
		}
	}
	if err := e.appendLog(b.String()); err != nil {
		e.t.Fatal(err)
	}
}

func addrsOf(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("198.51.100.%d", i))
	}
	return out
}

// A log-only jail beside a real one, and the circuit breaker, through the
// CLI: with a daemon, then without one (state.go), then with one again.
func TestLogOnlyAndBreakerCLI(t *testing.T) {
	t.Parallel()
	e := dryEnv(t)
	d := e.startDaemon()
	e.events(1, 6)
	var st control.Status
	// The daemon's map writer runs in the background: wait for it too.
	e.waitFor("5 would-be bans, a trip and the map written", func() bool {
		e.mustJSON(&st, "status")
		for _, j := range st.Jails {
			if j.Name == "try" {
				return j.WouldBans == 5 && st.Breaker != nil && st.Breaker.Held == 2 && len(e.mapAddrs()) == 3
			}
		}
		return false
	})
	for _, j := range st.Jails {
		if want := map[string]string{"try": "log-only", "rspamd-ratelimit": "ban"}[j.Name]; want != "" && j.Mode != want {
			t.Errorf("jail %s: mode %q, want %q", j.Name, j.Mode, want)
		}
	}
	if st.MapEntries != 3 || !slices.Equal(sorted(e.mapAddrs()), addrsOf(1, 4)) {
		t.Errorf("map %v (%d entries in status): want the 3 bans before the trip", e.mapAddrs(), st.MapEntries)
	}
	var would struct{ Bans []control.Ban }
	e.mustJSON(&would, "list", "--would-ban")
	var got []string
	for _, b := range would.Bans {
		if b.Jail != "try" || !b.LogOnly {
			t.Errorf("would-be ban %+v", b)
		}
		got = append(got, b.Addr)
	}
	if !slices.Equal(sorted(got), addrsOf(1, 6)) || !slices.Equal(sorted(e.listed()), addrsOf(1, 6)) {
		t.Errorf("list --would-ban %v, list %v: want the 5 addresses in each", got, e.listed())
	}
	out, _, _ := e.mj("list", "--would-ban")
	if !strings.Contains(out, "198.51.100.5  try") {
		t.Errorf("list --would-ban:\n%s", out)
	}
	if out, _, _ := e.mj("show", "198.51.100.5"); !strings.Contains(out, "198.51.100.5: banned\n") || !strings.Contains(out, "  would-ban jail=try ") ||
		!strings.Contains(out, "  active   jail=rspamd-ratelimit ") {
		t.Errorf("show:\n%s", out)
	}
	out, _, _ = e.mj("status")
	for _, want := range []string{"HELD: circuit breaker tripped at ", "4 new bans within 1m, more than breaker_bans = 3; 2 bans held, run mailjail resume",
		"jail try (filter rspamd-ratelimit, counts addresses, mode log-only): 5 active bans, 5 bans total, 5 would-be bans (not enforced), 0 addresses with strikes, 10 strikes stored"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}

	// Stopped, the database still says tripped; resume without a daemon
	// gives the map the held bans.
	d.stop()
	e.mustJSON(&st, "status")
	if st.Running || st.Breaker == nil || st.Breaker.Held != 2 {
		t.Fatalf("status without a daemon: running %v, breaker %+v", st.Running, st.Breaker)
	}
	var res struct {
		OK   bool
		Bans []control.Ban
	}
	e.mustJSON(&res, "resume")
	if !res.OK || len(res.Bans) != 2 || !slices.Equal(sorted(e.mapAddrs()), addrsOf(1, 6)) {
		t.Fatalf("resume without a daemon: %+v, map %v", res, e.mapAddrs())
	}
	if _, errs, code := e.mj("resume"); code != 1 || !strings.Contains(errs, "not tripped") {
		t.Errorf("a second resume: exit %d, %q", code, errs)
	}

	// Again with a daemon: it trips on 4 new bans and resumes by the socket.
	e.startDaemon()
	e.events(10, 14)
	e.waitFor("a second trip", func() bool {
		e.mustJSON(&st, "status")
		return st.Breaker != nil && st.Breaker.Held == 1
	})
	out, errs, code := e.mj("resume")
	if code != 0 || !strings.Contains(out, "circuit breaker resumed: 1 held ban given to the targets") {
		t.Fatalf("resume: exit %d, %q %q", code, out, errs)
	}
	if !slices.Equal(sorted(e.mapAddrs()), sorted(append(addrsOf(1, 6), addrsOf(10, 14)...))) {
		t.Errorf("map after resume: %v", e.mapAddrs())
	}
	if !strings.Contains(e.daemonLog(), "circuit breaker resumed") {
		t.Errorf("the daemon did not log the resume:\n%s", e.daemonLog())
	}
}
