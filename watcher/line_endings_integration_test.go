package watcher

import (
	"bytes"
	"os"
	"testing"
	"time"

	"github.com/mailjail/mailjail/rules"
)

// A log written with CRLF line endings (Windows programs, some syslog
// relays): the CR is part of the line ending, not of the line, so the
// built-in filters, anchored at the end of rspamd's line, find both events;
// each position is just past its LF. Before the fix the lines kept their CR
// and the filter counted 0 of 2 events.
func TestCRLFLineEndingsDropTheCR(t *testing.T) {
	data, err := os.ReadFile("testdata/rspamd-crlf.log")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	var ends []int64
	for off := 0; off < len(data); {
		i := bytes.Index(data[off:], []byte("\r\n"))
		if i < 0 {
			t.Fatal("testdata/rspamd-crlf.log: no CRLF line ending (converted by git?)")
		}
		want = append(want, string(data[off:off+i]))
		off += i + 2
		ends = append(ends, int64(off))
	}
	_, fd, h := followLog(t, "rspamd.log", testOptions(newFakeClock()))

	// The last CR is written alone: a CR at the end of what is there may
	// be the start of a CRLF, and the line waits for what follows.
	last := len(data) - 1
	writeString(t, fd, string(data[:last]))
	h.syncLines(t, len(want)-1, "before the last LF")
	writeString(t, fd, string(data[last:]))
	fd.Close()

	h.sync(t)
	sameLines(t, want, h.c.snapshot())
	h.c.mu.Lock()
	for i, p := range h.c.posns {
		if i < len(ends) && p.Offset != ends[i] {
			t.Errorf("line %d: offset %d, want %d (past its LF)", i, p.Offset, ends[i])
		}
	}
	h.c.mu.Unlock()

	f, err := rules.BuiltinFilter("rspamd-ratelimit")
	if err != nil {
		t.Fatal(err)
	}
	events := 0
	for _, l := range h.c.snapshot() {
		_, n, ok := rules.ParseTime([]byte(l), time.UTC, time.Time{})
		if !ok {
			t.Fatalf("no time in %q", l)
		}
		if _, ok := f.Match([]byte(l[n:])); ok {
			events++
		}
	}
	if events != 2 {
		t.Errorf("rspamd-ratelimit matched %d of 2 events", events)
	}
}
