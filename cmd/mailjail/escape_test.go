package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailjail/mailjail/internal/testutil"
)

// hostileFrom is an envelope from that sets the terminal's title and
// clears its screen when printed raw.
const hostileFrom = "a\x1b]0;TITLE\x07\x1b[2J"

// escapedFrom is how text output must show it.
const escapedFrom = `a\x1b]0;TITLE\a\x1b[2J`

// noControls fails t when text holds a control character other than the
// line breaks of the output itself.
func noControls(t *testing.T, what, text string) {
	t.Helper()
	for i, r := range text {
		if r < 0x20 && r != '\n' || r == 0x7f || r >= 0x80 && r < 0xa0 {
			t.Errorf("%s: control character %U at byte %d in %q", what, r, i, text)
			return
		}
	}
}

// `mailjail show`, `list` and `test-filter` printed ESC, BEL and CR from
// sender-controlled fields straight to the terminal. Text output escapes
// them; JSON keeps the exact text.
func TestTextOutputEscapesTerminalControlsFromLogLines(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startDaemon()
	const addr = "198.51.100.23"
	line := testutil.RspamdRatelimit{IP: addr, From: hostileFrom}.Line()
	for range 3 {
		if err := e.appendLog(line); err != nil {
			t.Fatal(err)
		}
	}
	e.waitFor("the hostile client banned", func() bool { return e.inMap(addr) })

	out, _, code := e.mj("show", addr)
	noControls(t, "show", out)
	if code != 0 || strings.Count(out, escapedFrom) != 3 {
		t.Errorf("show: exit %d, want the escaped from in 3 strikes:\n%s", code, out)
	}
	var show struct {
		Strikes []struct{ Line string }
	}
	e.mustJSON(&show, "show", addr)
	if len(show.Strikes) != 3 || !strings.Contains(show.Strikes[0].Line, hostileFrom) {
		t.Errorf("show --json lost the exact line: %+v", show)
	}

	// A reason typed by an operator may come from a log too (copy and paste).
	if _, errs, code := e.mj("ban", "198.51.100.24", "--reason", "from "+hostileFrom); code != 0 {
		t.Fatalf("ban: exit %d %s", code, errs)
	}
	out, _, _ = e.mj("list")
	noControls(t, "list", out)
	if !strings.Contains(out, "from "+escapedFrom) {
		t.Errorf("list does not show the escaped reason:\n%s", out)
	}
	var list struct{ Bans []banJSON }
	e.mustJSON(&list, "list")
	if len(list.Bans) != 2 || list.Bans[1].Addr != "198.51.100.24" || list.Bans[1].Reason != "from "+hostileFrom {
		t.Errorf("list --json lost the exact reason: %+v", list)
	}

	log := filepath.Join(e.dir, "hostile.log")
	miss := strings.Replace(strings.Replace(line, "Ratelimit", "Nothing", 1), "\n", "\r\n", 1)
	if err := os.WriteFile(log, []byte(line+miss), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, code = e.mj("test-filter", "rspamd-ratelimit", log, "--print-matches", "--print-misses")
	noControls(t, "test-filter", out)
	if code != 0 || strings.Count(out, escapedFrom) != 2 || !strings.Contains(out, `\r`) {
		t.Errorf("test-filter: exit %d, want both lines escaped:\n%s", code, out)
	}
	var tf struct {
		MatchedLines []string `json:"matched_lines"`
	}
	e.mustJSON(&tf, "test-filter", "rspamd-ratelimit", log, "--print-matches")
	if len(tf.MatchedLines) != 1 || tf.MatchedLines[0]+"\n" != line {
		t.Errorf("test-filter --json: matched_lines %q, want exactly %q", tf.MatchedLines, line)
	}
}
