package watcher

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A file that does not exist yet is read from its start once it appears,
// found through the directory watch alone (the poll never fires here).
func TestMissingFileAppearsViaNotify(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "later.log")
	clk := newFakeClock()
	opt := testOptions(clk)
	opt.Waker = make(manualWaker) // never wakes: only fsnotify can
	_, c := startFollow(t, []string{path}, nil, opt)
	w := newLogWriter(6, "later")
	fd := appendFile(t, path)
	w.write(t, fd, 500)
	fd.Close()
	waitFor(t, 5*time.Second, "lines of the new file", func() bool { return c.count() >= 500 }, nil)
	sameLines(t, w.lines(), c.snapshot())
}

// Without notifications the follower waits for its waker: nothing happens
// between wake-ups (no busy loop), and one wake-up is enough to catch up.
func TestMissingFileNoBusyLoop(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "later.log") // directory missing too
	wk, idle, c := startManual(t, path)
	<-idle // caught up: nothing to read

	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	w := newLogWriter(7, "nobusy")
	fd := appendFile(t, path)
	w.write(t, fd, 100)
	fd.Close()
	select {
	case <-idle:
		t.Fatal("follower swept again without being woken")
	case <-time.After(50 * time.Millisecond):
	}
	if c.count() != 0 {
		t.Fatal("lines read without a wake-up")
	}
	wk.kick()
	waitFor(t, 5*time.Second, "lines after one wake-up", func() bool { return c.count() >= 100 }, nil)
	sameLines(t, w.lines(), c.snapshot())
}
