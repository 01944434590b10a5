package store

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/core"
)

var t0 = time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)

func open(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "state", "mailjail.db"), Options{Durable: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestBanLifecycle(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	a := netip.MustParsePrefix("198.51.100.23/32")
	r := netip.MustParsePrefix("2001:db8::/64")
	err := s.Update(ctx, func(tx *Tx) error {
		if err := tx.AddStrike(Strike{Jail: "j", Addr: a.Addr(), At: t0, Bucket: "ip", Line: "x"}); err != nil {
			return err
		}
		if _, err := tx.AddBan(Ban{Jail: "j", Prefix: a, Since: t0, Until: t0.Add(time.Hour), Strikes: 3, Reason: "r"}); err != nil {
			return err
		}
		_, err := tx.AddBan(Ban{Jail: "manual", Prefix: r, Since: t0})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	bans, err := s.ActiveBans()
	if err != nil || len(bans) != 2 {
		t.Fatalf("active = %v, %v", bans, err)
	}
	if bans[1].Prefix != r || !bans[1].Permanent() || !bans[0].Until.Equal(t0.Add(time.Hour)) {
		t.Errorf("bans = %+v", bans)
	}
	// A second ban of the same address in the same jail replaces the first.
	if err := s.Update(ctx, func(tx *Tx) error {
		_, err := tx.AddBan(Ban{Jail: "j", Prefix: a, Since: t0.Add(time.Minute), Until: t0.Add(2 * time.Hour)})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if bans, _ := s.ActiveBans(); len(bans) != 2 {
		t.Fatalf("replace made %d active bans", len(bans))
	}
	var expired []Ban
	if err := s.Update(ctx, func(tx *Tx) (err error) {
		expired, err = tx.ExpireBans(t0.Add(2 * time.Hour))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(expired) != 1 || expired[0].Prefix != a {
		t.Fatalf("expired = %+v", expired)
	}
	var lifted []Ban
	if err := s.Update(ctx, func(tx *Tx) (err error) {
		lifted, err = tx.LiftBans(r, "", t0, "cli")
		return err
	}); err != nil || len(lifted) != 1 {
		t.Fatalf("lifted = %v, %v", lifted, err)
	}
	if bans, _ := s.ActiveBans(); len(bans) != 0 {
		t.Fatalf("still active: %v", bans)
	}
	hist, err := s.BanHistory(a, 10)
	if err != nil || len(hist) != 2 || hist[0].LiftedBy != "expired" || hist[1].LiftedBy != "replaced" {
		t.Fatalf("history = %+v, %v", hist, err)
	}
	strikes, _ := s.RecentStrikes(a.Addr(), 10)
	if len(strikes) != 1 || strikes[0].Line != "x" {
		t.Errorf("strikes = %+v", strikes)
	}
}

func TestFailedUpdateChangesNothing(t *testing.T) {
	s := open(t)
	err := s.Update(context.Background(), func(tx *Tx) error {
		tx.AddBan(Ban{Jail: "j", Prefix: netip.MustParsePrefix("192.0.2.1/32"), Since: t0})
		return context.Canceled
	})
	if err == nil {
		t.Fatal("want error")
	}
	if bans, _ := s.ActiveBans(); len(bans) != 0 {
		t.Fatalf("rolled back ban is visible: %v", bans)
	}
}

func TestStrikesPositionsMeta(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	a := netip.MustParseAddr("2001:db8::42")
	err := s.Update(ctx, func(tx *Tx) error {
		for i := range 5 {
			if err := tx.AddStrike(Strike{Jail: "j", Addr: a, At: t0.Add(time.Duration(i) * time.Minute)}); err != nil {
				return err
			}
		}
		if err := tx.SavePosition(core.Position{Path: "/var/log/x", Dev: 1, Ino: 1 << 40, Offset: 123, Head: 1 << 63}, t0); err != nil {
			return err
		}
		return tx.SetMeta("k", "v")
	})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.StrikesSince(t0.Add(2*time.Minute), func(jail []byte, got netip.Addr, _ time.Time) error {
		if string(jail) != "j" || got != a {
			t.Errorf("strike %s %s", jail, got)
		}
		n++
		return nil
	}); err != nil || n != 3 {
		t.Fatalf("strikes since = %d, %v", n, err)
	}
	pos, err := s.Positions()
	if err != nil || pos["/var/log/x"].Offset != 123 || pos["/var/log/x"].Ino != 1<<40 || pos["/var/log/x"].Head != 1<<63 {
		t.Fatalf("positions = %+v, %v", pos, err)
	}
	if v, ok, _ := s.Meta("k"); !ok || v != "v" {
		t.Fatal("meta")
	}
	st, err := s.Purge(ctx, Retention{Now: t0.Add(3 * time.Minute), MaxMatches: 1}, PurgeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n := st.Removed["strikes"]; n != 3 {
		t.Errorf("pruned %d", n)
	}
	c, err := s.CountsByJail()
	if err != nil || c["j"].Strikes != 2 {
		t.Fatalf("counts = %+v %v", c, err)
	}
}

func TestReopenKeepsStateAndSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.db")
	s, err := Open(path, Options{Durable: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Update(context.Background(), func(tx *Tx) error {
		_, err := tx.AddBan(Ban{Jail: "j", Prefix: netip.MustParsePrefix("192.0.2.7/32"), Since: t0})
		return err
	})
	s.Close()
	s, err = Open(path, Options{Durable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if bans, _ := s.ActiveBans(); len(bans) != 1 {
		t.Fatalf("bans after reopen: %v", bans)
	}
	if _, err := s.db.Exec(`PRAGMA user_version = 99`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(path, Options{}); err == nil {
		t.Fatal("opened a database from the future")
	}
}

func TestOutboxKeepsOrderRetriesAndCounts(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	var ids []int64
	err := s.Update(ctx, func(tx *Tx) error {
		for _, k := range []string{"action", "alert", "action"} {
			id, err := tx.AddOutbox(k, []byte(`{"k":"`+k+`"}`), false, t0)
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.OutboxDone(ctx, ids[1], t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := s.OutboxRetry(ctx, ids[0], t0.Add(time.Minute), errors.New("exit status 1")); err != nil {
		t.Fatal(err)
	}
	if err := s.OutboxGiveUp(ctx, ids[2], t0.Add(time.Hour), errors.New("gone")); err != nil {
		t.Fatal(err)
	}
	items, err := s.PendingOutbox(10)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 1 || items[0].ID != ids[0] || items[0].Attempts != 1 || items[0].LastError != "exit status 1" ||
		!items[0].NextAttempt.Equal(t0.Add(time.Minute)) || string(items[0].Payload) != `{"k":"action"}` {
		t.Fatalf("pending = %+v", items)
	}
	c, err := s.CountOutbox()
	if err != nil {
		t.Fatal(err)
	}
	if !c.OldestPending.Equal(t0) {
		t.Errorf("oldest pending %v, want %v", c.OldestPending, t0)
	}
	c.OldestPending = time.Time{}
	if c != (OutboxCounts{Pending: 1, Failed: 1, GaveUp: 1}) {
		t.Fatalf("counts = %+v", c)
	}
}

// The database and its WAL files are readable by their owner only: they
// hold log lines and the ban list.
func TestDatabaseFilesAreCreatedOwnerOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "mailjail.db")
	s, err := Open(path, Options{Durable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Update(context.Background(), func(tx *Tx) error { return tx.SetMeta("k", "v") }); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if m := fi.Mode().Perm(); m != 0o600 {
			t.Errorf("%s has mode %o, want 600", p, m)
		}
	}
}

// A log-only jail's would-be ban keeps its flag through every query that
// returns bans (escalation and recidive read it to skip such bans), and is
// no map entry.
func TestLogOnlyBanFlag(t *testing.T) {
	s := open(t)
	a := netip.MustParsePrefix("198.51.100.23/32")
	b := netip.MustParsePrefix("198.51.100.24/32")
	if err := s.Update(context.Background(), func(tx *Tx) error {
		if _, err := tx.AddBan(Ban{Jail: "try", Prefix: a, Since: t0, Until: t0.Add(time.Hour), LogOnly: true}); err != nil {
			return err
		}
		_, err := tx.AddBan(Ban{Jail: "real", Prefix: b, Since: t0, Until: t0.Add(time.Hour)})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	flags := func(name string, bans []Ban, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, x := range bans {
			if x.LogOnly != (x.Jail == "try") {
				t.Errorf("%s: ban %s in %s has LogOnly = %v", name, x.Prefix, x.Jail, x.LogOnly)
			}
		}
	}
	active, err := s.ActiveBans()
	flags("ActiveBans", active, err)
	since, err := s.BansSince(t0)
	flags("BansSince", since, err)
	hist, err := s.BanHistory(a, 10)
	flags("BanHistory", hist, err)
	if len(active) != 2 || len(since) != 2 || len(hist) != 1 {
		t.Fatalf("active %d, since %d, history %d bans; want 2, 2, 1", len(active), len(since), len(hist))
	}
	if n, err := s.BannedPrefixes(); err != nil || n != 1 {
		t.Errorf("BannedPrefixes = %d, %v; want 1 (the would-be ban is no map entry)", n, err)
	}
}
