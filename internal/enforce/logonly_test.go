package enforce

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/core"
	"github.com/mailjail/mailjail/internal/engine"
	"github.com/mailjail/mailjail/internal/outbox"
	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/internal/testutil"
)

// logOnlyConfig has a log-only address jail with a command, a webhook
// and alerts, and a log-only account jail, on the same rspamd log.
const logOnlyConfig = "[global]\ntimezone = \"UTC\"\n" + alertSection + `[jail.try]
filter = "rspamd-ratelimit"
logpath = ["/var/log/rspamd/rspamd.log"]
mode = "log-only"
maxretry = 3
ban_action = ["/usr/bin/true", "<ip>"]
unban_action = ["/usr/bin/true", "<ip>"]
webhooks = ["soc"]
[jail.tryacct]
filter = "rspamd-ratelimit"
key = "account"
logpath = ["/var/log/rspamd/rspamd.log"]
mode = "log-only"
maxretry = 3
webhooks = ["soc"]
[webhook.soc]
url = "https://soc.example.org/hook"
`

// alertSection turns alerts on (queued only: nothing is sent).
const alertSection = "[alert]\nsmtp = \"127.0.0.1:25\"\nto = [\"postmaster@example.org\"]\n"

// rspamdLines are n ip-bucket events of ip, and n user-bucket events of
// user from ip, one second apart from at.
func rspamdLines(at time.Time, ip, user string, n int) []core.Line {
	var out []core.Line
	for i := range n {
		for _, l := range []testutil.RspamdRatelimit{{At: at, IP: ip, Bucket: "ip"}, {At: at, IP: ip, User: user, Bucket: "user", From: user}} {
			if l.User == "" && user != "" || l.User != "" && user == "" {
				continue
			}
			out = append(out, core.Line{Path: "/var/log/rspamd/rspamd.log", Text: []byte(strings.TrimSuffix(l.Line(), "\n")), Read: at})
		}
		at = at.Add(time.Duration(i+1) * time.Second)
	}
	return out
}

// stageApply stages lines at now, commits them and puts the change into
// force on o's targets.
func stageApply(t *testing.T, o *Ops, lines []core.Line, now time.Time) engine.Change {
	t.Helper()
	o.Eng.Stage(lines, now)
	ch, err := o.Eng.Commit(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Enf.ApplyNow(context.Background(), ch); err != nil {
		t.Fatal(err)
	}
	return ch
}

// A log-only jail counts its events, records strikes and its would-be
// bans (one per address however many lines follow), alerts them as
// "would ban", and no target (the rspamd map, the account map, a fake
// one) is given anything, nor is a command or webhook planned.
func TestLogOnlyJailTouchesNoTarget(t *testing.T) {
	cfg := logOnlyConfig
	o, st, fake := newOps(t, cfg)
	dir := t.TempDir()
	ipMap, acctMap := NewMapTarget(filepath.Join(dir, "ip.map")), NewAccountMapTarget(filepath.Join(dir, "accounts.map"))
	o.Enf = New([]Target{fake, ipMap, acctMap}, o.Eng, nil, Options{Clock: o.Clock, Log: quiet})
	ctx := context.Background()
	now := o.Clock.Now()
	lines := append(rspamdLines(now, "198.51.100.7", "", 10), rspamdLines(now, "198.51.100.9", "mallory@example.org", 5)...)
	stageApply(t, o, lines, now.Add(time.Minute))
	counts, err := st.CountsByJail()
	if err != nil {
		t.Fatal(err)
	}
	if c := counts["try"]; c.Strikes != 3 || c.ActiveBans != 1 || c.WouldBans != 1 {
		t.Errorf("jail try: %+v; want 3 strikes (the rest is the would-be ban working), 1 would-be ban", c)
	}
	if c := counts["tryacct"]; c.Strikes != 3 || c.WouldBans != 1 {
		t.Errorf("jail tryacct: %+v; want 3 strikes and its source's would-be ban", c)
	}
	bans, _ := st.ActiveBans()
	for _, b := range bans {
		if !b.LogOnly {
			t.Errorf("ban %s of %s is not log-only", b.Prefix, b.Jail)
		}
	}
	sp, _ := st.ActiveSuspensions()
	if len(sp) != 1 || sp[0].Enforced {
		t.Errorf("suspensions %+v: want mallory's, not enforced", sp)
	}
	if n := len(fake.synced); n != 1 || len(fake.synced[0]) != 0 {
		t.Errorf("fake target synced %v: want one sync of nothing", fake.synced)
	}
	for _, p := range []string{filepath.Join(dir, "ip.map"), filepath.Join(dir, "accounts.map")} {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(data), "198.51.100") || strings.Contains(string(data), "mallory") {
			t.Errorf("%s holds a would-be ban:\n%s", p, data)
		}
	}
	items, err := st.PendingOutbox(100)
	if err != nil {
		t.Fatal(err)
	}
	var alerts []string
	for _, it := range items {
		if it.Kind != outbox.KindAlert {
			t.Errorf("a log-only jail planned a %s: %s", it.Kind, it.Payload)
			continue
		}
		var a outbox.Alert
		if err := json.Unmarshal(it.Payload, &a); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(a.Reason, `mode = "log-only"`) {
			t.Errorf("alert reason %q does not say log-only", a.Reason)
		}
		alerts = append(alerts, a.Event+" "+a.Jail+" "+a.Addr)
	}
	if got := strings.Join(alerts, ", "); got != "would ban try 198.51.100.7, would suspend tryacct mallory@example.org" {
		t.Errorf("alerts: %s", got)
	}
	// Unbanning the would-be ban plans no unban command either.
	if _, err := o.Unban(ctx, UnbanRequest{Prefixes: prefixes("198.51.100.7/32")}); err != nil {
		t.Fatal(err)
	}
	if items, _ := st.PendingOutbox(100); len(items) != len(alerts) {
		t.Errorf("the unban of a would-be ban planned %d items", len(items)-len(alerts))
	}
}

// After a restart a log-only jail still treats its would-be ban's
// address as banned, and another jail may ban the address for real.
func TestWouldBanSurvivesRestartAndStopsOnlyItsJail(t *testing.T) {
	cfg := logOnlyConfig + `[jail.real]
filter = "rspamd-ratelimit"
logpath = ["/var/log/rspamd/rspamd.log"]
maxretry = 6
`
	o, st, _ := newOps(t, cfg)
	ctx := context.Background()
	now := o.Clock.Now()
	o.Eng.Stage(rspamdLines(now, "198.51.100.7", "", 4), now.Add(10*time.Second))
	if _, err := o.Eng.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(o.Cfg, st, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.RestoreBans(now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := eng.RestoreStrikes(now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	eng.Stage(rspamdLines(now.Add(time.Minute), "198.51.100.7", "", 4), now.Add(2*time.Minute))
	ch, err := eng.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ch.Bans) != 1 || ch.Bans[0].Jail != "real" || ch.Bans[0].LogOnly {
		t.Fatalf("bans after the restart %+v: want one real ban by jail real, no second would-be ban", ch.Bans)
	}
	var given []store.Ban
	for _, b := range eng.ActiveBans() {
		if Given(b, eng.HeldFrom()) {
			given = append(given, b)
		}
	}
	if len(given) != 1 || given[0].Jail != "real" {
		t.Errorf("given to targets: %+v", given)
	}
}

// A log-only account jail's would-be suspension stops only its own jail:
// a real account jail on the same log still suspends the account, and
// only that suspension reaches the account map.
func TestWouldSuspensionStopsOnlyItsJail(t *testing.T) {
	cfg := logOnlyConfig + `[jail.acct]
filter = "rspamd-ratelimit"
key = "account"
logpath = ["/var/log/rspamd/rspamd.log"]
maxretry = 5
`
	o, st, _ := newOps(t, cfg)
	path := filepath.Join(t.TempDir(), "accounts.map")
	acctMap := NewAccountMapTarget(path)
	o.Enf = New([]Target{acctMap}, o.Eng, nil, Options{Clock: o.Clock, Log: quiet})
	now := o.Clock.Now()
	// The would-be suspension is committed before the events that
	// suspend the account for real.
	for k := range 2 {
		at := now.Add(time.Duration(k) * time.Minute)
		stageApply(t, o, rspamdLines(at, "198.51.100.9", "mallory@example.org", 3), at.Add(30*time.Second))
	}
	sp, _ := st.ActiveSuspensions()
	var got []string
	for _, s := range sp {
		got = append(got, fmt.Sprintf("%s enforced=%v", s.Jail, s.Enforced))
	}
	if strings.Join(got, ", ") != "acct enforced=true, tryacct enforced=false" {
		t.Errorf("suspensions: %v", got)
	}
	if data, _ := os.ReadFile(path); !strings.Contains(string(data), "mallory@example.org # until") {
		t.Errorf("account map:\n%s", data)
	}
}
