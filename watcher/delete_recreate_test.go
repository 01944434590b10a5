package watcher

import (
	"os"
	"testing"
	"time"
)

// The file is deleted while the writer still has it open and keeps writing,
// then recreated: both the tail of the deleted file and the new file arrive.
func TestDeleteAndRecreate(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/rspamd.log"
	fd := appendFile(t, path)
	clk := newFakeClock()
	_, c := startFollow(t, []string{path}, nil, testOptions(clk))
	w := newLogWriter(5, "delete")

	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 4 {
			w.write(t, fd, 1000)
			if err := os.Remove(path); err != nil {
				t.Error(err)
				return
			}
			w.write(t, fd, 300) // deleted file, still written
			fd.Close()
			clk.Advance(2 * testRotateWait)
			fd = appendFile(t, path)
		}
		w.write(t, fd, 1000)
		fd.Close()
	}()
	<-done
	want := w.lines()
	waitFor(t, 10*time.Second, "all lines", func() bool { return c.count() >= len(want) }, func() { clk.Advance(testRotateWait) })
	sameLines(t, want, c.snapshot())
}
