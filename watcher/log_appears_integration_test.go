package watcher

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"
)

// A file that does not exist yet is read from its start once it appears,
// found through the directory watch alone: the test never kicks the waker.
func TestMissingFileAppearsViaNotify(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "later.log")
	opt := testOptions(newFakeClock())
	opt.NoNotify = false
	h := startFollow(t, []string{path}, nil, opt)
	w := newLogWriter(6, "later")
	fd := appendFile(t, path)
	w.write(t, fd, 500)
	fd.Close()
	h.c.waitLines(t, 500, "lines of the new file")
	sameLines(t, w.lines(), h.c.snapshot())
}

// Without notifications the follower waits for its waker: nothing happens
// between wake-ups (no busy loop), and one wake-up is enough to catch up.
// In a synctest bubble, synctest.Wait returns only once the follower is
// blocked, so "nothing happens" needs no waiting for a while.
func TestMissingFileNoBusyLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "sub", "later.log") // directory missing too
		h := startFollow(t, []string{path}, nil, testOptions(newFakeClock()))
		h.sync(t) // caught up: nothing to read

		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		w := newLogWriter(7, "nobusy")
		fd := appendFile(t, path)
		w.write(t, fd, 100)
		fd.Close()
		calls := h.wk.Calls()
		synctest.Wait()
		if n := h.c.count(); n != 0 || h.wk.Calls() != calls {
			t.Fatalf("without a wake-up: %d lines read, %d more looks", n, h.wk.Calls()-calls)
		}
		h.sync(t)
		sameLines(t, w.lines(), h.c.snapshot())
	})
}

// Without a Waker the follower polls with a ticker on Options.Clock: with
// the fake clock it ticks only when the test advances it, however long the
// interval. (The one test without a TestWaker: it tests the default.)
func TestPollTickerRunsOnTheClock(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "polled.log")
	clk := newFakeClock()
	opt := testOptions(clk)
	opt.PollInterval = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	f, err := Follow(ctx, []string{path}, nil, opt)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	c := collect(f)
	t.Cleanup(func() {
		cancel()
		<-c.closed
	})
	if !clk.BlockUntil(1, testDeadline) {
		t.Fatal("no poll ticker on Options.Clock")
	}
	w := newLogWriter(16, "polled")
	fd := appendFile(t, path)
	w.write(t, fd, 10)
	fd.Close()
	clk.Advance(time.Hour)
	c.waitLines(t, 10, "lines found by the poll")
	sameLines(t, w.lines(), c.snapshot())
}
