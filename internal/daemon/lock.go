package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/mailjail/mailjail/internal/core"
)

// Lock is an exclusive flock on a file beside the database. The daemon
// holds it for its whole life; a CLI that changes state without a daemon
// takes it for the length of the change. So the database and the map have
// one writer at a time, and a CLI can tell a running daemon from a dead one.
type Lock struct {
	f *os.File
}

// ErrLocked means another process holds the lock.
var ErrLocked = errors.New("locked by another mailjail process")

// LockPath is the lock file for a database.
func LockPath(database string) string { return database + ".lock" }

// TryLock takes the lock without waiting.
func TryLock(database string) (*Lock, error) {
	return lock(database, syscall.LOCK_EX|syscall.LOCK_NB)
}

// WaitLock takes the lock, waiting up to timeout (by clock) for another
// CLI to finish.
func WaitLock(database string, timeout time.Duration, clock core.Clock) (*Lock, error) {
	deadline := clock.Now().Add(timeout)
	for {
		l, err := TryLock(database)
		if !errors.Is(err, ErrLocked) || clock.Now().After(deadline) {
			return l, err
		}
		core.Sleep(clock, 20*time.Millisecond, nil)
	}
}

func lock(database string, how int) (*Lock, error) {
	path := LockPath(database)
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("lock %s: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return &Lock{f: f}, nil
}

// Unlock releases the lock.
func (l *Lock) Unlock() error {
	if l == nil {
		return nil
	}
	return l.f.Close()
}
