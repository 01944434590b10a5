package watcher

import (
	"os"
	"testing"
)

// logrotate "create" mode followed by the writer reopening later (rspamd on
// SIGUSR1): lines written to the old inode after the rename, and even after
// the new file exists, must all arrive, before the new file's lines.
//
// Notifications are on and the writer never waits for the follower, which
// may fall behind by any number of rotations: every rotated file stays on
// disk, so none may be lost.
func TestRotationRenameFinishesOldFile(t *testing.T) {
	opt := testOptions(newFakeClock())
	opt.NoNotify = false
	path, fd, h := followLog(t, "rspamd.log", opt)
	clk := h.clk
	w := newLogWriter(1, "rename")

	for range 6 {
		w.write(t, fd, 1500)
		if !rotate(t, path) {
			t.FailNow()
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
	want := w.lines()
	h.drain(t, len(want))
	sameLines(t, want, h.c.snapshot())
	if st := h.Stats(); st.Rotations == 0 {
		t.Errorf("Stats.Rotations = 0, want > 0: %+v", st)
	}
}

// Two rotations before the follower looks: the file in the middle (now
// path.1) must not be skipped.
func TestRotationRenameTwiceBetweenLooks(t *testing.T) {
	path, fd, h := followLog(t, "mail.log", testOptions(newFakeClock()))
	w := newLogWriter(2, "twice")

	w.write(t, fd, 100)
	h.syncLines(t, 100, "before the rotations")
	for range 2 {
		if !rotate(t, path) {
			t.FailNow()
		}
		w.write(t, fd, 50)
		fd.Close()
		fd = appendFile(t, path)
		w.write(t, fd, 50)
	}
	fd.Close()
	want := w.lines()
	h.drain(t, len(want))
	sameLines(t, want, h.c.snapshot())
	if st := h.Stats(); st.Rotations != 1 || st.Recovered != 1 {
		t.Errorf("Rotations %d, Recovered %d; want 1 (the file at the path) and 1 (path.1)", st.Rotations, st.Recovered)
	}
}

// The path is rotated again between the follower's look at it and its
// opening the new file there: the file in between (path.1 by then) is
// found among the rotated files, not mistaken for the file just opened.
// Before the fix the follower skipped the file it had seen at the path,
// opened the next one, and lost every line of the one in between.
func TestRotationWhileLookingFindsTheFileInBetween(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/rspamd.log"
	fd := appendFile(t, path)
	clk := newFakeClock()
	opt := testOptions(clk)
	w := newLogWriter(15, "between")
	var fd2 *os.File
	rotated := false
	opt.afterLook = func(string) {
		// The follower's goroutine; the test's waits for it in sync.
		if rotated {
			return
		}
		rotated = true
		if !rotate(t, path) {
			return
		}
		var err error
		if fd2, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err != nil {
			t.Error(err)
			return
		}
		w.write(t, fd2, 40)
		fd2.Close()
	}
	h := startFollow(t, []string{path}, nil, opt)

	w.write(t, fd, 30)
	h.sync(t)
	rotateReopen(t, path, fd, w, 20).Close()
	h.sync(t) // looks, and the hook rotates once more
	if !rotated {
		t.Fatal("the follower never looked at the new file")
	}
	want := w.lines()
	h.drain(t, len(want))
	sameLines(t, want, h.c.snapshot())
}
