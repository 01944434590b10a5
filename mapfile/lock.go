package mapfile

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// Lock is an exclusive flock on a file beside the map. One process owns a
// map at a time: a second daemon (another database, the same map) would
// otherwise take the first one's bans over as its own and the two would
// rewrite the map in turn. The lock cannot be on the map itself, which is
// replaced by a rename at every write; the lock file is never removed
// (removing it would let two processes lock two different inodes).
type Lock struct {
	f    *os.File
	path string
}

// ErrLocked means another process holds the map's lock.
var ErrLocked = errors.New("map in use by another process")

// LockPath is the lock file of the map at path.
func LockPath(path string) string { return path + ".lock" }

// TryLock takes the lock of the map at path without waiting. When another
// process holds it the error wraps ErrLocked and names the lock file and
// the holder's pid (written into the lock file by its holder).
func TryLock(path string) (*Lock, error) {
	lp := LockPath(path)
	if err := os.MkdirAll(filepath.Dir(lp), 0o755); err != nil {
		return nil, fmt.Errorf("lock map %s: %w", path, err)
	}
	f, err := os.OpenFile(lp, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock map %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder := readHolder(f)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("lock map %s: %w (%s holds %s): one mailjail per map file", path, ErrLocked, holder, lp)
		}
		return nil, fmt.Errorf("lock map %s: flock %s: %w", path, lp, err)
	}
	// The pid only names the holder in the error above; the flock is what
	// excludes, so a stale pid after a crash does no harm.
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Lock{f: f, path: lp}, nil
}

func readHolder(f *os.File) string {
	buf := make([]byte, 32)
	n, _ := f.ReadAt(buf, 0)
	if pid, err := strconv.Atoi(string(bytes.TrimSpace(buf[:n]))); err == nil && pid > 0 {
		return "pid " + strconv.Itoa(pid)
	}
	return "another process"
}

// Path is the lock file.
func (l *Lock) Path() string { return l.path }

// Unlock releases the lock. The pid stays in the file; it is overwritten
// by the next holder.
func (l *Lock) Unlock() error {
	if l == nil {
		return nil
	}
	return l.f.Close()
}
