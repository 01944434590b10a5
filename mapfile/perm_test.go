package mapfile

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/mailjail/mailjail/internal/testutil"
)

// openDir is a fresh directory that other users may search (t.TempDir's
// parent is 0700), removed at the end of the test.
func openDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "mapfile-perm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// otherGroup is a group this process may give its files other than its
// own: any group as root (adm where it exists), else a supplementary one.
func otherGroup(t *testing.T) uint32 {
	t.Helper()
	if os.Geteuid() == 0 {
		if g, err := user.LookupGroup("adm"); err == nil {
			id, _ := strconv.Atoi(g.Gid)
			return uint32(id)
		}
		return 4242 // root may use a gid without a name, too
	}
	groups, _ := os.Getgroups()
	for _, g := range groups {
		if g != os.Getegid() {
			return uint32(g)
		}
	}
	t.Skip("not root and in no group but its own: no other group to give the map")
	return 0
}

func statOf(t *testing.T, path string) (os.FileMode, uint32) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm(), fi.Sys().(*syscall.Stat_t).Gid
}

// `chgrp _rspamd MAP; chmod 0640 MAP; mailjail ban` left the map
// root:root 0640, which rspamd's workers (user _rspamd) cannot open: every
// ban was lifted. A rewrite keeps the group and the mode.
func TestMapRewriteKeepsGroup(t *testing.T) {
	gid := otherGroup(t)
	one := []Entry{{Prefix: netip.MustParsePrefix("198.18.91.1/32"), Jail: "manual"}}
	for _, mode := range []os.FileMode{0o640, 0o600, 0o604, 0o664} {
		path := filepath.Join(openDir(t), "ip.map")
		if err := Write(path, nil, t0); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(path, -1, int(gid)); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		if err := CheckWritable(path); err != nil {
			t.Errorf("CheckWritable: %v", err)
		}
		if err := Write(path, one, t0); err != nil {
			t.Fatal(err)
		}
		if m, g := statOf(t, path); m != mode || g != gid {
			t.Errorf("after a rewrite: mode %04o group %d, want %04o group %d", m, g, mode, gid)
		}
		if got, err := os.ReadFile(path); err != nil || !bytes.Contains(got, []byte("198.18.91.1 ")) {
			t.Errorf("rewritten map %q, %v", got, err)
		}
	}
}

// A process that is not root and not in the map's group cannot keep the
// group: the write fails with an error that says so and the old map stays
// in force as it was (a map rspamd cannot open would lift every ban);
// CheckWritable says the same before any write. Run as nobody in a
// subprocess, since root may give a file any group.
func TestMapWriteFailsWhenGroupCannotBeKept(t *testing.T) {
	if path := os.Getenv(testutil.AsNobodyEnv); path != "" {
		asNobody(t, path)
		return
	}
	gid := otherGroup(t)
	dir := openDir(t)
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "ip.map")
	if err := Write(path, []Entry{{Prefix: netip.MustParsePrefix("192.0.2.1/32"), Jail: "j"}}, t0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, 0, int(gid)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	testutil.RerunAsNobody(t, "TestMapWriteFailsWhenGroupCannotBeKept", path)
	after, _ := os.ReadFile(path)
	if m, g := statOf(t, path); m != 0o640 || g != gid || !bytes.Equal(before, after) {
		t.Errorf("map changed: mode %04o group %d (want 0640, %d)\n%s", m, g, gid, after)
	}
}

func asNobody(t *testing.T, path string) {
	g := GroupName(func() uint32 { _, g := statOf(t, path); return g }())
	want := "cannot keep the map's group " + g
	if err := Write(path, nil, t0); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "write map "+path) {
		t.Errorf("Write as nobody: %v, want an error with %q", err, want)
	}
	if err := CheckWritable(path); !errors.Is(err, ErrGroup) || !strings.Contains(err.Error(), want) {
		t.Errorf("CheckWritable as nobody: %v, want an error with %q", err, want)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".ip.map*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestCheckWritable(t *testing.T) {
	dir := openDir(t)
	if err := CheckWritable(filepath.Join(dir, "maps", "sub", "ip.map")); err != nil {
		t.Errorf("map in directories Write would create: %v", err)
	}
	path := filepath.Join(dir, "ip.map")
	if err := Write(path, nil, t0); err != nil {
		t.Fatal(err)
	}
	if err := CheckWritable(path); err != nil {
		t.Errorf("own map: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) != 0 {
		t.Errorf("CheckWritable left %v", left)
	}
	if os.Geteuid() != 0 {
		ro := openDir(t)
		os.Chmod(ro, 0o555)
		if err := CheckWritable(filepath.Join(ro, "ip.map")); err == nil || !strings.Contains(err.Error(), "cannot create files in "+ro) {
			t.Errorf("read-only directory: %v", err)
		}
	}
}

func TestReaderCanOpen(t *testing.T) {
	uid, gid := uint32(os.Geteuid()), uint32(os.Getegid())
	const stranger, strangerGroup = 54321, 54322
	if uid == 0 {
		uid = 54320 // a reader with uid 0 reads anything: give the files another owner
	}
	for _, tc := range []struct {
		name          string
		dirMode, mode os.FileMode
		r             Reader
		wantErr       string
	}{
		{"group member, 0640", 0o755, 0o640, Reader{User: "r", UID: stranger, GIDs: []uint32{strangerGroup, gid}}, ""},
		{"not in the group, 0640", 0o755, 0o640, Reader{User: "r", UID: stranger, GIDs: []uint32{strangerGroup}}, "user r cannot read"},
		{"anyone, 0644", 0o755, 0o644, Reader{User: "r", UID: stranger, GIDs: []uint32{strangerGroup}}, ""},
		{"owner, 0400", 0o755, 0o400, Reader{User: "r", UID: uid, GIDs: []uint32{strangerGroup}}, ""},
		{"owner, group bits only", 0o755, 0o040, Reader{User: "r", UID: uid, GIDs: []uint32{gid}}, "user r cannot read"},
		{"directory 0750, not in the group", 0o750, 0o644, Reader{User: "r", UID: stranger, GIDs: []uint32{strangerGroup}}, "user r cannot search directory"},
		{"directory 0750, group member", 0o750, 0o644, Reader{User: "r", UID: stranger, GIDs: []uint32{gid}}, ""},
		{"root", 0o700, 0o000, Reader{User: "root", UID: 0}, ""},
	} {
		dir := filepath.Join(openDir(t), "maps")
		if err := os.Mkdir(dir, tc.dirMode); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "ip.map")
		if err := os.WriteFile(path, nil, tc.mode); err != nil {
			t.Fatal(err)
		}
		setMode(t, dir, uid, gid, tc.dirMode)
		setMode(t, path, uid, gid, tc.mode)
		err := tc.r.CanOpen(path)
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.wantErr)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "map "+path+": ") {
			t.Errorf("%s: error %q does not name the map first", tc.name, err)
		}
	}
}

// setMode gives path the owner uid (as root; else it is ours already),
// the group gid and mode, past the umask.
func setMode(t *testing.T, path string, uid, gid uint32, mode os.FileMode) {
	t.Helper()
	if os.Geteuid() == 0 {
		if err := os.Chown(path, int(uid), int(gid)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func TestLookupReader(t *testing.T) {
	r, err := LookupReader("root")
	if err != nil || r.UID != 0 || !slices.Contains(r.GIDs, 0) {
		t.Errorf("root: %+v, %v", r, err)
	}
	_, err = LookupReader("no-such-user-mailjail")
	var unknown user.UnknownUserError
	if !errors.As(err, &unknown) {
		t.Errorf("unknown user: %v, want a user.UnknownUserError", err)
	}
}
