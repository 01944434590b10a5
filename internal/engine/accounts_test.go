package engine

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/core"
	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/internal/testutil"
)

const accountJail = `
[global]
ignoreip = ["127.0.0.0/8", "192.0.2.80"]   # the webmail host

[jail.acct]
filter = "rspamd-ratelimit"
key = "account"
logpath = ["/var/log/rspamd/rspamd.log"]
maxretry = 4
findtime = "10m"
bantime = "1h"
`

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// userEvents stages one rspamd user-bucket event per client, in order,
// one second apart from start, and commits them.
func userEvents(t *testing.T, e *Engine, start time.Time, user string, clients ...string) Change {
	t.Helper()
	return userEventsIn(t, e, "/var/log/rspamd/rspamd.log", start, user, clients...)
}

// userEventsIn is userEvents in the log at path.
func userEventsIn(t *testing.T, e *Engine, path string, start time.Time, user string, clients ...string) Change {
	t.Helper()
	var lines []core.Line
	at := start
	for _, c := range clients {
		l := testutil.RspamdRatelimit{At: at, IP: c, User: user, Bucket: "user", From: user}.Line()
		lines = append(lines, core.Line{Path: path, Text: []byte(strings.TrimSuffix(l, "\n")), Read: at})
		at = at.Add(time.Second)
	}
	e.Stage(lines, at)
	ch, err := e.Commit(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func TestAccountSuspendedAndSourcesBanned(t *testing.T) {
	tests := []struct {
		name, extra   string
		enforced      bool
		wantBans      string
		wantSuspended bool
	}{
		{"every response", "", true, "198.51.100.7 198.51.100.8", true},
		{"suspend off", "suspend = false", false, "198.51.100.7 198.51.100.8", true},
		{"ban_sources off", "ban_sources = false", true, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, st := newEngine(t, accountJail+tt.extra)
			// Two attacker addresses and the webmail host (ignoreip).
			ch := userEvents(t, e, t0, "mallory@Example.ORG", "198.51.100.7", "192.0.2.80", "198.51.100.8")
			if len(ch.Suspended) != 0 || len(ch.Bans) != 0 {
				t.Fatalf("3 strikes of 4 acted: %+v", ch)
			}
			ch = userEvents(t, e, t0.Add(time.Minute), "mallory@example.org", "198.51.100.7")
			if len(ch.Suspended) != 1 {
				t.Fatalf("suspended %+v", ch.Suspended)
			}
			s := ch.Suspended[0]
			if s.Account != "mallory@example.org" || s.Enforced != tt.enforced || s.Strikes != 4 || !s.Until.Equal(t0.Add(time.Minute+time.Second+time.Hour)) {
				t.Errorf("suspension %+v", s)
			}
			want := []store.Source{{Addr: netip.MustParseAddr("198.51.100.7"), Count: 2}, {Addr: netip.MustParseAddr("192.0.2.80"), Count: 1}, {Addr: netip.MustParseAddr("198.51.100.8"), Count: 1}}
			if fmt.Sprint(s.Sources) != fmt.Sprint(want) {
				t.Errorf("sources %v, want %v", s.Sources, want)
			}
			if got := addrs(ch.Bans); got != tt.wantBans {
				t.Errorf("banned %q, want %q (the webmail host never)", got, tt.wantBans)
			}
			active, _ := st.ActiveSuspensions()
			if len(active) != 1 || len(e.ActiveSuspensions()) != 1 {
				t.Errorf("stored %v, cached %v", active, e.ActiveSuspensions())
			}
			// Further events of a suspended account are the suspension working.
			if ch := userEvents(t, e, t0.Add(2*time.Minute), "mallory@example.org", "198.51.100.9", "198.51.100.9", "198.51.100.9", "198.51.100.9"); !ch.Empty() {
				t.Errorf("a suspended account struck again: %+v", ch)
			}
		})
	}
}

func TestAccountJailCountsAccountsNotAddresses(t *testing.T) {
	e, _ := newEngine(t, accountJail)
	// Four accounts behind the webmail host, three events each: no one is
	// over, and the shared address is never banned.
	for _, u := range []string{"a@example.org", "b@example.org", "c@example.org", "d@example.org"} {
		if ch := userEvents(t, e, t0, u, "192.0.2.80", "192.0.2.80", "192.0.2.80"); !ch.Empty() {
			t.Fatalf("%s: %+v", u, ch)
		}
	}
	// An event without a login (an ip bucket, or no user: field) is no
	// account's strike; nor is one in another bucket.
	line := testutil.RspamdRatelimit{At: t0, IP: "198.51.100.7", Bucket: "user", From: "x, user: a@example.org"}.Line()
	e.Stage([]core.Line{{Path: "/var/log/rspamd/rspamd.log", Text: []byte(strings.TrimSuffix(line, "\n")), Read: t0}}, t0)
	line = testutil.RspamdRatelimit{At: t0, IP: "198.51.100.7", Bucket: "ip", User: "a@example.org"}.Line()
	e.Stage([]core.Line{{Path: "/var/log/rspamd/rspamd.log", Text: []byte(strings.TrimSuffix(line, "\n")), Read: t0}}, t0)
	if ch, _ := e.Commit(context.Background()); !ch.Empty() {
		t.Fatalf("a line without the login, or of another bucket, acted: %+v", ch)
	}
	if e.Stats().NoAccount != 1 || e.Stats().OtherBucket != 1 {
		t.Errorf("stats %+v", e.Stats())
	}
}

func TestSuspensionSurvivesRestartAndEscalates(t *testing.T) {
	e, st := newEngine(t, accountJail)
	userEvents(t, e, t0, "m@example.org", "198.51.100.7", "198.51.100.7", "198.51.100.7")
	// A restart keeps the three strikes: one more suspends.
	e2, err := New(e.cfg, st, e.log)
	if err != nil {
		t.Fatal(err)
	}
	if err := e2.RestoreBans(t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	ch := userEvents(t, e2, t0.Add(time.Minute), "m@example.org", "198.51.100.8")
	if len(ch.Suspended) != 1 || ch.Suspended[0].Offense != 1 || len(ch.Suspended[0].Sources) != 2 {
		t.Fatalf("after a restart: %+v", ch.Suspended)
	}
	// A second restart keeps the suspension in force; it ends after its hour.
	e3, _ := New(e.cfg, st, e.log)
	if err := e3.RestoreBans(t0.Add(2 * time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got := e3.ActiveSuspensions(); len(got) != 1 || got[0].Account != "m@example.org" {
		t.Fatalf("restored %+v", got)
	}
	end := ch.Suspended[0].Until
	if next := e3.NextExpiry(); !next.Equal(end) {
		t.Errorf("next expiry %v, want the suspension's end %v", next, end)
	}
	exp, err := e3.ExpireDue(context.Background(), end)
	if err != nil || len(exp.Released) != 1 || exp.Released[0].LiftedBy != "expired" || len(e3.ActiveSuspensions()) != 0 {
		t.Fatalf("expiry: %+v, %v", exp, err)
	}
	// Offense 2 within the lookback: twice as long.
	ch = userEvents(t, e3, end.Add(time.Minute), "m@example.org", "198.51.100.9", "198.51.100.9", "198.51.100.9", "198.51.100.9")
	if len(ch.Suspended) != 1 || ch.Suspended[0].Offense != 2 || ch.Suspended[0].Until.Sub(ch.Suspended[0].Since) != 2*time.Hour {
		t.Fatalf("second offense: %+v", ch.Suspended)
	}
}

func TestManualSuspendAndRelease(t *testing.T) {
	e, st := newEngine(t, accountJail)
	ctx := context.Background()
	userEvents(t, e, t0, "m@example.org", "198.51.100.7", "198.51.100.7")
	ch, err := e.Suspend(ctx, "m@example.org", "", 0, "by hand", t0)
	if err != nil || len(ch.Suspended) != 1 || !ch.Suspended[0].Permanent() || ch.Suspended[0].Jail != ManualJail {
		t.Fatalf("suspend: %+v, %v", ch, err)
	}
	if _, err := e.Release(ctx, "nobody@example.org", "", t0, "cli"); err == nil {
		t.Error("released an account that was not suspended")
	}
	ch, err = e.Release(ctx, "m@example.org", "", t0.Add(time.Minute), "cli")
	if err != nil || len(ch.Released) != 1 || len(e.ActiveSuspensions()) != 0 {
		t.Fatalf("release: %+v, %v", ch, err)
	}
	// Release clears the strikes: it starts from zero.
	if strikes, _ := st.RecentAccountStrikes("m@example.org", 10); len(strikes) != 0 {
		t.Errorf("strikes kept: %v", strikes)
	}
	if ch := userEvents(t, e, t0.Add(2*time.Minute), "m@example.org", "198.51.100.7", "198.51.100.7", "198.51.100.7"); len(ch.Suspended) != 0 {
		t.Errorf("suspended on old strikes: %+v", ch)
	}
}

func TestAllowedAccountsAreNeverSuspended(t *testing.T) {
	e, _ := newEngine(t, strings.Replace(accountJail, `ignoreip = [`, `allow_senders = ["ceo@example.org"]
ignoreip = [`, 1))
	ctx := context.Background()
	if _, err := e.AllowAdd(ctx, "partner.example", "reseller", t0); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"ceo@example.org", "x@partner.example"} {
		if ch := userEvents(t, e, t0, u, "198.51.100.7", "198.51.100.7", "198.51.100.7", "198.51.100.7", "198.51.100.7"); !ch.Empty() {
			t.Errorf("%s (allowed) acted: %+v", u, ch)
		}
	}
	if removed, err := e.AllowDel(ctx, "partner.example"); err != nil || !removed {
		t.Fatalf("del: %v %v", removed, err)
	}
	if ch := userEvents(t, e, t0.Add(time.Minute), "x@partner.example", "198.51.100.7", "198.51.100.7", "198.51.100.7", "198.51.100.7"); len(ch.Suspended) != 1 {
		t.Errorf("no longer allowed, not suspended: %+v", ch)
	}
}

// The provider policy (../shared/references/kolab-ratelimit-policy.txt):
// per account, 10 messages or 250 recipients in the last 60 minutes;
// over: deferred (here: a rate event); at twice that: suspended.
const policyJail = `
[jail.policy]
rate_key = "sasl_username"
logpath = ["/var/log/mail.log"]
accounting = "window"
window = "60m"
max_messages = 10
max_recipients = 250
suspend_factor = 2
mode = "suspend"
maxretry = 100
bantime = "1d"
`

func TestProviderPolicy(t *testing.T) {
	type msg struct {
		min   int // minutes after t0
		user  string
		rcpts int
	}
	repeat := func(n, from int, user string, rcpts int) []msg {
		var out []msg
		for i := range n {
			out = append(out, msg{from + i, user, rcpts})
		}
		return out
	}
	tests := []struct {
		name       string
		extra      string
		msgs       []msg
		wantEvents int // rate events of the account
		wantSusp   bool
	}{
		{"ten messages are within the limit", "", repeat(10, 0, "a@example.org", 1), 0, false},
		{"the eleventh is over", "", repeat(11, 0, "a@example.org", 1), 1, false},
		{"messages slide out after 60 minutes", "", append(repeat(10, 0, "a@example.org", 1), repeat(10, 61, "a@example.org", 1)...), 0, false},
		{"twice the limit suspends", "", repeat(21, 0, "a@example.org", 1), 11, true},
		{"recipients count too", "", []msg{{0, "a@example.org", 200}, {1, "a@example.org", 60}, {2, "a@example.org", 1}}, 1, false},
		// 250, then 249 (over: 250 already sent), then 2 (over again, 501 in the hour: suspended).
		{"recipients at twice the limit suspend", "", []msg{{0, "a@example.org", 250}, {1, "a@example.org", 249}, {2, "a@example.org", 2}}, 2, true},
		{"an allowed sender is never limited", `
[global]
allow_senders = ["example.org"]`, repeat(30, 0, "a@example.org", 1), 0, false},
		{"old accounts are not suspended", `new_accounts_within = "1h"`, append(repeat(1, 0, "a@example.org", 1), repeat(25, 120, "a@example.org", 1)...), 15, false},
		{"new accounts are", `new_accounts_within = "1d"`, append(repeat(1, 0, "a@example.org", 1), repeat(25, 120, "a@example.org", 1)...), 15, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			toml := policyJail + tt.extra
			if strings.HasPrefix(strings.TrimSpace(tt.extra), "[global]") {
				toml = tt.extra + "\n" + policyJail
			}
			e, st := newEngine(t, toml)
			suspended := false
			for i, m := range tt.msgs {
				at := t0.Add(time.Duration(m.min) * time.Minute)
				e.Stage(postfixMessage(at, fmt.Sprintf("Q%05dX", i), "198.51.100.7", m.user, m.user, m.rcpts), at)
				ch, err := e.Commit(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				suspended = suspended || len(ch.Suspended) > 0
			}
			evs, _ := st.RateEvents("a@example.org", 1000)
			if len(evs) != tt.wantEvents || suspended != tt.wantSusp {
				t.Errorf("%d rate events, suspended %v; want %d, %v", len(evs), suspended, tt.wantEvents, tt.wantSusp)
			}
		})
	}
}

func TestSenderKeyCountsOnlyAuthenticatedMail(t *testing.T) {
	e, st := newEngine(t, `
[jail.senders]
rate_key = "sender"
logpath = ["/var/log/mail.log"]
accounting = "window"
max_messages = 2
`)
	for i := range 5 {
		at := t0.Add(time.Duration(i) * time.Minute)
		// A stranger on port 25 writing a real user's address as sender.
		e.Stage(postfixMessage(at, fmt.Sprintf("Q%05dX", i), "203.0.113.9", "", "Boss@Example.org", 1), at)
		if _, err := e.Commit(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if evs, _ := st.RateEvents("boss@example.org", 10); len(evs) != 0 {
		t.Fatalf("unauthenticated senders counted: %v", evs)
	}
	for i := range 3 {
		at := t0.Add(time.Duration(10+i) * time.Minute)
		e.Stage(postfixMessage(at, fmt.Sprintf("R%05dX", i), "198.51.100.7", "boss", "<Boss@Example.org>", 1), at)
		if _, err := e.Commit(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if evs, _ := st.RateEvents("boss@example.org", 10); len(evs) != 1 || len(e.ActiveSuspensions()) != 0 {
		t.Fatalf("authenticated, normalised sender: %v; suspensions %v", evs, e.ActiveSuspensions())
	}
}

func TestAllowedAccountsAreReleasedAtStart(t *testing.T) {
	e, st := newEngine(t, accountJail)
	ctx := context.Background()
	userEvents(t, e, t0, "vip@example.org", "198.51.100.7", "198.51.100.7", "198.51.100.7", "198.51.100.7")
	if _, err := e.Suspend(ctx, "boss@example.org", "", 0, "by hand", t0); err != nil {
		t.Fatal(err)
	}
	e2, _ := New(e.cfg, st, e.log)
	if _, err := e2.AllowAdd(ctx, "example.org", "", t0); err != nil {
		t.Fatal(err)
	}
	if err := e2.RestoreBans(t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	ch, err := e2.ReleaseAllowed(ctx, t0.Add(time.Minute))
	if err != nil || len(ch.Released) != 1 || ch.Released[0].Account != "vip@example.org" || ch.Released[0].LiftedBy != "allow list" {
		t.Fatalf("released %+v, %v", ch.Released, err)
	}
	if got := e2.ActiveSuspensions(); len(got) != 1 || got[0].Account != "boss@example.org" {
		t.Errorf("left %+v: a manual suspension stays", got)
	}
}
