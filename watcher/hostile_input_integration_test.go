package watcher

import (
	"bytes"
	"runtime"
	"testing"
)

// A 10 MB line without newline is skipped with bounded memory; reading
// resumes after its newline.
func TestHugeLineSkippedWithBoundedMemory(t *testing.T) {
	_, fd, h := followLog(t, "rspamd.log", testOptions(newFakeClock()))
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	writeString(t, fd, "before\n")
	chunk := bytes.Repeat([]byte("A"), 64<<10)
	for range 160 { // 10 MiB, no newline
		if _, err := fd.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	writeString(t, fd, "tail of the huge line\nafter\n")
	fd.Close()
	h.sync(t)
	sameLines(t, []string{"before", "after"}, h.c.snapshot())
	if n := h.Stats().LongLinesSkipped; n != 1 {
		t.Errorf("LongLinesSkipped = %d, want 1", n)
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	// Everything allocated during the test, by anyone; holding the line
	// would take 10 MiB at least.
	if d := after.TotalAlloc - before.TotalAlloc; d > 6<<20 {
		t.Errorf("allocated %d bytes while skipping a 10 MiB line", d)
	}
}

// Bytes pass through: NUL, invalid UTF-8, a CR inside a line. Only the CR
// of a CRLF line ending goes, with the LF (TestCRLFLineEndingsDropTheCR).
func TestBinaryBytesPassThrough(t *testing.T) {
	_, fd, h := followLog(t, "bin.log", testOptions(newFakeClock()))
	written := []string{"a\x00b", "\xff\xfe\xc3(", "cr\rinside", "\rcr first", "crlf\r", "two crs\r\r", "", "end"}
	want := []string{"a\x00b", "\xff\xfe\xc3(", "cr\rinside", "\rcr first", "crlf", "two crs\r", "", "end"}
	for _, l := range written {
		writeString(t, fd, l+"\n")
	}
	fd.Close()
	h.sync(t)
	sameLines(t, want, h.c.snapshot())
}
