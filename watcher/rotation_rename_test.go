package watcher

import (
	"os"
	"testing"
	"time"
)

// logrotate "create" mode followed by the writer reopening later (rspamd on
// SIGUSR1): lines written to the old inode after the rename, and even after
// the new file exists, must all arrive, before the new file's lines.
func TestRotationRenameFinishesOldFile(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/rspamd.log"
	fd := appendFile(t, path)
	clk := newFakeClock()
	f, c := startFollow(t, []string{path}, nil, testOptions(clk))
	w := newLogWriter(1, "rename")

	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 6 {
			w.write(t, fd, 1500)
			shiftRotated(t, path)
			if err := os.Rename(path, path+".1"); err != nil {
				t.Error(err)
				return
			}
			w.write(t, fd, 200) // old inode, renamed
			nfd := appendFile(t, path)
			w.write(t, fd, 200) // old inode, new file already there
			fd.Close()
			fd = nfd
			// Only now may the old file be considered finished.
			clk.Advance(2 * testRotateWait)
		}
		w.write(t, fd, 1500)
		fd.Close()
	}()
	<-done
	want := w.lines()
	waitFor(t, 10*time.Second, "all lines", func() bool { return c.count() >= len(want) }, func() { clk.Advance(testRotateWait) })
	sameLines(t, want, c.snapshot())
	if st := f.Stats(); st.Rotations == 0 {
		t.Errorf("Stats.Rotations = 0, want > 0: %+v", st)
	}
}

// Two rotations before the follower looks: the file in the middle (now
// path.1) must not be skipped.
func TestRotationRenameTwiceBetweenLooks(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/mail.log"
	fd := appendFile(t, path)
	clk := newFakeClock()
	opt := testOptions(clk)
	wk := make(manualWaker, 1)
	opt.Waker, opt.NoNotify = wk, true
	_, c := startFollow(t, []string{path}, nil, opt)
	w := newLogWriter(2, "twice")

	w.write(t, fd, 100)
	wk.kick()
	waitFor(t, 5*time.Second, "first lines", func() bool { return c.count() == 100 }, nil)
	for range 2 {
		shiftRotated(t, path)
		if err := os.Rename(path, path+".1"); err != nil {
			t.Fatal(err)
		}
		w.write(t, fd, 50)
		fd.Close()
		fd = appendFile(t, path)
		w.write(t, fd, 50)
	}
	fd.Close()
	want := w.lines()
	waitFor(t, 5*time.Second, "all lines", func() bool { return c.count() >= len(want) }, func() {
		clk.Advance(testRotateWait)
		wk.kick()
	})
	sameLines(t, want, c.snapshot())
}
