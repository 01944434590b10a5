package watcher

import (
	"os"
	"testing"
)

// The file is deleted while the writer still has it open and keeps writing,
// then recreated: both the tail of the deleted file and the new file arrive.
//
// A file deleted before anyone opened it is gone for good, so before each
// round the test syncs with the follower, which then has the new file open;
// the follower reads it while it is written and deleted.
func TestDeleteAndRecreate(t *testing.T) {
	opt := testOptions(newFakeClock())
	opt.NoNotify = false
	path, fd, h := followLog(t, "rspamd.log", opt)
	clk := h.clk
	w := newLogWriter(5, "delete")

	for range 4 {
		h.sync(t)
		w.write(t, fd, 1000)
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		w.write(t, fd, 300) // deleted file, still written
		fd.Close()
		clk.Advance(2 * testRotateWait)
		fd = appendFile(t, path)
	}
	w.write(t, fd, 1000)
	fd.Close()
	want := w.lines()
	h.drain(t, len(want))
	sameLines(t, want, h.c.snapshot())
}
