package engine

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/core"
	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/mapfile"
	"github.com/mailjail/mailjail/rules"
)

const fixture = "../../testdata/rspamd-3.4-proxy.log"

func newEngine(t *testing.T, toml string) (*Engine, *store.Store) {
	t.Helper()
	cfg := mustConfig(t, toml)
	st, err := store.Open(filepath.Join(t.TempDir(), "m.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e, err := New(cfg, st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return e, st
}

// feed stages a file line by line with each line's own time as the
// clock and commits at the end, as replay does.
func feed(t *testing.T, e *Engine, path, as string) []store.Ban {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	var bans []store.Ban
	ctx := context.Background()
	for sc.Scan() {
		at, _, _ := rules.ParseTime(sc.Bytes(), time.UTC, time.Now())
		if _, err := e.ExpireDue(ctx, at); err != nil {
			t.Fatal(err)
		}
		e.Stage([]core.Line{{Path: as, Text: sc.Bytes(), Read: at}}, at)
		ch, err := e.Commit(ctx)
		if err != nil {
			t.Fatal(err)
		}
		bans = append(bans, ch.Bans...)
	}
	return bans
}

func addrs(bans []store.Ban) string {
	var out []string
	for _, b := range bans {
		out = append(out, rules.FormatPrefix(b.Prefix))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

const jail = `
[jail.rl]
filter = "rspamd-ratelimit"
logpath = ["/var/log/rspamd/rspamd.log"]
maxretry = 2
findtime = "10m"
bantime = "1h"
`

func TestBansFromRealLog(t *testing.T) {
	tests := []struct {
		name, toml, want string
	}{
		// 203.0.113.7 has 7 events, all in the "user" bucket: not banned by default.
		{"default buckets", jail, "198.18.0.66 198.18.5.6 198.51.100.23 2001:db8::42"},
		{"user bucket opted in", jail + `buckets = ["ip", "user"]`, "198.18.0.66 198.18.5.6 198.51.100.23 2001:db8::42 203.0.113.7"},
		{"ignoreip", jail + `ignoreip = ["198.18.0.0/15", "2001:db8::/32"]`, "198.51.100.23"},
		{"maxretry above the counts", strings.Replace(jail, "maxretry = 2", "maxretry = 6", 1), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, st := newEngine(t, tt.toml)
			bans := feed(t, e, fixture, "/var/log/rspamd/rspamd.log")
			if got := addrs(bans); got != tt.want {
				t.Errorf("banned %q, want %q", got, tt.want)
			}
			active, _ := st.ActiveBans()
			if addrs(active) != tt.want || len(e.ActiveBans()) != len(active) {
				t.Errorf("store has %q, map %d entries", addrs(active), len(e.ActiveBans()))
			}
		})
	}
}

func TestLinesOfOtherPathsAreNotJudged(t *testing.T) {
	e, _ := newEngine(t, jail)
	if bans := feed(t, e, fixture, "/var/log/other.log"); len(bans) != 0 || e.Stats().Matches != 0 {
		t.Fatalf("bans from an unrelated file: %v", bans)
	}
}

// A failed commit keeps the batch; retrying it loses nothing and the
// ban is not visible (in the map) before it is in the database.
func TestCommitFailureKeepsBatch(t *testing.T) {
	e, st := newEngine(t, jail)
	ctx := context.Background()
	dbPath := st.Path()
	// Make every ban insert fail, as a full disk would.
	if err := execSQL(dbPath, `CREATE TABLE fail(x); INSERT INTO fail VALUES(1);
		CREATE TRIGGER no_bans BEFORE INSERT ON bans WHEN EXISTS (SELECT 1 FROM fail) BEGIN SELECT RAISE(ABORT, 'disk full'); END;`); err != nil {
		t.Fatal(err)
	}
	line := "2026-11-25 03:33:42 #3861(rspamd_proxy) <4854e1>; proxy; rspamd_task_write_log: id: <x>, ip: 198.18.0.66, from: <m@e>, (default: F (soft reject): [0.00/15.00] []), len: 1, forced: soft reject \"Ratelimit \"ip\" exceeded\"; score=nan (set by ratelimit)"
	now := time.Date(2026, 11, 25, 3, 34, 0, 0, time.UTC)
	pos := core.Position{Path: "/var/log/rspamd/rspamd.log", Offset: 100}
	e.Stage([]core.Line{{Path: pos.Path, Text: []byte(line), Pos: pos}, {Path: pos.Path, Text: []byte(line), Pos: pos}}, now)
	if _, err := e.Commit(ctx); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("commit err = %v", err)
	}
	if len(e.ActiveBans()) != 0 {
		t.Fatal("ban visible to the map before it was saved")
	}
	if p, _ := st.Positions(); len(p) != 0 {
		t.Fatal("position saved without its strikes")
	}
	if err := execSQL(dbPath, `DELETE FROM fail`); err != nil {
		t.Fatal(err)
	}
	ch, err := e.Commit(ctx)
	if bans := ch.Bans; err != nil || len(bans) != 1 {
		t.Fatalf("retry: %v %v", bans, err)
	}
	if p, _ := st.Positions(); p[pos.Path].Offset != 100 {
		t.Fatalf("positions = %v", p)
	}
	if n := len(e.ActiveBans()); n != 1 {
		t.Fatalf("map entries = %d", n)
	}
}

func execSQL(path, q string) error {
	st, err := store.Open(path, store.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	return st.Exec(q)
}

// After a restart the engine counts strikes still in their window,
// restores active bans and escalates from earlier bans.
func TestRestoreAfterRestart(t *testing.T) {
	e, st := newEngine(t, jail+"bantime_factor = 3\n")
	ctx := context.Background()
	a := netip.MustParseAddr("198.51.100.23")
	now := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	line := func(ip string) []byte {
		return []byte("2026-11-25 03:00:00 #1(rspamd_proxy) <a1>; proxy; rspamd_task_write_log: id: <m>, ip: " + ip + ", from: <x@y>, (default: F (soft reject): [0.00/15.00] []), len: 1, forced: soft reject \"Ratelimit \"ip\" exceeded\"; score=nan (set by ratelimit)")
	}
	e.Stage([]core.Line{{Path: "/var/log/rspamd/rspamd.log", Text: line(a.String())}}, now)
	if _, err := e.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// A restart: a new engine on the same database.
	e2, err := New(e.cfg, st, e.log)
	if err != nil {
		t.Fatal(err)
	}
	if err := restore(e2, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	e2.Stage([]core.Line{{Path: "/var/log/rspamd/rspamd.log", Text: line(a.String())}}, now.Add(time.Minute))
	ch, err := e2.Commit(ctx)
	if bans := ch.Bans; err != nil || len(bans) != 1 {
		t.Fatalf("strike before restart did not count: %v %v", bans, err)
	}
	// Unban, strike twice more: the second ban escalates (×3).
	if _, err := e2.Unban(ctx, rules.HostPrefix(a), "", now.Add(2*time.Minute), "test"); err != nil {
		t.Fatal(err)
	}
	e3, _ := New(e.cfg, st, e.log)
	later := now.Add(3 * time.Minute)
	if err := restore(e3, later); err != nil {
		t.Fatal(err)
	}
	e3.Stage([]core.Line{{Path: "/var/log/rspamd/rspamd.log", Text: line(a.String())}, {Path: "/var/log/rspamd/rspamd.log", Text: line(a.String())}}, later)
	ch, err = e3.Commit(ctx)
	if bans := ch.Bans; err != nil || len(bans) != 1 || bans[0].Until.Sub(bans[0].Since) != 3*time.Hour {
		t.Fatalf("escalated ban = %+v, %v", bans, err)
	}
}

func TestManualBanAndUnban(t *testing.T) {
	e, _ := newEngine(t, jail)
	ctx := context.Background()
	now := time.Now()
	if _, err := e.Ban(ctx, netip.MustParsePrefix("127.0.0.0/24"), "", time.Hour, "", now); err == nil {
		t.Fatal("banned a range that covers ignoreip")
	}
	p := netip.MustParsePrefix("198.51.100.0/24")
	if _, err := e.Ban(ctx, p, "", config.Permanent, "range", now); err != nil {
		t.Fatal(err)
	}
	if !e.bannedAt(netip.MustParseAddr("198.51.100.77"), now.Add(1000*time.Hour)) {
		t.Fatal("range ban does not cover its addresses")
	}
	if _, err := e.Unban(ctx, netip.MustParsePrefix("192.0.2.1/32"), "", now, "t"); err == nil {
		t.Fatal("unbanned an address that was not banned")
	}
	if ch, err := e.Unban(ctx, p, "", now, "t"); err != nil || len(ch.Lifted) != 1 || len(e.ActiveBans()) != 0 {
		t.Fatalf("unban: %v %v", ch.Lifted, err)
	}
}

// An address added to ignoreip after it was banned leaves the map at the
// next start; a banned range that covers an ignored address is kept.
func TestLiftIgnoredAtStart(t *testing.T) {
	e, st := newEngine(t, jail)
	ctx := context.Background()
	now := time.Now()
	for _, p := range []string{"198.51.100.7/32", "198.51.100.8/32", "203.0.113.0/24"} {
		if _, err := e.Ban(ctx, netip.MustParsePrefix(p), "rl", time.Hour, "", now); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.Parse(strings.NewReader(jail+`ignoreip = ["198.51.100.7", "203.0.113.9"]`), "test.toml")
	if err != nil || cfg.Validate() != nil {
		t.Fatal(err)
	}
	e2, err := New(cfg, st, e.log)
	if err != nil {
		t.Fatal(err)
	}
	if err := e2.RestoreBans(now); err != nil {
		t.Fatal(err)
	}
	ch, err := e2.LiftIgnored(ctx, now)
	if lifted := ch.Lifted; err != nil || addrs(lifted) != "198.51.100.7" {
		t.Fatalf("lifted %v, %v", addrs(lifted), err)
	}
	if got := addrs(e2.ActiveBans()); got != "198.51.100.8 203.0.113.0/24" {
		t.Fatalf("active = %q", got)
	}
}

// With ipv6_prefix = 64 an IPv6 client hopping through its /64 is one
// client: its strikes add up and the whole /64 is banned, unless the /64
// holds an ignored address (then only the offender is).
func TestIPv6PrefixGrouping(t *testing.T) {
	e, st := newEngine(t, jail+"ipv6_prefix = 64\nignoreip = [\"2001:db8:1:3::1\"]\n")
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	line := func(ip string) core.Line {
		return core.Line{Path: "/var/log/rspamd/rspamd.log", Text: []byte("2026-11-25 03:00:00 #1(rspamd_proxy) <a1>; proxy; rspamd_task_write_log: id: <m>, ip: " + ip + ", from: <x@y>, (default: F (soft reject): [0.00/15.00] []), len: 1, forced: soft reject \"Ratelimit \"ip\" exceeded\"; score=nan (set by ratelimit)")}
	}
	stage := func(ips ...string) []store.Ban {
		t.Helper()
		var ls []core.Line
		for _, ip := range ips {
			ls = append(ls, line(ip))
		}
		e.Stage(ls, now)
		ch, err := e.Commit(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return ch.Bans
	}
	if b := stage("2001:db8:1:2::1"); len(b) != 0 {
		t.Fatalf("banned after one strike: %v", b)
	}
	// A restart keeps the strike, grouped.
	e, _ = New(e.cfg, st, e.log)
	if err := restore(e, now); err != nil {
		t.Fatal(err)
	}
	if b := stage("2001:db8:1:2::99"); addrs(b) != "2001:db8:1:2::/64" {
		t.Fatalf("bans = %q, want the /64", addrs(b))
	}
	if b := stage("2001:db8:1:2::5", "2001:db8:1:2::6"); len(b) != 0 || e.Stats().Strikes != 1 {
		t.Fatalf("addresses inside the banned /64 struck: %v, %d strikes", b, e.Stats().Strikes)
	}
	if b := stage("2001:db8:1:3::7", "2001:db8:1:3::8"); addrs(b) != "2001:db8:1:3::8" {
		t.Fatalf("bans next to an ignored address = %q, want only the offender", addrs(b))
	}
	if b := stage("198.51.100.1", "198.51.100.2"); len(b) != 0 {
		t.Fatalf("IPv4 grouped: %v", addrs(b))
	}
	if _, err := e.Unban(ctx, netip.MustParsePrefix("2001:db8:1:2::/64"), "", now, "t"); err != nil {
		t.Fatal(err)
	}
	if b := stage("2001:db8:1:2::1"); len(b) != 0 {
		t.Fatal("strikes survived the unban")
	}
}

func rspamdLine(stamp, ip string) []byte {
	return []byte(stamp + " #1(rspamd_proxy) <a1>; proxy; rspamd_task_write_log: id: <m>, ip: " + ip + ", from: <x@y>, (default: F (soft reject): [0.00/15.00] []), len: 1, forced: soft reject \"Ratelimit \"ip\" exceeded\"; score=nan (set by ratelimit)")
}

// Lines dated far in the future are taken at the time they are read, so
// their strikes leave the window like any other after a restart.
func TestFutureDatedStrikesExpireAfterARestart(t *testing.T) {
	e, st := newEngine(t, strings.Replace(jail, "maxretry = 2", "maxretry = 3", 1))
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	l := rspamdLine("2099-01-01 00:00:00", "198.51.100.40")
	e.Stage([]core.Line{{Path: "/var/log/rspamd/rspamd.log", Text: l, Read: now}, {Path: "/var/log/rspamd/rspamd.log", Text: l, Read: now}}, now)
	if _, err := e.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if c := e.Jails()[0].Counters(); c.Future != 2 {
		t.Fatalf("future lines counted %d, want 2", c.Future)
	}
	later := now.Add(time.Hour) // beyond findtime (10m)
	e2, _ := New(e.cfg, st, e.log)
	if err := restore(e2, later); err != nil {
		t.Fatal(err)
	}
	e2.Stage([]core.Line{{Path: "/var/log/rspamd/rspamd.log", Text: rspamdLine("2026-11-25 04:00:00", "198.51.100.40"), Read: later}}, later)
	ch, err := e2.Commit(ctx)
	if err != nil || len(ch.Bans) != 0 {
		t.Fatalf("banned by strikes from the future: %+v %v", ch.Bans, err)
	}
}

// An event older than findtime is not a strike, but it is counted, so a
// wrong timezone does not silently disable a jail.
func TestEventsOlderThanFindtimeAreCounted(t *testing.T) {
	e, _ := newEngine(t, jail)
	now := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	old := rspamdLine("2026-11-25 01:00:00", "198.51.100.41") // two hours ago: a timezone off by two
	e.Stage([]core.Line{{Path: "/var/log/rspamd/rspamd.log", Text: old, Read: now}, {Path: "/var/log/rspamd/rspamd.log", Text: old, Read: now}}, now)
	if c := e.Jails()[0].Counters(); c.TooOld != 2 {
		t.Fatalf("too old = %d, want 2", c.TooOld)
	}
	if s := e.Stats(); s.Strikes != 0 {
		t.Fatalf("%d strikes from stale events", s.Strikes)
	}
}

// A filter with a datepattern reads its lines' times with it.
func TestDatePatternTimesItsFiltersLines(t *testing.T) {
	e, _ := newEngine(t, `[filter.web]
failregex = ['^login failed from <HOST>$']
datepattern = '^\[%d/%b/%Y %H:%M:%S\]'
[jail.web]
filter = "web"
logpath = ["/var/log/web.log"]
maxretry = 2
findtime = "10m"
`)
	now := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	lines := []core.Line{
		{Path: "/var/log/web.log", Text: []byte("[25/Nov/2026 02:59:00] login failed from 192.0.2.60"), Read: now},
		{Path: "/var/log/web.log", Text: []byte("[25/Nov/2026 01:00:00] login failed from 192.0.2.60"), Read: now},
		{Path: "/var/log/web.log", Text: []byte("[25/Nov/2026 02:59:30] login failed from 192.0.2.60"), Read: now},
	}
	e.Stage(lines, now)
	if s, c := e.Stats(), e.Jails()[0].Counters(); s.NoTime != 0 || c.TooOld != 1 || s.Bans != 1 {
		t.Fatalf("stats %+v, counters %+v: want the 01:00 line too old and a ban from the other two", s, c)
	}
}

func TestBanReasonCountsStrikesInGoodEnglish(t *testing.T) {
	e, _ := newEngine(t, "[jail.rl]\nfilter = \"rspamd-ratelimit\"\nlogpath = [\"/var/log/rspamd/rspamd.log\"]\nmaxretry = 1\n")
	now := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	e.Stage([]core.Line{{Path: "/var/log/rspamd/rspamd.log", Text: rspamdLine("2026-11-25 03:00:00", "198.51.100.42"), Read: now}}, now)
	ch, err := e.Commit(context.Background())
	if err != nil || len(ch.Bans) != 1 || !strings.HasPrefix(ch.Bans[0].Reason, "1 strike in 10m") {
		t.Fatalf("bans %+v, %v", ch.Bans, err)
	}
}

// Taking over a map keeps what mailjail wrote itself: the jail and the
// expiry of its entries (those that ended are dropped); other entries
// (fail2ban's, an rspamd value, hand-written) become permanent manual bans.
func TestImportedMapEntriesKeepJailAndExpiry(t *testing.T) {
	e, _ := newEngine(t, jail)
	now := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	m, err := mapfile.ParseEntries(strings.NewReader(`# old list
198.51.100.1 # until 2026-11-25T04:00:00Z jail=rl
198.51.100.2 # until 2026-11-01T01:00:00Z jail=rl
203.0.113.5 spam-source
192.0.2.0/24
`), "ip.map")
	if err != nil {
		t.Fatal(err)
	}
	ch, err := e.AdoptMap(context.Background(), "ip.map", m, now)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]store.Ban{}
	for _, b := range ch.Bans {
		got[rules.FormatPrefix(b.Prefix)] = b
	}
	if len(got) != 3 {
		t.Fatalf("imported %v", got)
	}
	if b := got["198.51.100.1"]; b.Jail != "rl" || !b.Until.Equal(time.Date(2026, 11, 25, 4, 0, 0, 0, time.UTC)) {
		t.Errorf("own entry became %+v", b)
	}
	if _, ok := got["198.51.100.2"]; ok {
		t.Error("an entry that had ended was imported")
	}
	if b := got["203.0.113.5"]; b.Jail != ManualJail || !b.Permanent() || !strings.Contains(b.Reason, "spam-source") {
		t.Errorf("foreign entry became %+v", b)
	}
	if b := got["192.0.2.0/24"]; b.Jail != ManualJail || !b.Permanent() {
		t.Errorf("range became %+v", b)
	}
}

// restore is what a restart does: bans, then strikes.
func restore(e *Engine, now time.Time) error {
	if err := e.RestoreBans(now); err != nil {
		return err
	}
	return e.RestoreStrikes(now)
}
