package watcher

import "testing"

// A partial last line is held until its newline arrives, never delivered in
// halves.
func TestPartialLineHeldUntilNewline(t *testing.T) {
	_, fd, h := followLog(t, "partial.log", testOptions(newFakeClock()))

	writeString(t, fd, "first\nsecond ha")
	h.sync(t) // the follower has read everything there is
	sameLines(t, []string{"first"}, h.c.snapshot())

	writeString(t, fd, "lf\n")
	fd.Close()
	h.sync(t)
	sameLines(t, []string{"first", "second half"}, h.c.snapshot())
}

// The file is truncated while the follower is in the middle of a partial
// line: the fragment is dropped (its end is gone), new content is read from 0.
func TestTruncatedWhileReadingPartialLine(t *testing.T) {
	_, fd, h := followLog(t, "t.log", testOptions(newFakeClock()))
	writeString(t, fd, "one\ntwo\nthree and a half li")
	h.sync(t)
	if err := fd.Truncate(0); err != nil {
		t.Fatal(err)
	}
	writeString(t, fd, "fresh\n")
	fd.Close()
	h.sync(t)
	sameLines(t, []string{"one", "two", "fresh"}, h.c.snapshot())
}
