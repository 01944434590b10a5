package watcher

import (
	"os"
	"testing"
)

// copyTruncate is logrotate's copytruncate: path is copied to path.1 (older
// copies shifted up) and truncated in place while the writer keeps its
// descriptor fd.
func copyTruncate(t *testing.T, path string, fd *os.File) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !shiftRotated(t, path) {
		t.FailNow()
	}
	if err := os.WriteFile(path+".1", data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := fd.Truncate(0); err != nil {
		t.Fatal(err)
	}
}

// Reading restarts at 0 after a copytruncate, and what had not been read
// before the truncation is read from the copy. The follower reads while
// the test copies and truncates.
func TestCopyTruncateRereadsFromZero(t *testing.T) {
	path, fd, h := followLog(t, "postfix.log", testOptions(newFakeClock()))
	w := newLogWriter(3, "copytrunc")

	for r := range 6 {
		w.write(t, fd, 1500)
		// A copytruncate of content the follower has not read a byte
		// of looks exactly like growth (documented limit); real
		// rotations are hours apart. Lines arrive in order, so one
		// line past the earlier rounds is one of this round.
		h.wk.Kick()
		h.c.waitUntil(t, "a line of this round", func() bool { return len(h.c.lines) > r*1500 })
		copyTruncate(t, path, fd)
	}
	w.write(t, fd, 1500)
	fd.Close()
	want := w.lines()
	h.dump = func(t *testing.T) { sameLines(t, want, h.c.snapshot()) }
	h.drain(t, len(want))
	sameLines(t, want, h.c.snapshot())
	if st := h.Stats(); st.Truncations == 0 {
		t.Errorf("Stats.Truncations = 0: %+v", st)
	}
}

// A plain truncation with no copy: lines written after it are read from 0
// and nothing before it is delivered twice.
func TestTruncateWithoutCopy(t *testing.T) {
	_, fd, h := followLog(t, "app.log", testOptions(newFakeClock()))
	w := newLogWriter(4, "trunc")
	w.write(t, fd, 300)
	h.syncLines(t, 300, "before the truncation")
	if err := fd.Truncate(0); err != nil {
		t.Fatal(err)
	}
	w.write(t, fd, 20) // shorter than before: size < offset
	h.drain(t, 320)
	sameLines(t, w.lines(), h.c.snapshot())
	if st := h.Stats(); st.Truncations != 1 {
		t.Errorf("Truncations = %d, want 1", st.Truncations)
	}
}

// Two copytruncates before the follower looks: both copies are read, in order.
func TestCopyTruncateTwiceBetweenLooks(t *testing.T) {
	path, fd, h := followLog(t, "postfix.log", testOptions(newFakeClock()))
	w := newLogWriter(14, "ct2")
	w.write(t, fd, 100)
	h.syncLines(t, 100, "before the copytruncates")
	for range 2 {
		w.write(t, fd, 50)
		copyTruncate(t, path, fd)
	}
	w.write(t, fd, 10)
	fd.Close()
	want := w.lines()
	h.drain(t, len(want))
	sameLines(t, want, h.c.snapshot())
}
