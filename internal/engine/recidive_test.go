package engine

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/core"
	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/internal/testutil"
	"github.com/mailjail/mailjail/mapfile"
)

// logJails are three log jails that ban at the first event, each on
// its own log, so that one address can be banned in several jails.
const logJails = `
[filter.f]
failregex = ['^fail <HOST>$']
[jail.a]
filter = "f"
logpath = ["/a.log"]
maxretry = 1
bantime = "1m"
[jail.b]
filter = "f"
logpath = ["/b.log"]
maxretry = 1
bantime = "1m"
[jail.c]
filter = "f"
logpath = ["/c.log"]
maxretry = 1
bantime = "1m"
`

// event is one line "fail IP" of a log, read at.
type event struct {
	at       time.Duration // after t0
	log, ip  string
	restarts bool // restart the engine (on the same database) before it
}

// play runs the events through *e (with ExpireDue, Stage and Commit per
// event, at the event's time) and returns every ban made, restarting as
// told: *e is then the engine after the restart.
func play(t *testing.T, ep **Engine, st *store.Store, events []event) []store.Ban {
	t.Helper()
	ctx := context.Background()
	var bans []store.Ban
	for _, ev := range events {
		now := t0.Add(ev.at)
		if ev.restarts {
			e, err := New((*ep).cfg, st, (*ep).log)
			if err != nil {
				t.Fatal(err)
			}
			if err := restore(e, now); err != nil {
				t.Fatal(err)
			}
			*ep = e
		}
		e := *ep
		if _, err := e.ExpireDue(ctx, now); err != nil {
			t.Fatal(err)
		}
		e.Stage([]core.Line{{Path: ev.log, Text: []byte("fail " + ev.ip), Read: now}}, now)
		ch, err := e.Commit(ctx)
		if err != nil {
			t.Fatal(err)
		}
		bans = append(bans, ch.Bans...)
	}
	return bans
}

// bansOf lists the bans of one jail as "PREFIX" strings, in order.
func bansOf(bans []store.Ban, jail string) []string {
	var out []string
	for _, b := range bans {
		if b.Jail == jail {
			out = append(out, b.Prefix.String())
		}
	}
	return out
}

// A ban covers its own jail's events (the ban working), not another
// jail's: the same address failing elsewhere is banned there too.
// Manual bans cover every jail.
func TestBannedAddressStrikesInOtherJails(t *testing.T) {
	e, st := newEngine(t, logJails)
	got := play(t, &e, st, []event{
		{at: 0, log: "/a.log", ip: "198.51.100.1"},
		{at: time.Second, log: "/a.log", ip: "198.51.100.1"},     // banned in a: ignored
		{at: 2 * time.Second, log: "/b.log", ip: "198.51.100.1"}, // not banned in b: banned there
	})
	if a, b := bansOf(got, "a"), bansOf(got, "b"); len(a) != 1 || len(b) != 1 {
		t.Fatalf("bans in a %v, in b %v: want one each", a, b)
	}
	if s := e.Stats(); s.Strikes != 2 {
		t.Errorf("%d strikes, want 2 (the second event in a is the ban working)", s.Strikes)
	}
	if _, err := e.Ban(context.Background(), netip.MustParsePrefix("203.0.113.0/24"), "", time.Hour, "", t0); err != nil {
		t.Fatal(err)
	}
	if got := play(t, &e, st, []event{{at: 3 * time.Second, log: "/c.log", ip: "203.0.113.9"}}); len(got) != 0 {
		t.Errorf("an address inside a manual ban was banned in c: %v", got)
	}
}

const recidive = logJails + `
[jail.recidive]
maxretry = 3
findtime = "1h"
`

// Three bans of one address in one hour, in any jails, are a recidive
// ban committed with the third; two are not, nor three spread over more
// than findtime; a restart between them keeps the count.
func TestRecidive(t *testing.T) {
	const ip = "198.51.100.7"
	tests := []struct {
		name   string
		events []event
		want   int // recidive bans
	}{
		{"three jails at once", []event{{0, "/a.log", ip, false}, {time.Second, "/b.log", ip, false}, {2 * time.Second, "/c.log", ip, false}}, 1},
		{"one jail three times", []event{{0, "/a.log", ip, false}, {2 * time.Minute, "/a.log", ip, false}, {4 * time.Minute, "/a.log", ip, false}}, 1},
		{"two bans", []event{{0, "/a.log", ip, false}, {time.Second, "/b.log", ip, false}}, 0},
		{"outside findtime", []event{{0, "/a.log", ip, false}, {40 * time.Minute, "/b.log", ip, false}, {61 * time.Minute, "/c.log", ip, false}}, 0},
		{"restart in between", []event{{0, "/a.log", ip, false}, {time.Second, "/b.log", ip, true}, {2 * time.Minute, "/c.log", ip, true}}, 1},
		{"restart after an unban", []event{{0, "/a.log", ip, false}, {time.Second, "/b.log", ip, false}, {-1, "", "unban", false}, {2 * time.Minute, "/c.log", ip, true}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, st := newEngine(t, recidive)
			var got []store.Ban
			for _, ev := range tt.events {
				if ev.ip == "unban" {
					if _, err := e.Unban(context.Background(), netip.MustParsePrefix(ip+"/32"), "", t0.Add(2*time.Second), "test"); err != nil {
						t.Fatal(err)
					}
					continue
				}
				bans := play(t, &e, st, []event{ev})
				got = append(got, bans...)
				if r := bansOf(bans, "recidive"); len(r) > 0 && len(bans) != 2 {
					t.Errorf("the recidive ban came without the ban that caused it: %v", bans)
				}
			}
			r := bansOf(got, "recidive")
			if len(r) != tt.want {
				t.Fatalf("recidive bans %v, want %d", r, tt.want)
			}
			if tt.want == 0 {
				return
			}
			b := activeBanOf(t, st, "recidive")
			if b.Prefix.String() != ip+"/32" || b.Until.Sub(b.Since) != 7*24*time.Hour || !strings.HasPrefix(b.Reason, "3 bans in 1h") {
				t.Errorf("recidive ban %+v: want a week, 3 bans in 1h", b)
			}
		})
	}
}

// activeBanOf is the one active ban of jail in the database.
func activeBanOf(t *testing.T, st *store.Store, jail string) store.Ban {
	t.Helper()
	active, err := st.ActiveBans()
	if err != nil {
		t.Fatal(err)
	}
	var out []store.Ban
	for _, b := range active {
		if b.Jail == jail {
			out = append(out, b)
		}
	}
	if len(out) != 1 {
		t.Fatalf("active bans of %s: %v, want one", jail, out)
	}
	return out[0]
}

// A recidive ban covers every jail: the address's events in other jails
// are that ban working, and its own bans do not count again.
func TestRecidiveBanCoversEveryJail(t *testing.T) {
	e, st := newEngine(t, recidive)
	const ip = "198.51.100.8"
	play(t, &e, st, []event{{0, "/a.log", ip, false}, {0, "/b.log", ip, false}, {0, "/c.log", ip, false}})
	if got := play(t, &e, st, []event{{5 * time.Minute, "/a.log", ip, false}}); len(got) != 0 {
		t.Fatalf("banned again while the recidive ban holds: %v", got)
	}
}

const network = logJails + `
[jail.net]
filter = "network"
maxretry = 3
findtime = "1h"
ipv6_prefix = 48
ignoreip = ["198.51.100.200"]
`

// N distinct banned addresses of one /24 (or, with ipv6_prefix, of one
// /48) are one ban of the network, committed with the N-th; the same
// address banned again is not another; none where an ignoreip address is
// inside; a restart keeps the count.
func TestNetworkBans(t *testing.T) {
	tests := []struct {
		name   string
		events []event
		want   []string
	}{
		{"three of a /24", []event{{0, "/a.log", "203.0.113.1", false}, {time.Second, "/b.log", "203.0.113.2", false}, {time.Minute, "/a.log", "203.0.113.3", false}}, []string{"203.0.113.0/24"}},
		{"one address three times", []event{{0, "/a.log", "203.0.113.1", false}, {time.Second, "/b.log", "203.0.113.1", false}, {time.Second, "/c.log", "203.0.113.1", false}}, nil},
		{"two /24s", []event{{0, "/a.log", "203.0.113.1", false}, {time.Second, "/a.log", "203.0.114.2", false}, {time.Minute, "/a.log", "203.0.113.3", false}}, nil},
		{"ignoreip inside", []event{{0, "/a.log", "198.51.100.1", false}, {time.Second, "/a.log", "198.51.100.2", false}, {time.Minute, "/a.log", "198.51.100.3", false}}, nil},
		{"outside findtime", []event{{0, "/a.log", "203.0.113.1", false}, {time.Minute, "/a.log", "203.0.113.2", false}, {61 * time.Minute, "/a.log", "203.0.113.3", false}}, nil},
		{"restart in between", []event{{0, "/a.log", "203.0.113.1", false}, {time.Second, "/a.log", "203.0.113.2", true}, {time.Minute, "/a.log", "203.0.113.3", true}}, []string{"203.0.113.0/24"}},
		{"IPv6 /48", []event{{0, "/a.log", "2001:db8:1:1::1", false}, {time.Second, "/a.log", "2001:db8:1:2::1", false}, {time.Minute, "/a.log", "2001:db8:1:3::1", false}}, []string{"2001:db8:1::/48"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, st := newEngine(t, network)
			got := bansOf(play(t, &e, st, tt.events), "net")
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("network bans %v, want %v", got, tt.want)
			}
			if tt.want == nil {
				return
			}
			if b := activeBanOf(t, st, "net"); b.Until.Sub(b.Since) != 24*time.Hour || !strings.HasPrefix(b.Reason, "3 addresses of") {
				t.Errorf("network ban %+v: want a day, 3 addresses", b)
			}
			// The network's addresses are banned: their events anywhere
			// are the ban working.
			last := tt.events[len(tt.events)-1]
			if more := play(t, &e, st, []event{{last.at + time.Second, "/c.log", last.ip, false}}); len(more) != 0 {
				t.Errorf("an address of the banned network was banned again: %v", more)
			}
		})
	}
}

// IPv6 rotation: 50 addresses of one /64, each with a few events, in a
// jail with ipv6_prefix = 64 are one client: exactly one /64 entry.
func TestIPv6RotationIsOneEntry(t *testing.T) {
	e, st := newEngine(t, strings.Replace(jail, "maxretry = 2", "maxretry = 5", 1)+"ipv6_prefix = 64\n")
	var lines []core.Line
	for i := range 50 {
		for range 3 {
			l := testutil.RspamdRatelimit{At: t0, IP: fmt.Sprintf("2001:db8:7:7::%x", i+1), Bucket: "ip"}.Line()
			lines = append(lines, core.Line{Path: "/var/log/rspamd/rspamd.log", Text: []byte(strings.TrimSuffix(l, "\n")), Read: t0})
		}
	}
	e.Stage(lines, t0)
	ch, err := e.Commit(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := addrs(ch.Bans); got != "2001:db8:7:7::/64" {
		t.Fatalf("bans %q, want the one /64", got)
	}
	if n, err := st.BannedPrefixes(); err != nil || n != 1 || len(e.ActiveBans()) != 1 {
		t.Fatalf("%d entries (%v), %d in memory: want 1", n, err, len(e.ActiveBans()))
	}
}

// The would-be bans of a log-only jail banned nothing: they do not count
// in a recidive jail, neither as they are made nor after a restart, and
// cover no jail in the index (their own jail's policy marks the key).
// Entries taken over from a map keep their jail but were not decided
// here: they do not count either.
func TestLogOnlyAndImportedBansDoNotCountOnBans(t *testing.T) {
	e, st := newEngine(t, recidive)
	const ip = "198.51.100.9"
	if e.countsOnBans(store.Ban{Jail: "a", Offense: 1, LogOnly: true}) || !e.countsOnBans(store.Ban{Jail: "a", Offense: 1}) {
		t.Fatal("a log-only ban counts, or a ban does not")
	}
	if e.countsOnBans(store.Ban{Jail: "a", Offense: 1, Origin: "mx2"}) {
		t.Fatal("a ban mirrored from another node counts here (its node counts it)")
	}
	err := st.Update(context.Background(), func(tx *store.Tx) error {
		for _, jail := range []string{"a", "b"} {
			if _, err := tx.AddBan(store.Ban{Jail: jail, Prefix: netip.MustParsePrefix(ip + "/32"), Since: t0, Until: t0.Add(time.Minute), Offense: 1, LogOnly: true}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := bansOf(play(t, &e, st, []event{{time.Second, "/c.log", ip, true}}), "recidive"); len(got) != 0 {
		t.Fatalf("recidive bans %v from two log-only bans and one ban", got)
	}
	m, err := mapfile.ParseEntries(strings.NewReader("198.51.100.10 # until 2026-12-01T11:00:00Z jail=a\n"), "ip.map")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.AdoptMap(context.Background(), "ip.map", m, t0.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	got := play(t, &e, st, []event{{3 * time.Second, "/b.log", "198.51.100.10", true}, {4 * time.Second, "/c.log", "198.51.100.10", false}})
	if r := bansOf(got, "recidive"); len(r) != 0 {
		t.Fatalf("recidive bans %v from an imported entry and two bans", r)
	}
	x := indexEngine(store.Ban{Jail: "net", Prefix: netip.MustParsePrefix("203.0.113.0/24"), Until: t0.Add(time.Hour), LogOnly: true},
		store.Ban{Jail: "a", Prefix: netip.MustParsePrefix("192.0.2.0/24"), Until: t0.Add(time.Hour), LogOnly: true},
		store.Ban{Jail: "b", Prefix: netip.MustParsePrefix("198.18.0.0/24"), Until: t0.Add(time.Hour)})
	for _, c := range []struct{ jail, addr string }{{"a", "203.0.113.5"}, {"net", "203.0.113.5"}, {"a", "192.0.2.5"}} {
		if x.bannedIn(c.jail, netip.MustParseAddr(c.addr), t0) {
			t.Errorf("%s in %s: covered by a log-only ban (its own jail's policy stops it, nothing else)", c.addr, c.jail)
		}
	}
	if n := x.lengths.n4[24]; n != 1 {
		t.Errorf("%d bans of /24 counted in the lengths, want 1 (not the log-only ones)", n)
	}
}

// A network jail's tracked keys are the networks holding banned
// addresses.
func TestNetworkJailTracksNetworks(t *testing.T) {
	e, st := newEngine(t, network)
	play(t, &e, st, []event{{0, "/a.log", "203.0.113.1", false}, {0, "/b.log", "203.0.114.1", false}})
	if n := e.jail("net").Tracked(); n != 2 {
		t.Errorf("network jail tracks %d, want 2 networks", n)
	}
	e.Prune(t0.Add(2 * time.Hour))
	if n := e.jail("net").Tracked(); n != 0 {
		t.Errorf("after findtime the network jail still tracks %d", n)
	}
}

// A recidive jail added by a reload starts from the ban history, as at a
// start: two earlier bans and one more are a recidive ban.
func TestRecidiveAddedByReloadCountsEarlierBans(t *testing.T) {
	e, st := newEngine(t, logJails)
	const ip = "198.51.100.11"
	play(t, &e, st, []event{{0, "/a.log", ip, false}, {time.Second, "/b.log", ip, false}})
	cfg, err := config.Parse(strings.NewReader(recidive), "test.toml")
	if err != nil || cfg.Validate() != nil {
		t.Fatal(err)
	}
	cfg.Global.Timezone = "UTC"
	ch, err := e.Reload(context.Background(), cfg, t0.Add(time.Minute))
	if err != nil || fmt.Sprint(ch.Added) != "[recidive]" {
		t.Fatalf("reload: %+v, %v", ch, err)
	}
	if got := bansOf(play(t, &e, st, []event{{2 * time.Minute, "/c.log", ip, false}}), "recidive"); len(got) != 1 {
		t.Fatalf("recidive bans %v after the reload, want 1", got)
	}
}

// A recidive ban that began before findtime still holds after a restart,
// and bans of other jails made while it held do not count once it ends
// (its end clears the recidive jail's strikes of the address, as an
// unban does).
func TestRecidiveBanOlderThanFindtimeHoldsAfterARestart(t *testing.T) {
	e, st := newEngine(t, recidive+"bantime = \"3h\"\n")
	const ip = "198.51.100.12"
	play(t, &e, st, []event{{0, "/a.log", ip, false}, {0, "/b.log", ip, false}, {0, "/c.log", ip, false}})
	// While the recidive ban holds, bans in other jails are made by hand
	// into the database as a log jail would (the jails themselves see the
	// address covered and make none).
	err := st.Update(context.Background(), func(tx *store.Tx) error {
		for _, at := range []time.Duration{150 * time.Minute, 170 * time.Minute} {
			if _, err := tx.AddBan(store.Ban{Jail: "a", Prefix: netip.MustParsePrefix(ip + "/32"), Since: t0.Add(at), Until: t0.Add(at + time.Minute), Offense: 1}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Restarted at 2h55 (findtime 1h: the recidive ban began before
	// it), then one more ban after the recidive ban ended: one strike, no
	// recidive ban.
	got := play(t, &e, st, []event{{175 * time.Minute, "/c.log", "192.0.2.1", true}, {3*time.Hour + time.Minute, "/b.log", ip, false}})
	if r := bansOf(got, "recidive"); len(r) != 0 {
		t.Fatalf("recidive bans %v: strikes from while the recidive ban held were restored", r)
	}
}
