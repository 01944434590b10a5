package postfixtable

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/enforce"
	"github.com/mailjail/mailjail/internal/enforce/enforcetest"
	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite golden files")

var t0 = time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)

// requirePostmap skips a test that needs the real postmap when it is not
// installed, except under MAILJAIL_E2E=1 (CI), where that is a failure.
func requirePostmap(tb testing.TB) {
	tb.Helper()
	if _, err := exec.LookPath("postmap"); err != nil {
		if os.Getenv("MAILJAIL_E2E") == "1" {
			tb.Fatalf("postmap not installed (MAILJAIL_E2E=1): %v", err)
		}
		tb.Skip("postmap not installed (apt-get install postfix); skipping the real-postmap test")
	}
}

func ban(jail, prefix string, until time.Time) store.Ban {
	return store.Ban{Jail: jail, Prefix: netip.MustParsePrefix(prefix), Since: t0.Add(-time.Hour), Until: until}
}

func state(bans ...store.Ban) enforce.State { return enforce.State{Bans: bans, At: t0} }

func TestRenderGolden(t *testing.T) {
	later := t0.Add(time.Hour)
	mixed := []store.Ban{
		ban("rspamd", "198.51.100.7/32", later),
		ban("manual", "198.51.100.7/32", time.Time{}), // the same address from two jails: one line
		ban("manual", "198.51.96.0/20", time.Time{}),  // expanded into 16 /24 keys
		ban("rspamd", "198.51.100.0/24", later),       // its key is one of the /20's
		ban("rspamd", "203.0.113.9/32", t0),           // ended at At: left out
		ban("rspamd", "2001:db8:1:2::/64", later),
		ban("rspamd", "2001:db8::/64", later),
		ban("rspamd", "2001:db8:5::7/128", later),
		ban("manual", "10.0.0.0/8", time.Time{}),
	}
	tests := []struct {
		name string
		typ  string
		bans []store.Ban
		msg  string
	}{
		{name: "hash-empty", typ: TypeHash},
		{name: "hash-mixed", typ: TypeHash, bans: mixed},
		{name: "cidr-empty", typ: TypeCIDR},
		{name: "cidr-mixed", typ: TypeCIDR, bans: mixed, msg: "5.7.1 go away"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tb := New(Config{Path: "/etc/postfix/mailjail/access", Type: tc.typ, Message: tc.msg})
			got, _, err := tb.content(state(tc.bans...))
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tc.name+".table")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("render differs from %s:\n%s", path, got)
			}
		})
	}
}

// newTable makes a table of type typ in a fresh directory.
func newTable(t testing.TB, typ string, c Config) (*Table, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "access")
	c.Path, c.Type = path, typ
	return New(c), path
}

// query is `postmap -q KEY hash:PATH`: the value and whether it was found.
func query(t testing.TB, path, key string) (string, bool) {
	t.Helper()
	out, err := exec.Command("postmap", "-q", key, "hash:"+path).Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 1 {
		return "", false
	}
	if err != nil {
		t.Fatalf("postmap -q %s: %v", key, err)
	}
	return strings.TrimSpace(string(out)), true
}

func TestHashRoundTripWithRealPostmap(t *testing.T) {
	requirePostmap(t)
	tb, path := newTable(t, TypeHash, Config{})
	ctx := context.Background()
	s := state(ban("j", "198.51.100.7/32", t0.Add(time.Hour)), ban("j", "192.0.2.0/23", time.Time{}), ban("j", "2001:db8::/64", time.Time{}))
	if err := tb.Sync(ctx, s); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"198.51.100.7", "192.0.2", "192.0.3", "2001:db8:0:0", "2001:db8:"} {
		if v, ok := query(t, path, k); !ok || v != "REJECT banned by mailjail" {
			t.Errorf("postmap -q %s = %q, %v", k, v, ok)
		}
	}
	if got := tb.Entries(); got != 5 {
		t.Errorf("Entries = %d, want 5", got)
	}
	// Unban the address: its key is gone, the others stay.
	if err := tb.Sync(ctx, state(s.Bans[1:]...)); err != nil {
		t.Fatal(err)
	}
	if _, ok := query(t, path, "198.51.100.7"); ok {
		t.Error("unbanned key still found")
	}
	if _, ok := query(t, path, "192.0.3"); !ok {
		t.Error("key of a ban still active lost")
	}
	if leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*")); len(leftovers) > 0 {
		t.Errorf("temporary files left: %q", leftovers)
	}
}

// A failing postmap (here: one that fails after writing half a database)
// leaves the old source and the old .db in place, byte for byte.
func TestFailingPostmapKeepsOldTable(t *testing.T) {
	requirePostmap(t)
	tb, path := newTable(t, TypeHash, Config{})
	ctx := context.Background()
	if err := tb.Sync(ctx, state(ban("j", "198.51.100.7/32", time.Time{}))); err != nil {
		t.Fatal(err)
	}
	src, _ := os.ReadFile(path)
	db, _ := os.ReadFile(path + ".db")
	fake := filepath.Join(t.TempDir(), "postmap")
	script := "#!/bin/sh\nf=${1#hash:}\necho garbage > \"$f.db\"\necho 'postmap: fatal: no space left' >&2\nexit 1\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	bad := New(Config{Path: path, Type: TypeHash, Postmap: fake})
	err := bad.Sync(ctx, state(ban("j", "203.0.113.0/24", time.Time{})))
	if err == nil || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("Sync with a failing postmap: %v; want its stderr in the error", err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, src) {
		t.Error("source changed")
	}
	if got, _ := os.ReadFile(path + ".db"); !bytes.Equal(got, db) {
		t.Error(".db changed")
	}
	if _, ok := query(t, path, "198.51.100.7"); !ok {
		t.Error("old key lost")
	}
	if leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*")); len(leftovers) > 0 {
		t.Errorf("temporary files left: %q", leftovers)
	}
	if bad.Drifted() || bad.Entries() != 0 {
		t.Error("a target that never synced reports drift or entries")
	}
}

func TestUnchangedStateRunsNoPostmap(t *testing.T) {
	requirePostmap(t)
	dir := t.TempDir()
	count := filepath.Join(dir, "count")
	wrapper := filepath.Join(dir, "postmap")
	script := fmt.Sprintf("#!/bin/sh\necho run >> %q\nexec postmap \"$@\"\n", count)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	tb, _ := newTable(t, TypeHash, Config{Postmap: wrapper})
	s := state(ban("j", "198.51.100.7/32", time.Time{}))
	for range 3 {
		if err := tb.Sync(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	if b, _ := os.ReadFile(count); strings.Count(string(b), "run") != 1 {
		t.Errorf("postmap ran %d times for one state, want 1", strings.Count(string(b), "run"))
	}
}

func TestDrifted(t *testing.T) {
	requirePostmap(t)
	ctx := context.Background()
	s := state(ban("j", "198.51.100.7/32", time.Time{}))
	for _, tc := range []struct {
		name  string
		typ   string
		drift func(path string) error
	}{
		{"hash source deleted", TypeHash, func(p string) error { return os.Remove(p) }},
		{"hash db deleted", TypeHash, func(p string) error { return os.Remove(p + ".db") }},
		{"hash db rebuilt", TypeHash, func(p string) error {
			os.WriteFile(p, []byte("192.0.2.1 OK\n"), 0o644)
			return exec.Command("postmap", "hash:"+p).Run()
		}},
		{"hash source edited", TypeHash, func(p string) error { return appendLine(p, "192.0.2.1 OK") }},
		{"cidr deleted", TypeCIDR, func(p string) error { return os.Remove(p) }},
		{"cidr edited", TypeCIDR, func(p string) error { return appendLine(p, "192.0.2.1 OK") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb, path := newTable(t, tc.typ, Config{Reload: []string{"true"}})
			if tb.Drifted() {
				t.Fatal("drifted before the first sync")
			}
			if err := tb.Sync(ctx, s); err != nil {
				t.Fatal(err)
			}
			if tb.Drifted() {
				t.Fatal("drifted right after a sync")
			}
			if err := tc.drift(path); err != nil {
				t.Fatal(err)
			}
			if !tb.Drifted() {
				t.Fatal("drift not noticed")
			}
			// The same state again repairs it, although its bytes did not change.
			if err := tb.Sync(ctx, s); err != nil {
				t.Fatal(err)
			}
			if tb.Drifted() {
				t.Fatal("still drifted after the repair")
			}
			if tc.typ == TypeHash {
				if _, ok := query(t, path, "198.51.100.7"); !ok {
					t.Fatal("repair did not restore the key")
				}
			}
		})
	}
}

func appendLine(path, line string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	// An edit within the same clock tick must still show: size changes.
	_, err = f.WriteString(line + "\n")
	return err
}

// A failed reload is retried by the next Sync of the same state: the file
// is already new, but Postfix has not read it.
func TestCIDRReloadRetriedUntilItSucceeds(t *testing.T) {
	dir := t.TempDir()
	log, ok := filepath.Join(dir, "reloads"), filepath.Join(dir, "ok")
	reload := []string{"sh", "-c", fmt.Sprintf("echo r >> %q; test -e %q || { echo 'postfix: fatal: not running' >&2; exit 1; }", log, ok)}
	tb, path := newTable(t, TypeCIDR, Config{Reload: reload})
	s := state(ban("j", "198.51.100.0/24", time.Time{}), ban("j", "2001:db8::/48", time.Time{}), ban("j", "192.0.2.1/32", time.Time{}))
	err := tb.Sync(context.Background(), s)
	if err == nil || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("Sync with a failing reload: %v", err)
	}
	want := testutil.ReadFile(t, path)
	if !strings.Contains(want, "198.51.100.0/24 REJECT banned by mailjail\n") || !strings.Contains(want, "2001:db8::/48 REJECT") {
		t.Fatalf("table:\n%s", want)
	}
	os.WriteFile(ok, nil, 0o644)
	if err := tb.Sync(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if err := tb.Sync(context.Background(), s); err != nil { // nothing to do now
		t.Fatal(err)
	}
	if n := strings.Count(testutil.ReadFile(t, log), "r"); n != 2 {
		t.Errorf("reload ran %d times, want 2 (failed, retried; none for the unchanged state)", n)
	}
	if tb.Entries() != 3 {
		t.Errorf("Entries = %d, want 3", tb.Entries())
	}
}

// A table Postfix can read only through its group stays so: the source and
// the .db keep their mode and group.
func TestKeepsModeAndGroup(t *testing.T) {
	requirePostmap(t)
	tb, path := newTable(t, TypeHash, Config{})
	ctx := context.Background()
	if err := tb.Sync(ctx, state()); err != nil {
		t.Fatal(err)
	}
	gid := os.Getgid()
	if os.Getuid() == 0 {
		gid = 65534 // nogroup: root can give any group
	}
	for _, p := range []string{path, path + ".db"} {
		if err := os.Chmod(p, 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, -1, gid); err != nil {
			t.Fatal(err)
		}
	}
	if err := tb.Sync(ctx, state(ban("j", "198.51.100.7/32", time.Time{}))); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + ".db"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if g := fi.Sys().(*syscall.Stat_t).Gid; fi.Mode().Perm() != 0o640 || int(g) != gid {
			t.Errorf("%s: mode %v group %d, want 0640 %d", p, fi.Mode().Perm(), g, gid)
		}
	}
}

// A prefix no hash key matches exactly is left out and named; the others
// are written all the same.
func TestInexpressiblePrefixIsNamedOthersWritten(t *testing.T) {
	requirePostmap(t)
	tb, path := newTable(t, TypeHash, Config{})
	err := tb.Sync(context.Background(), state(ban("j", "2001:0:0:5::/64", time.Time{}), ban("j", "198.51.100.7/32", time.Time{})))
	if err == nil || !strings.Contains(err.Error(), "2001:0:0:5::/64") {
		t.Fatalf("Sync: %v; want an error naming 2001:0:0:5::/64", err)
	}
	if _, ok := query(t, path, "198.51.100.7"); !ok {
		t.Error("the expressible ban was not written")
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		c   Config
		err string
	}{
		{Config{Path: "/t", Type: "hash"}, ""},
		{Config{Path: "/t", Type: "cidr", Message: "5.7.1 banned; see https://example.org"}, ""},
		{Config{Path: "/t", Type: "lmdb"}, "type"},
		{Config{Type: "hash"}, "path"},
		{Config{Path: "/t", Type: "hash", Message: "x\n0.0.0.0/0 OK"}, "control character"},
		{Config{Path: "/t", Type: "cidr", Reload: []string{""}}, "reload"},
	} {
		err := tc.c.Validate()
		if (tc.err == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("Validate(%+v) = %v, want %q", tc.c, err, tc.err)
		}
		if tc.err != "" {
			if err := New(tc.c).Sync(context.Background(), state()); err == nil {
				t.Errorf("Sync with %+v succeeded", tc.c)
			}
		}
	}
}

func TestName(t *testing.T) {
	if got := New(Config{Path: "/etc/postfix/mailjail/access", Type: "hash"}).Name(); got != "postfix:hash:/etc/postfix/mailjail/access" {
		t.Errorf("Name = %q", got)
	}
}

// The benchmarks measure both table types as enforcetest measures every
// target: one more ban over 1,000, commit → enforced, and 10,000 bans
// (one write and one postmap for hash, one write and one reload for
// cidr: a reload command of "true" here, `postfix reload` costs 50–90 ms
// more).
func benchTypes(b *testing.B, run func(b *testing.B, newTarget func() enforce.Target)) {
	for _, typ := range []string{TypeHash, TypeCIDR} {
		b.Run(typ, func(b *testing.B) {
			if typ == TypeHash {
				requirePostmap(b)
			}
			run(b, func() enforce.Target { tb, _ := newTable(b, typ, Config{Reload: []string{"true"}}); return tb })
		})
	}
}

func BenchmarkSync1(b *testing.B) {
	benchTypes(b, func(b *testing.B, nt func() enforce.Target) { enforcetest.Sync1(b, nt(), 1000) })
}

func BenchmarkEnforced(b *testing.B) {
	benchTypes(b, func(b *testing.B, nt func() enforce.Target) { enforcetest.Enforced(b, nt(), 1000) })
}

func BenchmarkBurst10k(b *testing.B) {
	benchTypes(b, func(b *testing.B, nt func() enforce.Target) { enforcetest.Burst(b, nt, 10000) })
}

func BenchmarkBurstEnforced10k(b *testing.B) {
	benchTypes(b, func(b *testing.B, nt func() enforce.Target) { enforcetest.BurstEnforced(b, nt, 10000, 100) })
}
