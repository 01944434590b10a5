package watcher

import (
	"os"
	"testing"
)

// runOnce follows path from saved until want lines arrived, stops, and
// returns what was received and the committed positions.
func runOnce(t *testing.T, path string, saved map[string]Position, opt Options, want int) (*followed, []string, map[string]Position) {
	t.Helper()
	h := startFollow(t, []string{path}, saved, opt)
	h.drain(t, want)
	h.stop()
	return h, h.c.lines, h.c.pos
}

// resumeSetup follows a file from its start to its 100th line, stops, and
// writes 30 lines while stopped; it returns the file, still open for the
// writer, and the committed positions.
func resumeSetup(t *testing.T) (path string, fd *os.File, w *logWriter, pos map[string]Position) {
	path = t.TempDir() + "/rspamd.log"
	fd = appendFile(t, path)
	w = newLogWriter(8, "resume")
	w.write(t, fd, 100)
	opt := testOptions(newFakeClock())
	opt.FromStart = true
	_, got, pos := runOnce(t, path, nil, opt, 100)
	sameLines(t, w.lines(), got)
	w.write(t, fd, 30) // written while stopped
	return path, fd, w, pos
}

// A restart resumes exactly after the committed positions, whatever
// happened to the file while it was stopped.
func TestResume(t *testing.T) {
	for _, tc := range []struct {
		name string
		// whileStopped changes the files; it closes fd.
		whileStopped func(t *testing.T, path string, fd *os.File, w *logWriter)
		fromStart    bool
		from         int // the lines of w from this one on arrive
		recovered    uint64
		lost         uint64
	}{
		{"same file continues at offset", func(t *testing.T, path string, fd *os.File, w *logWriter) {
			fd.Close()
		}, false, 100, 0, 0},
		{"rotated while stopped: rotated file finished first", func(t *testing.T, path string, fd *os.File, w *logWriter) {
			if err := os.Rename(path, path+".1"); err != nil {
				t.Fatal(err)
			}
			w.write(t, fd, 10)
			fd.Close()
			fd = appendFile(t, path)
			w.write(t, fd, 20)
			fd.Close()
		}, true, 100, 1, 0},
		{"rotated twice while stopped: whole chain read", func(t *testing.T, path string, fd *os.File, w *logWriter) {
			for range 2 {
				fd = rotateReopen(t, path, fd, w, 20)
			}
			fd.Close()
		}, true, 100, 2, 0},
		{"dateext rotation while stopped", func(t *testing.T, path string, fd *os.File, w *logWriter) {
			if err := os.Rename(path, path+"-20240131"); err != nil {
				t.Fatal(err)
			}
			fd.Close()
			fd = appendFile(t, path)
			w.write(t, fd, 20)
			fd.Close()
		}, true, 100, 1, 0},
		{"copytruncate while stopped: copy finished first", func(t *testing.T, path string, fd *os.File, w *logWriter) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path+".1", data, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := fd.Truncate(0); err != nil {
				t.Fatal(err)
			}
			w.write(t, fd, 200) // grows past the saved offset: only the head tells
			fd.Close()
		}, true, 100, 1, 0},
		{"old file gone: new file from 0 with a warning", func(t *testing.T, path string, fd *os.File, w *logWriter) {
			fd.Close()
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			fd = appendFile(t, path)
			w.write(t, fd, 20)
			fd.Close()
		}, true, 130, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, fd, w, pos := resumeSetup(t)
			tc.whileStopped(t, path, fd, w)
			opt := testOptions(newFakeClock())
			opt.FromStart = tc.fromStart
			want := w.lines()[tc.from:]
			h, got, _ := runOnce(t, path, pos, opt, len(want))
			sameLines(t, want, got)
			if st := h.Stats(); st.Recovered != tc.recovered || st.Lost != tc.lost {
				t.Errorf("Recovered %d, Lost %d; want %d and %d", st.Recovered, st.Lost, tc.recovered, tc.lost)
			}
		})
	}
}

// On a first start, existing content is not read (unless FromStart), and a
// line cut in half by the start is not delivered as a fragment.
func TestFirstStartAtEnd(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/mail.log"
	if err := os.WriteFile(path, []byte("old line\nhalf of a li"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := startFollow(t, []string{path}, nil, testOptions(newFakeClock()))
	fd := appendFile(t, path)
	writeString(t, fd, "ne\nnew line\n")
	fd.Close()
	h.sync(t)
	sameLines(t, []string{"new line"}, h.c.snapshot())

	opt := testOptions(newFakeClock())
	opt.FromStart = true
	h2 := startFollow(t, []string{path}, nil, opt)
	h2.sync(t)
	sameLines(t, []string{"old line", "half of a line", "new line"}, h2.c.snapshot())
}
