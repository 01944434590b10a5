package rules

import (
	"bufio"
	"os"
	"strings"
	"testing"
	"time"
)

// The real rspamd 3.4 lines of messages whose Message-ID, folded headers,
// recipients and envelope sender carry "ip: 192.0.2.9" (captured by the
// e2e suite into testdata): the built-in filter never reads the injected
// address, and it reads the real client from every other rate-limited
// summary line.
func TestRealHostileRspamdLinesStrikeOnlyTheRealClient(t *testing.T) {
	f, err := os.Open("../testdata/rspamd-hostile-3.4.log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	filter, err := BuiltinFilter("rspamd-ratelimit")
	if err != nil {
		t.Fatal(err)
	}
	ref := time.Date(2026, 12, 1, 20, 0, 0, 0, time.UTC)
	var events, evading int
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		_, n, _ := ParseTime(line, time.UTC, ref)
		m, ok := filter.Match(line[n:])
		limited := strings.Contains(string(line), "rspamd_task_write_log:") && strings.HasSuffix(string(line), "(set by ratelimit)")
		switch {
		case ok && m.Addr.String() != "198.51.100.41":
			t.Errorf("strike for %s from %q", m.Addr, line)
		case ok:
			events++
		case limited && strings.Count(string(line), ", ip: ") > 1:
			evading++ // a second ip field: no event, whichever it is
		case limited:
			t.Errorf("a rate-limited summary line of the real client was not an event: %q", line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if events == 0 || evading == 0 {
		t.Fatalf("%d events, %d lines with a second ip field: the capture is not what this test expects", events, evading)
	}
	t.Logf("%d events of the real client, %d lines with a second ip field", events, evading)
}
