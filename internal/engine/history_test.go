package engine

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/core"
	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/internal/testutil"
	"github.com/mailjail/mailjail/rules"
)

// twoJails reads one log per jail; b counts every jail's bans when
// overall is written.
func twoJails(overall string) string { return jailPair("", "a", "b") + overall }

// jailPair is two jails x and y banning at the first strike, each reading
// /log/NAME, with defaults added to [defaults]; what follows it goes to y.
func jailPair(defaults, x, y string) string {
	return "[defaults]\nbantime_increment = true\nfilter = \"rspamd-ratelimit\"\nmaxretry = 1\nbantime = \"1h\"\n" + defaults +
		"[jail." + x + "]\nlogpath = [\"/log/" + x + "\"]\n[jail." + y + "]\nlogpath = [\"/log/" + y + "\"]\n"
}

// mustConfig parses and validates src.
func mustConfig(t *testing.T, src string) *config.Config {
	t.Helper()
	cfg, err := config.Parse(strings.NewReader(src), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Global.Timezone = "UTC"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// banIn stages one strike of addr in the jail reading path and commits.
func banIn(t *testing.T, e *Engine, path string, addr netip.Addr, now time.Time) []store.Ban {
	t.Helper()
	e.Stage([]core.Line{{Path: path, Text: rspamdLine(now.Format("2006-01-02 15:04:05"), addr.String()), Read: now}}, now)
	ch, err := e.Commit(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ch.Bans
}

// A ban in jail a makes jail b's ban a second offense only with
// bantime_overalljails, live, after a restart and after a reload.
func TestOverallJailsEscalatesAcrossJails(t *testing.T) {
	ctx := context.Background()
	a := netip.MustParseAddr("198.51.100.44")
	for _, tt := range []struct {
		name    string
		overall string
		want    time.Duration
	}{
		{"own jail only", "", time.Hour},
		{"overalljails", "bantime_overalljails = true\n", 2 * time.Hour},
	} {
		t.Run(tt.name, func(t *testing.T) {
			clk := testutil.NewFakeClock(time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC))
			e, st := newEngine(t, twoJails(tt.overall))
			if bans := banIn(t, e, "/log/a", a, clk.Now()); len(bans) != 1 || bans[0].Jail != "a" {
				t.Fatalf("jail a: %+v", bans)
			}
			clk.Advance(2 * time.Hour)
			if _, err := e.ExpireDue(ctx, clk.Now()); err != nil {
				t.Fatal(err)
			}
			// After a restart (history from the database), and after
			// reloads that change jail a (b kept) or jail b (b fresh), the
			// same.
			restarted, err := New(e.cfg, st, e.log)
			if err != nil {
				t.Fatal(err)
			}
			if err := restore(restarted, clk.Now()); err != nil {
				t.Fatal(err)
			}
			engines := map[string]*Engine{"live": e, "restarted": restarted}
			for name, change := range map[string]string{"a changed": "[jail.a]\nmaxretry = 2\n", "b changed": "[jail.b]\nmaxretry = 2\n"} {
				r, _ := New(e.cfg, st, e.log)
				if err := restore(r, clk.Now()); err != nil {
					t.Fatal(err)
				}
				src := strings.Replace(twoJails(tt.overall), "[jail."+change[6:7]+"]\n", change, 1)
				if _, err := r.Reload(ctx, mustConfig(t, src), clk.Now()); err != nil {
					t.Fatal(err)
				}
				engines["reload, "+name] = r
			}
			for name, eng := range engines {
				if n := eng.jail("b").Policy.Next(rules.KeyOf(a), clk.Now()); n.Duration != tt.want {
					t.Errorf("%s: jail b's next ban %+v, want %v", name, n, tt.want)
				}
			}
			bans := banIn(t, e, "/log/b", a, clk.Now())
			if len(bans) != 1 || bans[0].Until.Sub(bans[0].Since) != tt.want {
				t.Fatalf("jail b: %+v, want %v", bans, tt.want)
			}
		})
	}
}

// A log-only jail's would-be bans in the database never count toward
// escalation: not after a restart, not in the shared history, not in
// what show computes.
func TestLogOnlyBansDoNotEscalate(t *testing.T) {
	ctx := context.Background()
	a := netip.MustParseAddr("198.51.100.45")
	now := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	e, st := newEngine(t, twoJails("bantime_overalljails = true\n"))
	err := st.Update(ctx, func(tx *store.Tx) error {
		for _, b := range []store.Ban{
			{Jail: "a", Prefix: rules.HostPrefix(a), Since: now.Add(-3 * time.Hour), Until: now.Add(-2 * time.Hour), Offense: 1, LogOnly: true},
			{Jail: "b", Prefix: rules.HostPrefix(a), Since: now.Add(-2 * time.Hour), Until: now.Add(-time.Hour), Offense: 1, LogOnly: true},
		} {
			if _, err := tx.AddBan(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := restore(e, now); err != nil {
		t.Fatal(err)
	}
	shared, err := e.loadSharedHistory(now)
	if err != nil || shared.addrs.Count(rules.KeyOf(a), now, time.Hour*24) != 0 {
		t.Fatalf("shared history counts log-only bans: %v", err)
	}
	// Nor as the daemon commits them (the flag is set by the log-only
	// jail when it stages its would-be ban).
	e.recordShared([]store.Ban{{Jail: "a", Prefix: rules.HostPrefix(a), Since: now.Add(-time.Minute), LogOnly: true}}, nil)
	if n := e.jail("b").Policy.Next(rules.KeyOf(a), now); n.Offense != 1 {
		t.Errorf("after a committed would-be ban: %+v", n)
	}
	next, err := NextBans(e.cfg, st, nil, a, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range next {
		if n.Offense != 1 || n.Duration != time.Hour {
			t.Errorf("show: %+v", n)
		}
	}
	for _, name := range []string{"a", "b"} {
		if n := e.jail(name).Policy.Next(rules.KeyOf(a), now); n.Offense != 1 {
			t.Errorf("jail %s after a restart: %+v", name, n)
		}
	}
	if _, err := e.ExpireDue(ctx, now); err != nil { // the would-be bans ended
		t.Fatal(err)
	}
	if bans := banIn(t, e, "/log/b", a, now); len(bans) != 1 || bans[0].Until.Sub(bans[0].Since) != time.Hour || bans[0].Offense != 1 {
		t.Fatalf("ban: %+v", bans)
	}
}

// An account suspended by one account jail is a second offense in
// another only with bantime_overalljails, live and after a restart.
func TestOverallJailsEscalatesAccountsAcrossJails(t *testing.T) {
	ctx := context.Background()
	const user = "m@example.org"
	src := jailPair("key = \"account\"\nban_sources = false\n", "u1", "u2")
	for _, tt := range []struct {
		name, overall   string
		restart, reload bool
		offense         int
	}{
		{"own jail only", "", false, false, 1},
		{"overalljails", "bantime_overalljails = true\n", false, false, 2},
		{"overalljails after a restart", "bantime_overalljails = true\n", true, false, 2},
		{"overalljails after a reload that changes u2", "bantime_overalljails = true\n", false, true, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			clk := testutil.NewFakeClock(t0)
			e, st := newEngine(t, src+tt.overall)
			if ch := userEventsIn(t, e, "/log/u1", clk.Now(), user, "198.51.100.7"); len(ch.Suspended) != 1 || ch.Suspended[0].Jail != "u1" {
				t.Fatalf("u1: %+v", ch.Suspended)
			}
			clk.Advance(2 * time.Hour)
			if _, err := e.ExpireDue(ctx, clk.Now()); err != nil {
				t.Fatal(err)
			}
			if tt.restart {
				var err error
				if e, err = New(e.cfg, st, e.log); err != nil {
					t.Fatal(err)
				}
				if err := restore(e, clk.Now()); err != nil {
					t.Fatal(err)
				}
			}
			if tt.reload {
				changed := strings.Replace(src+tt.overall, "[jail.u2]\n", "[jail.u2]\nfindtime = \"20m\"\n", 1)
				if jc, err := e.Reload(ctx, mustConfig(t, changed), clk.Now()); err != nil || len(jc.Changed) != 1 {
					t.Fatalf("reload: %+v, %v", jc, err)
				}
			}
			ch := userEventsIn(t, e, "/log/u2", clk.Now(), user, "198.51.100.8")
			if len(ch.Suspended) != 1 || ch.Suspended[0].Offense != tt.offense || ch.Suspended[0].Until.Sub(ch.Suspended[0].Since) != time.Duration(tt.offense)*time.Hour {
				t.Fatalf("u2: %+v, want offense %d", ch.Suspended, tt.offense)
			}
		})
	}
}

// NextBans reads the history of the prefix each jail bans with: a
// jail that bans IPv6 clients per /64 counts the /64's bans for every
// address in it; one that bans per address, only the address's.
func TestNextBansPerPrefix(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	e, st := newEngine(t, twoJails("")+"ipv6_prefix = 64\nbantime_factor = 3\n")
	banned := netip.MustParseAddr("2001:db8:1:2::7")
	if bans := banIn(t, e, "/log/b", banned, now.Add(-2*time.Hour)); len(bans) != 1 || bans[0].Prefix.Bits() != 64 {
		t.Fatalf("jail b: %+v", bans)
	}
	if _, err := e.ExpireDue(ctx, now); err != nil {
		t.Fatal(err)
	}
	neighbour := netip.MustParseAddr("2001:db8:1:2::99")
	next, err := NextBans(e.cfg, st, nil, neighbour, now)
	if err != nil {
		t.Fatal(err)
	}
	want := []NextBan{{"a", rules.NextBan{Offense: 1, Duration: time.Hour}}, {"b", rules.NextBan{Offense: 2, Duration: 6 * time.Hour}}}
	if len(next) != 2 || next[0] != want[0] || next[1] != want[1] {
		t.Fatalf("next = %+v, want %+v", next, want)
	}
	// Without a database yet: first bans everywhere.
	if next, err := NextBans(e.cfg, nil, nil, neighbour, now); err != nil || len(next) != 2 || next[1].Offense != 1 {
		t.Fatalf("no database: %+v, %v", next, err)
	}
}

// With overalljails, a jail that bans IPv6 clients per /64 counts the
// bans other jails made of addresses in the /64, live and after a
// restart.
func TestOverallJailsCountsAddressBansInThePrefix(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	e, st := newEngine(t, twoJails("ipv6_prefix = 64\nbantime_overalljails = true\n"))
	if bans := banIn(t, e, "/log/a", netip.MustParseAddr("2001:db8:1:2::7"), now.Add(-2*time.Hour)); len(bans) != 1 || bans[0].Prefix.Bits() != 128 {
		t.Fatalf("jail a: %+v", bans)
	}
	if _, err := e.ExpireDue(ctx, now); err != nil {
		t.Fatal(err)
	}
	restarted, err := New(e.cfg, st, e.log)
	if err != nil {
		t.Fatal(err)
	}
	if err := restore(restarted, now); err != nil {
		t.Fatal(err)
	}
	neighbour := netip.MustParseAddr("2001:db8:1:2::99")
	for name, eng := range map[string]*Engine{"live": e, "restarted": restarted} {
		b := eng.jail("b")
		if n := b.Policy.Next(rules.KeyOf(b.key(neighbour)), now); n.Offense != 2 {
			t.Errorf("%s: jail b's next ban of %v: %+v", name, neighbour, n)
		}
	}
	next, err := NextBans(e.cfg, st, nil, neighbour, now)
	if err != nil || len(next) != 2 || next[0].Offense != 1 || next[1].Offense != 2 {
		t.Errorf("show: %+v, %v", next, err)
	}
	if bans := banIn(t, e, "/log/b", neighbour, now); len(bans) != 1 || bans[0].Prefix.Bits() != 64 || bans[0].Offense != 2 {
		t.Fatalf("jail b: %+v", bans)
	}
}
