package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/testutil"
)

// A daemon-less ban whose map cannot be written at first (its directory
// is in the way) is retried until the map holds it, instead of being left
// out of the map until some later command.
func TestBanWithoutDaemonRetriesTheMapUntilItIsWritten(t *testing.T) {
	e := newEnv(t)
	if _, errs, code := e.mj("ban", "198.51.100.60"); code != 0 {
		t.Fatalf("first ban: exit %d, %s", code, errs)
	}
	// A directory where the map must be: every rewrite fails.
	if err := os.Remove(e.mapf); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(e.mapf, "in-the-way"), 0o755); err != nil {
		t.Fatal(err)
	}
	done := make(chan int, 1)
	go func() {
		_, _, code, _ := e.run("ban", "198.51.100.61")
		done <- code
	}()
	// Once the ban is in the database, clear the way.
	testutil.Eventually(t, 15*time.Second, "the ban in the database", func() bool {
		out, _, _, _ := e.run("list")
		return strings.Contains(out, "198.51.100.61")
	})
	if err := os.RemoveAll(e.mapf); err != nil {
		t.Fatal(err)
	}
	if code := testutil.Receive(t, done, 60*time.Second, "the ban to finish"); code != 0 {
		t.Fatalf("ban exited %d", code)
	}
	if !e.inMap("198.51.100.60") || !e.inMap("198.51.100.61") {
		t.Fatalf("map: %v", e.mapAddrs())
	}
}

// Operator mistakes with ranges: a ban wider than the minimum prefix needs
// --force; show and unban of an address inside a banned range name the
// range; unban --covering lifts it.
func TestRangesTheOperatorBansAndLifts(t *testing.T) {
	for _, daemon := range []bool{false, true} {
		name := "without daemon"
		if daemon {
			name = "with daemon"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			if daemon {
				e.startDaemon()
			}
			if _, errs, code := e.mj("ban", "128.0.0.0/1"); code != 2 || !strings.Contains(errs, "--force") {
				t.Fatalf("ban of a /1: exit %d, %q", code, errs)
			}
			if _, errs, code := e.mj("ban", "::/0"); code != 2 || !strings.Contains(errs, "min_prefix_v6") {
				t.Fatalf("ban of ::/0: exit %d, %q", code, errs)
			}
			if _, errs, code := e.mj("ban", "2001:db8:77::/64"); code != 0 {
				t.Fatalf("ban of a /64: exit %d, %s", code, errs)
			}
			out, _, code := e.mj("show", "2001:db8:77::5")
			if code != 0 || !strings.Contains(out, "2001:db8:77::5: banned") || !strings.Contains(out, "by=2001:db8:77::/64") {
				t.Fatalf("show: exit %d\n%s", code, out)
			}
			if _, errs, code := e.mj("unban", "2001:db8:77::1"); code != 1 || !strings.Contains(errs, "covered by the ban of 2001:db8:77::/64") {
				t.Fatalf("unban of a covered address: exit %d, %q", code, errs)
			}
			if _, errs, code := e.mj("unban", "--covering", "2001:db8:77::1"); code != 0 || e.inMap("2001:db8:77::/64") {
				t.Fatalf("unban --covering: exit %d, %q, map %v", code, errs, e.mapAddrs())
			}
			if _, _, code := e.mj("unban", "--all", "--jail", "nosuch"); code != 2 {
				t.Fatalf("unban --all --jail nosuch: exit %d, want 2 like ban --jail nosuch", code)
			}
			if _, _, code := e.mj("ban", "192.0.2.10", "--for", "15000w"); code != 2 {
				t.Fatalf("ban --for 15000w: exit %d", code)
			}
		})
	}
}

// replay reports rate events in its summary and its JSON, not only in
// its log on stderr. (The captured log's mail is unauthenticated, so it
// is counted per client: a sender counts only for authenticated mail.)
func TestReplayReportsRateEvents(t *testing.T) {
	log, err := filepath.Abs("../../testdata/postfix-3.7.log")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(_ *env, c *testutil.Config) {
		c.Jails = []testutil.Jail{{Name: "sender-rate", LogPath: []string{log},
			Extra: "rate_key = \"client\"\nmode = \"log-only\"\nmessages = { burst = 5, rate = \"5 / 1h\" }\n"}}
	})
	var out struct {
		RateEvents []struct {
			Key, Jail, What string
		} `json:"rate_events"`
	}
	e.mustJSON(&out, "replay", log)
	if len(out.RateEvents) == 0 || out.RateEvents[0].Key != "198.18.5.6" || out.RateEvents[0].What != "messages" {
		t.Fatalf("rate events = %+v", out.RateEvents)
	}
	text, _, code := e.mj("replay", log)
	if code != 0 || !strings.Contains(text, "rate 198.18.5.6 jail=sender-rate messages") || !strings.Contains(text, " rate events in ") {
		t.Fatalf("exit %d:\n%s", code, text)
	}
}
