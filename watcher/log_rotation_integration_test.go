package watcher

import "testing"

// logrotate "create" mode followed by the writer reopening later (rspamd on
// SIGUSR1): lines written to the old inode after the rename, and even after
// the new file exists, must all arrive, before the new file's lines.
//
// Notifications are on and the writer never waits for the follower, which
// may fall behind by any number of rotations: every rotated file stays on
// disk, so none may be lost.
func TestRotationRenameFinishesOldFile(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/rspamd.log"
	fd := appendFile(t, path)
	clk := newFakeClock()
	opt := testOptions(clk)
	opt.NoNotify = false
	h := startFollow(t, []string{path}, nil, opt)
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
	dir := t.TempDir()
	path := dir + "/mail.log"
	fd := appendFile(t, path)
	h := startFollow(t, []string{path}, nil, testOptions(newFakeClock()))
	w := newLogWriter(2, "twice")

	w.write(t, fd, 100)
	h.sync(t)
	if n := h.c.count(); n != 100 {
		t.Fatalf("%d lines after the first sync, want 100", n)
	}
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
