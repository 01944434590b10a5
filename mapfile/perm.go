package mapfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
)

// keepGroup gives the pending file f the group of the map at path, if
// there is one. Its mode is kept by renameio already.
func keepGroup(f *os.File, path string) error {
	gid, ok, err := existingGroup(path)
	if err != nil || !ok {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Gid == gid {
		return nil
	}
	if err := f.Chown(-1, int(gid)); err != nil {
		return groupError(path, gid, err)
	}
	return nil
}

// existingGroup is the group of the regular file at path; ok is false when
// there is none (renameio replaces anything else without looking at it).
func existingGroup(path string) (gid uint32, ok bool, err error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	st, isUnix := fi.Sys().(*syscall.Stat_t)
	if !fi.Mode().IsRegular() || !isUnix {
		return 0, false, nil
	}
	return st.Gid, true, nil
}

// ErrGroup means a rewrite could not give the new map the old one's group.
var ErrGroup = errors.New("cannot keep the map's group")

func groupError(path string, gid uint32, err error) error {
	g := GroupName(gid)
	return fmt.Errorf("%w %s (%w): mailjail runs as uid %d, which is not root and not in group %s; "+
		"add its user to group %s, or chgrp %s to a group it is in", ErrGroup, g, err, os.Geteuid(), g, g, path)
}

// GroupName is the name of gid, or the number when it has none.
func GroupName(gid uint32) string {
	id := strconv.FormatUint(uint64(gid), 10)
	if g, err := user.LookupGroupId(id); err == nil {
		return g.Name
	}
	return id
}

func userName(uid uint32) string {
	id := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(id); err == nil {
		return u.Username
	}
	return id
}

// CheckWritable reports whether Write can replace the map at path while
// keeping its group and mode, by doing what Write does: it creates a
// temporary file beside the map (in the nearest directory that exists, as
// Write creates the rest), gives it the map's group, and removes it. The
// map itself is not touched. The error says what to change; `check` and
// the daemon's start call it so that a map that would lose its group
// (and with it rspamd's access) stops them instead of every later write.
func CheckWritable(path string) error {
	gid, exists, err := existingGroup(path)
	if err != nil {
		return fmt.Errorf("map %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	for {
		if _, err := os.Stat(dir); err == nil || filepath.Dir(dir) == dir {
			break
		}
		dir = filepath.Dir(dir)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".check-*")
	if err != nil {
		return fmt.Errorf("map %s: cannot create files in %s: %w", path, dir, err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if !exists {
		return nil
	}
	if err := f.Chown(-1, int(gid)); err != nil {
		return fmt.Errorf("map %s: %w", path, groupError(path, gid, err))
	}
	return nil
}

// RspamdUser is the account Debian's rspamd package runs its workers as;
// the workers are what read the map.
const RspamdUser = "_rspamd"

// Reader is an account that has to open the map.
type Reader struct {
	User string
	UID  uint32
	GIDs []uint32 // the primary group and the supplementary ones
}

// LookupReader finds the account name (e.g. RspamdUser) and its groups. A
// user.UnknownUserError means there is no such account here, so whether
// it can read the map cannot be known.
func LookupReader(name string) (Reader, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return Reader{}, fmt.Errorf("map reader %s: %w", name, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return Reader{}, fmt.Errorf("map reader %s: uid %q: %w", name, u.Uid, err)
	}
	r := Reader{User: u.Username, UID: uint32(uid)}
	ids, err := u.GroupIds()
	if err != nil {
		ids = []string{u.Gid}
	}
	for _, id := range append([]string{u.Gid}, ids...) {
		if g, err := strconv.ParseUint(id, 10, 32); err == nil && !slices.Contains(r.GIDs, uint32(g)) {
			r.GIDs = append(r.GIDs, uint32(g))
		}
	}
	return r, nil
}

// CanOpen reports whether r can open the file at path for reading: nil,
// or an error naming the file or directory in the way with its owner,
// group and mode (for `status` and the log: "rspamd cannot read the map"
// is a silent failure otherwise, every ban lifted). It checks the mode
// bits of the file and the search bit of every directory above it, as
// the kernel does; ACLs and capabilities are not considered (root reads
// anything).
func (r Reader) CanOpen(path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("map %s: %w", path, err)
	}
	var dirs []string
	for d := filepath.Dir(abs); ; d = filepath.Dir(d) {
		dirs = append(dirs, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	for _, d := range slices.Backward(dirs) {
		if err := r.may(d, 1, "search directory"); err != nil {
			return fmt.Errorf("map %s: %w", path, err)
		}
	}
	if err := r.may(abs, 4, "read"); err != nil {
		return fmt.Errorf("map %s: %w", path, err)
	}
	return nil
}

// may checks one permission bit (4 read, 1 search) of path for r.
func (r Reader) may(path string, bit fs.FileMode, what string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || r.UID == 0 {
		return nil
	}
	perm := fi.Mode().Perm()
	var allowed bool
	switch {
	case st.Uid == r.UID:
		allowed = perm&(bit<<6) != 0
	case slices.Contains(r.GIDs, st.Gid):
		allowed = perm&(bit<<3) != 0
	default:
		allowed = perm&bit != 0
	}
	if allowed {
		return nil
	}
	return fmt.Errorf("user %s cannot %s %s (%s:%s %04o)", r.User, what, path,
		userName(st.Uid), GroupName(st.Gid), perm)
}
