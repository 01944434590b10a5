package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/testutil"
)

// test-filter on a missing file exited 3, which says the daemon or the
// state is unreachable; a file that cannot be read is bad input (exit 2,
// as grep does), and the message names it.
func TestTestFilterMissingFileIsAnInputError(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	missing := filepath.Join(e.dir, "no-such.log")
	for _, args := range [][]string{
		{"test-filter", "rspamd-ratelimit", missing},
		{"test-filter", "rspamd-ratelimit", missing, "--json"},
		{"test-filter", "rspamd-ratelimit", e.dir}, // a directory: open works, read fails
	} {
		_, errs, code := e.mj(args...)
		if code != 2 || !strings.Contains(errs, args[2]) {
			t.Errorf("%q: exit %d %q, want 2 naming the file", args, code, errs)
		}
	}
}

// `list` before the database exists printed "no active bans" like an
// empty database, hiding a wrong --config or database path. It says there
// is no database yet; the exit code stays 0 as for any empty list, and
// JSON stays an empty list.
func TestListWithoutDatabaseSaysSo(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	out, errs, code := e.mj("list")
	if code != 0 || !strings.Contains(out, "no database yet at "+e.db) {
		t.Errorf("list: exit %d, %q %q", code, out, errs)
	}
	if out, _, code := e.mj("list", "--json"); code != 0 || strings.TrimSpace(out) != `{
  "bans": []
}` {
		t.Errorf("list --json: exit %d %q", code, out)
	}
	// With a database and nothing banned: the same exit, without the note.
	e.mj("ban", "198.51.100.1")
	e.mj("unban", "198.51.100.1")
	if out, _, code := e.mj("list"); code != 0 || out != "no active bans\n" {
		t.Errorf("list of an empty database: exit %d %q", code, out)
	}
	out, _, _ = e.mj("status")
	if strings.Contains(out, "(none yet)") {
		t.Errorf("status says there is no database:\n%s", out)
	}
}

// `list extra-arg` was accepted and the word ignored (the operator meant
// --jail and saw every ban). Commands without arguments refuse them.
func TestCommandsWithoutArgumentsRefuseThem(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, args := range [][]string{
		{"list", "rspamd-ratelimit"},
		{"list", "--json", "x"},
		{"status", "x"},
		{"version", "x"},
		{"run", "x"},
		{"list", "--accounts", "x"},
	} {
		_, errs, code := e.mj(args...)
		if code != 2 || !strings.Contains(errs, args[0]+" takes no arguments") {
			t.Errorf("%q: exit %d %q, want 2", args, code, errs)
		}
	}
}

// statusKeys are the keys of the stable `status --json` schema, zero or not.
var statusKeys = []string{"running", "version", "pid", "started", "uptime_seconds", "database", "map_file",
	"map_entries", "map_writes", "map_error", "account_map_file", "account_map_entries", "lines_read", "lines_without_time",
	"matches", "ignored", "jails"}

var jailStatusKeys = []string{"name", "key", "filter", "logpath", "journal", "files", "strikes_tracked", "strikes_stored",
	"active_bans", "total_bans", "active_suspensions", "rate_events", "rate_keys", "rate_untracked"}

// `status --json` dropped fields that were zero (pid, uptime, matches,
// rate_events ...) although the schema is called stable: a script reading
// .matches got null. Every key is present, with and without a daemon,
// lists and maps are [] and {}, never null.
func TestStatusJSONKeepsZeroFields(t *testing.T) {
	t.Parallel()
	for _, withDaemon := range []bool{false, true} {
		t.Run(fmt.Sprintf("daemon=%v", withDaemon), func(t *testing.T) {
			e := newEnv(t)
			e.mj("ban", "198.51.100.1") // a manual jail too
			if withDaemon {
				e.startDaemon()
			}
			var s map[string]json.RawMessage
			e.mustJSON(&s, "status")
			hasKeys(t, "status", s, statusKeys)
			var jails []map[string]json.RawMessage
			if err := json.Unmarshal(s["jails"], &jails); err != nil || len(jails) != 2 {
				t.Fatalf("jails: %v %s", err, s["jails"])
			}
			for _, j := range jails {
				hasKeys(t, "jail "+string(j["name"]), j, jailStatusKeys)
				for _, k := range []string{"logpath", "files", "rate_keys"} {
					if string(j[k]) == "null" {
						t.Errorf("jail %s: %s is null", j["name"], k)
					}
				}
			}
			if !withDaemon && string(s["started"]) != "null" {
				t.Errorf("started = %s without a daemon, want null", s["started"])
			}
		})
	}
}

func hasKeys(t *testing.T, what string, m map[string]json.RawMessage, keys []string) {
	t.Helper()
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			t.Errorf("%s: no %q in %v", what, k, m)
		}
	}
}

// Text status printed "jail manual (filter )" and left out the rate
// events of rate jails, which are all a log-only rate jail produces.
func TestStatusTextShowsRateEventsAndNoEmptyFilter(t *testing.T) {
	t.Parallel()
	var mail string
	e := newEnv(t, func(e *env, c *testutil.Config) {
		mail = filepath.Join(e.dir, "mail.log")
		c.Jails = append(c.Jails, testutil.Jail{Name: "sender-rate", LogPath: []string{mail},
			Extra: `rate_key = "sender"` + "\n" + `messages = { burst = 1, rate = "1 / 1h" }`})
	})
	if err := os.WriteFile(mail, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	e.mj("ban", "198.51.100.1")
	e.startDaemon()
	// Three authenticated messages of one sender with a burst of one: two events.
	now := time.Now()
	for i := range 3 {
		m := testutil.PostfixMessage{At: now, QID: fmt.Sprintf("4Tq9Xy1AB%d", i), Client: fmt.Sprintf("198.18.5.%d", i+1), Sender: "bulk@example.org", User: "bulk"}
		if err := appendFile(mail, m.Lines()); err != nil {
			t.Fatal(err)
		}
	}
	e.waitFor("two rate events", func() bool {
		var s struct {
			Jails []struct {
				Name       string
				RateEvents int `json:"rate_events"`
			}
		}
		e.mustJSON(&s, "status")
		for _, j := range s.Jails {
			if j.Name == "sender-rate" {
				return j.RateEvents == 2
			}
		}
		return false
	})
	out, _, code := e.mj("status")
	if code != 0 || strings.Contains(out, "(filter )") || !strings.Contains(out, "jail manual: 1 active bans, 1 bans total\n") {
		t.Errorf("status names an empty filter or lacks the manual jail:\n%s", out)
	}
	if !strings.Contains(out, "jail sender-rate (rate jail, key sender, counts accounts):") || !strings.Contains(out, "  rate events: 2, keys tracked: ") {
		t.Errorf("status lacks the rate jail's events:\n%s", out)
	}
}

// `test-filter --print-matches` printed the summary first and the lines
// after it, so the summary scrolled away: lines first, summary last.
func TestTestFilterPrintsMatchesBeforeTheSummary(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	out, _, code := e.mj("test-filter", "rspamd-ratelimit", "../../testdata/rspamd-3.4-proxy.log", "--print-matches")
	last := strings.LastIndex(out, `Ratelimit "`)
	summary := strings.Index(out, "Lines: 3239, matched: 19, missed: 3220")
	if code != 0 || last < 0 || summary < 0 || last > summary || strings.Count(out, "rspamd_task_write_log") != 19 {
		t.Errorf("exit %d; last match at %d, summary at %d:\n%s", code, last, summary, out)
	}
	if !strings.HasSuffix(out, " lines/s\n") {
		t.Errorf("the summary does not end the output:\n%s", out[max(0, len(out)-300):])
	}
}

// `test-filter --json --print-matches` printed the JSON followed by the
// lines, so stdout was not JSON: the lines are in the JSON, exact.
func TestTestFilterJSONHoldsThePrintedLines(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const log = "../../testdata/postfix-3.7.log"
	filter := `milter-reject: END-OF-MESSAGE from \S+\[<HOST>\]`
	var tf struct {
		Lines, Matched, Missed int
		MatchedLines           *[]string `json:"matched_lines"`
		MissedLines            *[]string `json:"missed_lines"`
	}
	out, _, code := e.mj("test-filter", filter, log, "--print-matches", "--json")
	if err := json.Unmarshal([]byte(out), &tf); err != nil || code != 0 {
		t.Fatalf("exit %d, not JSON (%v):\n%s", code, err, out)
	}
	if tf.MatchedLines == nil || len(*tf.MatchedLines) != 16 || tf.Matched != 16 || tf.MissedLines != nil {
		t.Fatalf("matched %d, matched_lines %v, missed_lines %v", tf.Matched, tf.MatchedLines, tf.MissedLines)
	}
	for _, l := range *tf.MatchedLines {
		if !strings.Contains(l, "milter-reject: END-OF-MESSAGE") || strings.HasSuffix(l, "\n") {
			t.Errorf("matched line %q", l)
		}
	}
	tf.MatchedLines, tf.MissedLines = nil, nil
	e.mustJSON(&tf, "test-filter", filter, log, "--print-misses")
	if tf.MissedLines == nil || len(*tf.MissedLines) != tf.Missed || tf.Missed != tf.Lines-16 || tf.MatchedLines != nil {
		t.Errorf("missed %d of %d, missed_lines %v, matched_lines %v", tf.Missed, tf.Lines, tf.MissedLines != nil, tf.MatchedLines)
	}
	// Nothing matched: the key is there, an empty list.
	tf.MatchedLines, tf.MissedLines = nil, nil
	e.mustJSON(&tf, "test-filter", "rspamd-ratelimit", log, "--print-matches")
	if tf.Matched != 0 || tf.MatchedLines == nil || len(*tf.MatchedLines) != 0 {
		t.Errorf("no match: matched %d, matched_lines %v", tf.Matched, tf.MatchedLines)
	}
	// Without the flags the keys are absent.
	out, _, _ = e.mj("test-filter", filter, log, "--json")
	if strings.Contains(out, "matched_lines") || strings.Contains(out, "missed_lines") {
		t.Errorf("lines in JSON without --print-*: %s", out[:min(len(out), 300)])
	}
}

// Every command documents itself as a man page would: what it does and
// examples, under --help, with exit 0.
func TestEveryCommandHasHelpWithExamples(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, args := range [][]string{{"list"}, {"show"}, {"ban"}, {"unban"}, {"suspend"}, {"release"}, {"allow"},
		{"allow", "add"}, {"allow", "del"}, {"allow", "list"}, {"outbox"}, {"outbox", "retry"}, {"outbox", "drop"}, {"status"}} {
		out, errs, code := e.mj(append(args, "--help")...)
		if code != 0 || !strings.Contains(out, "Examples:") || !strings.Contains(out, "mailjail "+strings.Join(args, " ")) {
			t.Errorf("%v --help: exit %d %q\n%s", args, code, errs, out)
		}
	}
	for _, args := range [][]string{{"suspend"}, {"release"}, {"allow", "add"}, {"allow", "del"}, {"allow", "list"}, {"list"}, {"show"}, {"outbox"}, {"outbox", "retry"}, {"outbox", "drop"}} {
		if out, _, _ := e.mj(append(args, "--help")...); !strings.Contains(out, "JSON") {
			t.Errorf("%v --help does not give its JSON schema:\n%s", args, out)
		}
	}
}
