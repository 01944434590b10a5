package watcher

import (
	"bytes"
	"runtime"
	"testing"
	"time"
)

// A 10 MB line without newline is skipped with bounded memory; reading
// resumes after its newline.
func TestHugeLineSkippedWithBoundedMemory(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/rspamd.log"
	fd := appendFile(t, path)
	clk := newFakeClock()
	f, c := startFollow(t, []string{path}, nil, testOptions(clk))
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	if _, err := fd.WriteString("before\n"); err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte("A"), 64<<10)
	for range 160 { // 10 MiB, no newline
		if _, err := fd.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := fd.WriteString("tail of the huge line\nafter\n"); err != nil {
		t.Fatal(err)
	}
	fd.Close()
	waitFor(t, 10*time.Second, "lines around the huge one", func() bool { return c.count() >= 2 }, nil)
	sameLines(t, []string{"before", "after"}, c.snapshot())
	if n := f.Stats().LongLinesSkipped; n != 1 {
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

// Bytes pass through: NUL, invalid UTF-8, CR.
func TestBinaryBytesPassThrough(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/bin.log"
	fd := appendFile(t, path)
	clk := newFakeClock()
	_, c := startFollow(t, []string{path}, nil, testOptions(clk))
	want := []string{"a\x00b", "\xff\xfe\xc3(", "crlf\r", "", "end"}
	for _, l := range want {
		if _, err := fd.WriteString(l + "\n"); err != nil {
			t.Fatal(err)
		}
	}
	fd.Close()
	waitFor(t, 5*time.Second, "lines", func() bool { return c.count() >= len(want) }, nil)
	sameLines(t, want, c.snapshot())
}

// A partial last line is held until its newline arrives, never delivered in
// halves.
func TestPartialLineHeldUntilNewline(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/partial.log"
	fd := appendFile(t, path)
	wk, idle, c := startManual(t, path)
	<-idle

	if _, err := fd.WriteString("first\nsecond ha"); err != nil {
		t.Fatal(err)
	}
	wk.kick()
	<-idle // the follower has read everything there is
	waitFor(t, time.Second, "first line", func() bool { return c.count() == 1 }, nil)
	sameLines(t, []string{"first"}, c.snapshot())

	if _, err := fd.WriteString("lf\n"); err != nil {
		t.Fatal(err)
	}
	fd.Close()
	wk.kick()
	waitFor(t, 5*time.Second, "second line", func() bool { return c.count() >= 2 }, nil)
	sameLines(t, []string{"first", "second half"}, c.snapshot())
}

// The file is truncated while the follower is in the middle of a partial
// line: the fragment is dropped (its end is gone), new content is read from 0.
func TestTruncatedWhileReadingPartialLine(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/t.log"
	fd := appendFile(t, path)
	wk, idle, c := startManual(t, path)
	<-idle
	if _, err := fd.WriteString("one\ntwo\nthree and a half li"); err != nil {
		t.Fatal(err)
	}
	wk.kick()
	<-idle
	if err := fd.Truncate(0); err != nil {
		t.Fatal(err)
	}
	if _, err := fd.WriteString("fresh\n"); err != nil {
		t.Fatal(err)
	}
	fd.Close()
	wk.kick()
	waitFor(t, 5*time.Second, "lines", func() bool { return c.count() >= 3 }, nil)
	sameLines(t, []string{"one", "two", "fresh"}, c.snapshot())
}
