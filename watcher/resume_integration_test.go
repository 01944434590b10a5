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

func TestResume(t *testing.T) {
	setup := func(t *testing.T) (string, *os.File, *logWriter, map[string]Position, Options) {
		dir := t.TempDir()
		path := dir + "/rspamd.log"
		fd := appendFile(t, path)
		w := newLogWriter(8, "resume")
		w.write(t, fd, 100)
		opt := testOptions(newFakeClock())
		opt.FromStart = true
		_, got, pos := runOnce(t, path, nil, opt, 100)
		sameLines(t, w.lines(), got)
		w.write(t, fd, 30) // written while stopped
		return path, fd, w, pos, opt
	}

	t.Run("same file continues at offset", func(t *testing.T) {
		path, fd, w, pos, opt := setup(t)
		fd.Close()
		opt.FromStart = false
		_, got, _ := runOnce(t, path, pos, opt, 30)
		sameLines(t, w.lines()[100:], got)
	})

	t.Run("rotated while stopped: rotated file finished first", func(t *testing.T) {
		path, fd, w, pos, opt := setup(t)
		if err := os.Rename(path, path+".1"); err != nil {
			t.Fatal(err)
		}
		w.write(t, fd, 10)
		fd.Close()
		fd = appendFile(t, path)
		w.write(t, fd, 20)
		fd.Close()
		f, got, _ := runOnce(t, path, pos, opt, 60)
		sameLines(t, w.lines()[100:], got)
		if f.Stats().Recovered != 1 {
			t.Errorf("Recovered = %d, want 1", f.Stats().Recovered)
		}
	})

	t.Run("rotated twice while stopped: whole chain read", func(t *testing.T) {
		path, fd, w, pos, opt := setup(t)
		for range 2 {
			shiftRotated(t, path)
			if err := os.Rename(path, path+".1"); err != nil {
				t.Fatal(err)
			}
			fd.Close()
			fd = appendFile(t, path)
			w.write(t, fd, 20)
		}
		fd.Close()
		_, got, _ := runOnce(t, path, pos, opt, 70)
		sameLines(t, w.lines()[100:], got)
	})

	t.Run("dateext rotation while stopped", func(t *testing.T) {
		path, fd, w, pos, opt := setup(t)
		if err := os.Rename(path, path+"-20240131"); err != nil {
			t.Fatal(err)
		}
		fd.Close()
		fd = appendFile(t, path)
		w.write(t, fd, 20)
		fd.Close()
		_, got, _ := runOnce(t, path, pos, opt, 50)
		sameLines(t, w.lines()[100:], got)
	})

	t.Run("copytruncate while stopped: copy finished first", func(t *testing.T) {
		path, fd, w, pos, opt := setup(t)
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
		_, got, _ := runOnce(t, path, pos, opt, 230)
		sameLines(t, w.lines()[100:], got)
	})

	t.Run("old file gone: new file from 0 with a warning", func(t *testing.T) {
		path, fd, w, pos, opt := setup(t)
		fd.Close()
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		fd = appendFile(t, path)
		w.write(t, fd, 20)
		fd.Close()
		f, got, _ := runOnce(t, path, pos, opt, 20)
		sameLines(t, w.lines()[130:], got)
		if f.Stats().Lost != 1 {
			t.Errorf("Lost = %d, want 1", f.Stats().Lost)
		}
	})
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
