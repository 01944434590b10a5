package daemon

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/control"
	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/internal/testutil"
)

// runDaemon runs the daemon on cfg until the test ends.
func runDaemon(t testing.TB, cfg *config.Config) {
	t.Helper()
	runDaemonWith(t, cfg, Options{})
}

func shortDir(t testing.TB) string {
	dir, err := os.MkdirTemp("", "mjg") // short: unix socket path limit
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// waitServing waits until the daemon answers on its socket.
func waitServing(t testing.TB, cfg *config.Config) {
	t.Helper()
	testutil.Eventually(t, 15*time.Second, "the daemon to answer", func() bool {
		resp, err := control.Call(context.Background(), cfg.Global.Socket, control.OpStatus, control.Request{})
		return err == nil && resp.OK
	})
}

// status asks the daemon, failing the test if it takes longer than a
// responsive daemon would.
func status(t testing.TB, cfg *config.Config) *control.Status {
	t.Helper()
	s, err := tryStatus(cfg)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	return s
}

// tryStatus is status for a daemon that may not listen yet.
func tryStatus(cfg *config.Config) (*control.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), testutil.Scale(3*time.Second))
	defer cancel()
	resp, err := control.Call(ctx, cfg.Global.Socket, control.OpStatus, control.Request{})
	if err == nil && resp.Status == nil {
		err = fmt.Errorf("no status in %+v", resp)
	}
	if err != nil {
		return nil, err
	}
	return resp.Status, nil
}

// sqlOn runs SQL on the daemon's database beside it, as a full disk would
// be simulated: triggers that make writes fail.
func sqlOn(t *testing.T, path, q string) {
	t.Helper()
	st, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Exec(q); err != nil {
		t.Fatal(err)
	}
}

const failWrites = `CREATE TABLE IF NOT EXISTS fail(x);
	CREATE TRIGGER no_strikes BEFORE INSERT ON strikes BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END;
	CREATE TRIGGER no_bans BEFORE INSERT ON bans BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END;
	CREATE TRIGGER no_lift BEFORE UPDATE ON bans BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END;`

const healWrites = `DROP TRIGGER no_strikes; DROP TRIGGER no_bans; DROP TRIGGER no_lift;`

// While the database cannot be written the socket stays responsive:
// status says why, a ban is answered as failed at once and is never
// applied later; the events read meanwhile are all counted afterwards.
func TestSocketAnswersWhileTheDatabaseCannotBeWritten(t *testing.T) {
	dir := shortDir(t)
	cfg := testConfig(t, dir, "maxretry = 100\n")
	logPath := cfg.Jails[0].LogPath[0]
	if err := os.WriteFile(logPath, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	runDaemon(t, cfg)
	waitServing(t, cfg)
	sqlOn(t, cfg.Global.Database, failWrites)
	f, _ := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(eventLine("198.51.100.70") + eventLine("198.51.100.70"))
	f.Close()
	testutil.Eventually(t, 15*time.Second, "status to say degraded", func() bool {
		return strings.Contains(status(t, cfg).Degraded, "disk is full")
	})
	ctx, cancel := context.WithTimeout(context.Background(), testutil.Scale(3*time.Second))
	defer cancel()
	resp, err := control.Call(ctx, cfg.Global.Socket, control.OpBan, control.Request{Addrs: []string{"203.0.113.80"}})
	if err != nil || resp.OK || resp.Code != control.ExitUnreachable {
		t.Fatalf("ban while the disk is full: %+v, %v", resp, err)
	}
	sqlOn(t, cfg.Global.Database, healWrites)
	testutil.Eventually(t, 15*time.Second, "both strikes stored and degraded cleared", func() bool {
		s := status(t, cfg)
		return s.Degraded == "" && s.Jails[0].StrikesStored == 2
	})
	if s := status(t, cfg); s.MapEntries != 0 {
		t.Fatalf("the ban answered as failed was applied later: %d map entries", s.MapEntries)
	}
}

// A database that cannot be written at start does not stop the start:
// the old map stays in force, status says why, and once the database
// takes writes again the daemon takes over and lifts ended bans.
func TestStartDegradedWhileTheDatabaseCannotBeWritten(t *testing.T) {
	dir := shortDir(t)
	cfg := testConfig(t, dir, "")
	if err := os.WriteFile(cfg.Jails[0].LogPath[0], nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// A ban that ended while the daemon was down, and the map it wrote.
	past := time.Now().Add(-2 * time.Hour)
	sqlOn(t, cfg.Global.Database, `INSERT INTO bans (jail, addr, since, until) VALUES ('rl', '198.51.100.71', `+
		itoa(past.UnixNano())+`, `+itoa(past.Add(time.Hour).UnixNano())+`);
		INSERT INTO meta (key, value) VALUES ('map_adopted:`+cfg.Global.MapFile+`', 'x');`)
	oldMap := "198.51.100.71\n"
	if err := os.WriteFile(cfg.Global.MapFile, []byte(oldMap), 0o644); err != nil {
		t.Fatal(err)
	}
	sqlOn(t, cfg.Global.Database, failWrites)
	runDaemon(t, cfg)
	testutil.Eventually(t, 15*time.Second, "a degraded status", func() bool {
		s, err := tryStatus(cfg)
		return err == nil && strings.Contains(s.Degraded, "disk is full")
	})
	if data, _ := os.ReadFile(cfg.Global.MapFile); string(data) != oldMap {
		t.Fatalf("map changed while degraded: %q", data)
	}
	sqlOn(t, cfg.Global.Database, healWrites)
	testutil.Eventually(t, 15*time.Second, "the ended ban lifted", func() bool {
		return countMap(t, cfg.Global.MapFile) == 0 && status(t, cfg).Degraded == ""
	})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// An earlier ban counts once toward escalation after a restart: the next
// ban of the address is its second offense, not its third.
func TestRestartCountsEarlierBansOnceForEscalation(t *testing.T) {
	dir := shortDir(t)
	cfg := testConfig(t, dir, "maxretry = 1\nbantime = \"1h\"\nbantime_factor = 2\n")
	if err := os.WriteFile(cfg.Jails[0].LogPath[0], nil, 0o644); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-3 * time.Hour)
	sqlOn(t, cfg.Global.Database, `INSERT INTO bans (jail, addr, since, until, lifted, lifted_by, offense) VALUES ('rl', '198.51.100.72', `+
		itoa(past.UnixNano())+`, `+itoa(past.Add(time.Hour).UnixNano())+`, `+itoa(past.Add(time.Hour).UnixNano())+`, 'expired', 1);`)
	runDaemon(t, cfg)
	waitServing(t, cfg)
	f, _ := os.OpenFile(cfg.Jails[0].LogPath[0], os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(eventLine("198.51.100.72"))
	f.Close()
	st, err := store.Open(cfg.Global.Database, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var bans []store.Ban
	testutil.Eventually(t, 15*time.Second, "the second ban", func() bool {
		bans, _ = st.ActiveBans()
		return len(bans) == 1
	})
	if b := bans[0]; b.Offense != 2 || b.Until.Sub(b.Since) != 2*time.Hour {
		t.Fatalf("ban after a restart: offense %d for %v, want offense 2 for 2h", b.Offense, b.Until.Sub(b.Since))
	}
}
