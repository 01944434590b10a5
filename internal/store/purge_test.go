package store

import (
	"context"
	"database/sql"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const day = 24 * time.Hour

// A purge removes what is older than dbpurgeage and keeps what must stay
// whatever its age: active bans and suspensions, strikes inside their
// jail's findtime, pending outbox items. Times are the test's: Now is
// the purge's clock.
func TestPurgeKeepsWhatRetentionKeeps(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	now := t0.Add(100 * day)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	a := netip.MustParseAddr("192.0.2.1")
	b := netip.MustParseAddr("2001:db8::1")
	err := s.Update(ctx, func(tx *Tx) error {
		for _, st := range []Strike{
			{Jail: "j", Addr: a, At: ago(35 * day)},    // old: purged
			{Jail: "j", Addr: a, At: ago(5 * day)},     // young: kept
			{Jail: "long", Addr: b, At: ago(35 * day)}, // inside the jail's findtime (45d): kept
			{Jail: "long", Addr: b, At: ago(50 * day)}, // beyond it: purged
			{Jail: "gone", Addr: a, At: ago(35 * day)}, // a jail no longer configured: purged
		} {
			if err := tx.AddStrike(st); err != nil {
				return err
			}
		}
		for _, ac := range []AccountStrike{{Jail: "j", Account: "old", At: ago(50 * day)}, {Jail: "j", Account: "young", At: ago(day)}} {
			if err := tx.AddAccountStrike(ac); err != nil {
				return err
			}
		}
		for _, ev := range []RateEvent{{Jail: "r", Key: "old", At: ago(31 * day)}, {Jail: "r", Key: "young", At: ago(29 * day)}} {
			if err := tx.AddRateEvent(ev); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Bans and suspensions: rows as the daemon leaves them.
	mustExec(t, s, `INSERT INTO bans (jail, addr, since, until, lifted, reason) VALUES
		('j', '192.0.2.10', ?1, NULL, NULL, 'active, permanent, old'),
		('j', '192.0.2.11', ?1, ?2, NULL, 'ended but not yet lifted: the daemon lifts it first'),
		('j', '192.0.2.12', ?1, ?2, ?2, 'lifted long ago'),
		('j', '192.0.2.13', ?1, ?3, ?3, 'lifted recently')`,
		ago(60*day).UnixNano(), ago(40*day).UnixNano(), ago(10*day).UnixNano())
	mustExec(t, s, `INSERT INTO suspensions (jail, account, since, until, lifted, reason) VALUES
		('j', 'active', ?1, NULL, NULL, 'active, old'),
		('j', 'lifted', ?1, ?2, ?2, 'lifted long ago'),
		('j', 'recent', ?1, ?3, ?3, 'lifted recently')`,
		ago(60*day).UnixNano(), ago(40*day).UnixNano(), ago(10*day).UnixNano())
	mustExec(t, s, `INSERT INTO outbox (kind, payload, created, next_attempt, done, gave_up, last_error) VALUES
		('alert', '{}', ?1, ?1, NULL, NULL, 'pending, old'),
		('alert', '{}', ?1, ?1, ?1, NULL, 'done long ago'),
		('alert', '{}', ?1, ?1, NULL, ?1, 'given up long ago'),
		('alert', '{}', ?1, ?1, ?2, NULL, 'done recently')`,
		ago(40*day).UnixNano(), ago(day).UnixNano())

	r := Retention{Now: now, Age: 30 * day, FindTime: map[string]time.Duration{"j": 10 * time.Minute, "long": 45 * day}, MaxMatches: 1}
	st, err := s.Purge(ctx, r, PurgeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		table, query string
		want         []string
	}{
		{"strikes", `SELECT j.name || ' ' || (s.at / 86400000000000) FROM strikes s JOIN jails j ON j.id = s.jail ORDER BY j.name, s.at`,
			[]string{dayOf("j", ago(5*day)), dayOf("long", ago(35*day))}},
		{"account_strikes", `SELECT account FROM account_strikes ORDER BY account`, []string{"young"}},
		{"rate_events", `SELECT key FROM rate_events ORDER BY key`, []string{"young"}},
		{"bans", `SELECT addr FROM bans ORDER BY addr`, []string{"192.0.2.10", "192.0.2.11", "192.0.2.13"}},
		{"suspensions", `SELECT account FROM suspensions ORDER BY account`, []string{"active", "recent"}},
		{"outbox", `SELECT last_error FROM outbox ORDER BY id`, []string{"pending, old", "done recently"}},
	} {
		t.Run(tc.table, func(t *testing.T) {
			got := queryStrings(t, s, tc.query)
			if !slices.Equal(got, tc.want) {
				t.Errorf("%s kept %q, want %q", tc.table, got, tc.want)
			}
		})
	}
	want := map[string]int64{"strikes": 3, "account_strikes": 1, "rate_events": 1, "bans": 1, "suspensions": 1, "outbox": 2}
	for table, n := range want {
		if st.Removed[table] != n {
			t.Errorf("removed %d from %s, want %d (stats %+v)", st.Removed[table], table, n, st)
		}
	}
	// show still explains what is kept.
	if got, err := s.RecentStrikes(a, 10); err != nil || len(got) != 1 || got[0].Jail != "j" {
		t.Errorf("recent strikes of %s after the purge = %+v, %v", a, got, err)
	}
	// Nothing left to purge: a second purge removes nothing.
	if st, err := s.Purge(ctx, r, PurgeOptions{}); err != nil || sum(st.Removed) != 0 {
		t.Errorf("second purge = %+v, %v", st, err)
	}
}

func dayOf(jail string, at time.Time) string {
	return jail + " " + itoa(at.UnixNano()/int64(day))
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func sum(m map[string]int64) (n int64) {
	for _, v := range m {
		n += v
	}
	return n
}

// Each transaction of a purge deletes at most a batch of rows, and the
// file gives its free pages back.
func TestPurgeBatchesAreBounded(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	addStrikes(t, s, 1234, 0)
	var batches []int64
	st, err := s.Purge(ctx, Retention{Now: t0.Add(60 * day), Age: 30 * day}, PurgeOptions{Batch: 100, OnBatch: func(what string, n int64) {
		if what == "strikes" {
			batches = append(batches, n)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if st.Removed["strikes"] != 1234 || len(batches) != 13 {
		t.Fatalf("removed %d strikes in %d batches %v, want 1234 in 13", st.Removed["strikes"], len(batches), batches)
	}
	for _, n := range batches {
		if n > 100 {
			t.Errorf("a batch deleted %d rows, more than 100", n)
		}
	}
	if st.PagesFreed == 0 {
		t.Error("no page given back to the file system")
	}
	var free int
	if err := s.db.QueryRow(`PRAGMA freelist_count`).Scan(&free); err != nil || free != 0 {
		t.Errorf("free pages after the purge = %d, %v", free, err)
	}
}

// Only the dbmaxmatches newest strikes of an address in a jail keep
// their line; the others keep their time and bucket. Strikes at the same
// time are all kept. The next purge trims what was stored since.
func TestPurgeKeepsLinesOfNewestStrikes(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	a := netip.MustParseAddr("192.0.2.1")
	add := func(at ...time.Time) {
		t.Helper()
		if err := s.Update(ctx, func(tx *Tx) error {
			for i, x := range at {
				for _, jail := range []string{"j", "k"} {
					if err := tx.AddStrike(Strike{Jail: jail, Addr: a, At: x, Bucket: "ip", Line: jail + " line " + x.Format(time.TimeOnly) + " " + itoa(int64(i))}); err != nil {
						return err
					}
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	lines := func() (out []string) {
		got, err := s.RecentStrikes(a, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range got {
			if st.Bucket != "ip" {
				t.Errorf("strike lost its bucket: %+v", st)
			}
			out = append(out, st.Line)
		}
		return out
	}
	add(t0, t0.Add(time.Second), t0.Add(time.Second), t0.Add(2*time.Second))
	r := Retention{Now: t0.Add(time.Hour), Age: 30 * day, MaxMatches: 2}
	if _, err := s.Purge(ctx, r, PurgeOptions{}); err != nil {
		t.Fatal(err)
	}
	want := []string{"k line 03:00:02 3", "j line 03:00:02 3", "k line 03:00:01 2", "j line 03:00:01 2", "", "", "", ""}
	if got := lines(); !slices.Equal(sorted2(got), sorted2(want)) {
		t.Errorf("lines after the purge = %q, want %q", got, want)
	}
	// Stored after the first purge, with a log time just before it.
	add(t0.Add(time.Hour - time.Minute))
	r.Now = t0.Add(2 * time.Hour)
	if _, err := s.Purge(ctx, r, PurgeOptions{}); err != nil {
		t.Fatal(err)
	}
	want = []string{"k line 03:59:00 0", "j line 03:59:00 0", "k line 03:00:02 3", "j line 03:00:02 3", "", "", "", "", "", ""}
	if got := lines(); !slices.Equal(sorted2(got), sorted2(want)) {
		t.Errorf("lines after the second purge = %q, want %q", got, want)
	}
}

// sorted2 sorts pairs of lines that share a time (jails j and k) so the
// comparison does not depend on the order of jails at one time.
func sorted2(l []string) []string {
	out := slices.Clone(l)
	for i := 0; i+1 < len(out); i += 2 {
		if out[i] > out[i+1] {
			out[i], out[i+1] = out[i+1], out[i]
		}
	}
	return out
}

// A database of the schema before compact strikes (strikes with text
// jails and addresses) opens with its strikes, bans and the rest carried
// over, switched to incremental vacuum.
func TestMigrationCarriesStrikesOver(t *testing.T) {
	shipped := migrations
	compact := slices.IndexFunc(shipped, func(m string) bool { return strings.Contains(m, "CREATE TABLE jails") })
	if compact < 0 {
		t.Fatal("no migration creates jails")
	}
	path := filepath.Join(t.TempDir(), "mailjail.db")
	// The schema as it was, made before incremental vacuum existed
	// (Open would prepare today's statements).
	db, err := sql.Open(driverName, "file:"+path+"?_journal_mode=WAL")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	old := &Store{db: db}
	for _, m := range shipped[:compact] {
		mustExec(t, old, m)
	}
	mustExec(t, old, `PRAGMA user_version = `+strconv.Itoa(compact))
	mustExec(t, old, `INSERT INTO strikes (jail, addr, at, bucket, line) VALUES
		('rspamd-ratelimit', '192.0.2.7', ?1, 'ip', 'first'),
		('rspamd-ratelimit', '192.0.2.7', ?1, 'ip', 'same second'),
		('rspamd-ratelimit', '2001:db8::7', ?2, 'ip', 'v6'),
		('postfix-ratelimit', '192.0.2.7', ?2, 'ip', 'postfix')`, t0.UnixNano(), t0.Add(time.Minute).UnixNano())
	mustExec(t, old, `INSERT INTO bans (jail, addr, since, until, strikes, reason) VALUES ('rspamd-ratelimit', '192.0.2.7', ?1, NULL, 3, 'r')`, t0.UnixNano())
	old.Close()

	s, err := Open(path, Options{Durable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.RecentStrikes(netip.MustParseAddr("192.0.2.7"), 10)
	if err != nil {
		t.Fatal(err)
	}
	var text []string
	for _, st := range got {
		text = append(text, st.Jail+" "+st.At.UTC().Format(time.TimeOnly)+" "+st.Line)
	}
	// Only the newest strike of an address in a jail keeps its line.
	want := []string{"postfix-ratelimit 03:01:00 postfix", "rspamd-ratelimit 03:00:00 same second", "rspamd-ratelimit 03:00:00 "}
	if !slices.Equal(text, want) {
		t.Errorf("strikes of 192.0.2.7 after the migration = %q, want %q", text, want)
	}
	n := 0
	if err := s.StrikesSince(t0, func(jail []byte, a netip.Addr, at time.Time) error {
		n++
		if string(jail) == "rspamd-ratelimit" && a.Is6() && (a != netip.MustParseAddr("2001:db8::7") || !at.Equal(t0.Add(time.Minute))) {
			t.Errorf("strike %s %s %s", jail, a, at)
		}
		return nil
	}); err != nil || n != 4 {
		t.Errorf("strikes since = %d, %v", n, err)
	}
	if bans, err := s.ActiveBans(); err != nil || len(bans) != 1 || bans[0].Strikes != 3 {
		t.Errorf("bans = %+v, %v", bans, err)
	}
	var mode int
	if err := s.db.QueryRow(`PRAGMA auto_vacuum`).Scan(&mode); err != nil || mode != autoVacuumIncremental {
		t.Errorf("auto_vacuum = %d, %v, want incremental", mode, err)
	}
	// A new strike of the same jail gets the migrated jail's id.
	if err := s.Update(context.Background(), func(tx *Tx) error {
		return tx.AddStrike(Strike{Jail: "rspamd-ratelimit", Addr: netip.MustParseAddr("192.0.2.7"), At: t0, Line: "third at the same second"})
	}); err != nil {
		t.Fatal(err)
	}
	if c, err := s.CountsByJail(); err != nil || c["rspamd-ratelimit"].Strikes != 4 || c["postfix-ratelimit"].Strikes != 1 {
		t.Errorf("counts = %+v, %v", c, err)
	}
}

// A new database gives purged pages back from the start.
func TestNewDatabaseVacuumsIncrementally(t *testing.T) {
	s := open(t)
	var mode int
	if err := s.db.QueryRow(`PRAGMA auto_vacuum`).Scan(&mode); err != nil || mode != autoVacuumIncremental {
		t.Errorf("auto_vacuum = %d, %v, want incremental", mode, err)
	}
}

func addStrikes(t *testing.T, s *Store, n int, from int) {
	t.Helper()
	if err := s.Update(context.Background(), func(tx *Tx) error {
		for i := from; i < from+n; i++ {
			a := netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
			if err := tx.AddStrike(Strike{Jail: "j", Addr: a, At: t0.Add(time.Duration(i) * time.Second), Bucket: "ip", Line: strings.Repeat("x", 200)}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func mustExec(t *testing.T, s *Store, query string, args ...any) {
	t.Helper()
	if _, err := s.db.Exec(query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func queryStrings(t *testing.T, s *Store, query string) []string {
	t.Helper()
	rows, err := s.db.Query(query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}
