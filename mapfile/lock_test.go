package mapfile

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// A second daemon with another database but the same map took the first
// one's entries over as its own bans. One owner per map: the second lock
// fails at once, naming the lock file and its holder. flock conflicts
// between two open file descriptions of one process as between processes.
func TestMapLockAllowsOneOwner(t *testing.T) {
	path := filepath.Join(t.TempDir(), "maps", "ip.map")
	first, err := TryLock(path)
	if err != nil {
		t.Fatal(err)
	}
	if first.Path() != path+".lock" {
		t.Errorf("lock file %s, want %s.lock beside the map", first.Path(), path)
	}
	_, err = TryLock(path)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second lock: %v, want ErrLocked", err)
	}
	for _, want := range []string{"lock map " + path, path + ".lock", "pid " + strconv.Itoa(os.Getpid())} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	// The map itself is replaced at every write; the lock is not affected.
	if err := Write(path, nil, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := TryLock(path); !errors.Is(err, ErrLocked) {
		t.Fatalf("after a map write: %v, want ErrLocked", err)
	}
	if err := first.Unlock(); err != nil {
		t.Fatal(err)
	}
	second, err := TryLock(path)
	if err != nil {
		t.Fatalf("after unlock: %v", err)
	}
	second.Unlock()
	var none *Lock
	if err := none.Unlock(); err != nil {
		t.Errorf("nil lock: %v", err)
	}
}

func TestMapLockErrorsNameThePath(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "file")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(blocker, "ip.map") // a directory that is a file
	if _, err := TryLock(path); err == nil || errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "lock map "+path) {
		t.Errorf("got %v, want an error naming %s", err, path)
	}
}
