package watcher

import (
	"os"
	"testing"
	"time"
)

// logrotate copytruncate: the file is copied to path.1 and truncated in
// place while the writer keeps its descriptor. Reading restarts at 0, and
// what had not been read before the truncation is read from the copy.
func TestCopyTruncateRereadsFromZero(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/postfix.log"
	fd := appendFile(t, path)
	clk := newFakeClock()
	f, c := startFollow(t, []string{path}, nil, testOptions(clk))
	w := newLogWriter(3, "copytrunc")

	done := make(chan struct{})
	go func() {
		defer close(done)
		for r := range 6 {
			w.write(t, fd, 1500)
			// A copytruncate of content the follower has not read a
			// byte of looks exactly like growth (documented limit);
			// real rotations are hours apart.
			for c.count() <= r*1500 {
				select {
				case <-c.updated:
				case <-time.After(5 * time.Second):
					t.Error("follower read nothing")
					return
				}
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Error(err)
				return
			}
			shiftRotated(t, path)
			if err := os.WriteFile(path+".1", data, 0o644); err != nil {
				t.Error(err)
				return
			}
			if err := fd.Truncate(0); err != nil {
				t.Error(err)
				return
			}
		}
		w.write(t, fd, 1500)
		fd.Close()
	}()
	<-done
	want := w.lines()
	dump = func(t *testing.T) { t.Logf("stats %+v", f.Stats()); sameLines(t, want, c.snapshot()) }
	defer func() { dump = nil }()
	waitFor(t, 10*time.Second, "all lines", func() bool { return c.count() >= len(want) }, nil)
	sameLines(t, want, c.snapshot())
	if st := f.Stats(); st.Truncations == 0 {
		t.Errorf("Stats.Truncations = 0: %+v", st)
	}
}

// A plain truncation with no copy: lines written after it are read from 0
// and nothing before it is delivered twice.
func TestTruncateWithoutCopy(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/app.log"
	fd := appendFile(t, path)
	clk := newFakeClock()
	f, c := startFollow(t, []string{path}, nil, testOptions(clk))
	w := newLogWriter(4, "trunc")
	w.write(t, fd, 300)
	waitFor(t, 5*time.Second, "first lines", func() bool { return c.count() == 300 }, nil)
	if err := fd.Truncate(0); err != nil {
		t.Fatal(err)
	}
	w.write(t, fd, 20) // shorter than before: size < offset
	waitFor(t, 5*time.Second, "lines after truncation", func() bool { return c.count() >= 320 }, nil)
	sameLines(t, w.lines(), c.snapshot())
	if st := f.Stats(); st.Truncations != 1 {
		t.Errorf("Truncations = %d, want 1", st.Truncations)
	}
}

// Two copytruncates before the follower looks: both copies are read, in order.
func TestCopyTruncateTwiceBetweenLooks(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/postfix.log"
	fd := appendFile(t, path)
	clk := newFakeClock()
	opt := testOptions(clk)
	wk := make(manualWaker, 1)
	opt.Waker, opt.NoNotify = wk, true
	_, c := startFollow(t, []string{path}, nil, opt)
	w := newLogWriter(14, "ct2")
	w.write(t, fd, 100)
	wk.kick()
	waitFor(t, 5*time.Second, "first lines", func() bool { return c.count() == 100 }, nil)
	for range 2 {
		w.write(t, fd, 50)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		shiftRotated(t, path)
		if err := os.WriteFile(path+".1", data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := fd.Truncate(0); err != nil {
			t.Fatal(err)
		}
	}
	w.write(t, fd, 10)
	fd.Close()
	want := w.lines()
	waitFor(t, 5*time.Second, "all lines", func() bool { return c.count() >= len(want) }, wk.kick)
	sameLines(t, want, c.snapshot())
}
