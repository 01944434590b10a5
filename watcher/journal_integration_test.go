package watcher

// Tests against the host's real systemd journal. They need journalctl and
// a running systemd-journald; when journald is not running and the test
// runs as root, it is started (as watcher/journal_setup.sh does) and left
// running for later tests and runs. Otherwise the tests are skipped with the
// reason. Each test writes entries under its own syslog identifier, so tests
// (and other writers on the host) do not see each other's entries.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/testutil"
	"github.com/mailjail/mailjail/rules"
)

const journalSocket = "/run/systemd/journal/socket"

var (
	journalOnce   sync.Once
	journalReason string
)

// requireJournal skips the test when no journal can be had on this host.
func requireJournal(t *testing.T) {
	t.Helper()
	journalOnce.Do(func() { journalReason = ensureJournald() })
	if journalReason != "" {
		t.Skip(journalReason)
	}
}

func journaldUp() bool {
	c, err := net.Dial("unixgram", journalSocket)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// ensureJournald returns why the journal cannot be used, or "".
func ensureJournald() string {
	for _, bin := range []string{"journalctl", "systemd-cat"} {
		if _, err := exec.LookPath(bin); err != nil {
			return bin + " not installed (apt-get install systemd, or run watcher/journal_setup.sh)"
		}
	}
	if journaldUp() {
		return ""
	}
	if os.Geteuid() != 0 {
		return "systemd-journald is not running and starting it needs root (run watcher/journal_setup.sh)"
	}
	bin := "/lib/systemd/systemd-journald"
	if _, err := os.Stat(bin); err != nil {
		return "systemd-journald is not running and " + bin + " is missing"
	}
	if err := os.MkdirAll("/run/systemd/journal", 0o755); err != nil {
		return "cannot create /run/systemd/journal: " + err.Error()
	}
	cmd := exec.Command(bin)
	// Its own session, so it outlives the test binary like a service.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return "cannot start systemd-journald: " + err.Error()
	}
	_ = cmd.Process.Release()
	if !testutil.WaitFor(10*time.Second, journaldUp) {
		return "systemd-journald started but its socket " + journalSocket + " does not answer"
	}
	return ""
}

// uniqueIdent is a syslog identifier no other test or run uses, shaped like
// a multi-instance Postfix's ("postfix-NAME/program").
func uniqueIdent(t *testing.T) string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "postfix-mjt" + hex.EncodeToString(b[:])
}

// journalSend writes one entry over journald's native protocol, which
// carries any bytes (newlines, invalid UTF-8) and lets the test choose
// SYSLOG_PID.
func journalSend(t *testing.T, kv ...string) {
	t.Helper()
	if err := journalSendErr(kv...); err != nil {
		t.Fatal(err)
	}
}

// journalSendErr is journalSend for goroutines other than the test's,
// which must not call t.Fatal.
func journalSendErr(kv ...string) error {
	var b bytes.Buffer
	for i := 0; i+1 < len(kv); i += 2 {
		b.WriteString(kv[i])
		b.WriteByte('\n')
		_ = binary.Write(&b, binary.LittleEndian, uint64(len(kv[i+1])))
		b.WriteString(kv[i+1])
		b.WriteByte('\n')
	}
	c, err := net.Dial("unixgram", journalSocket)
	if err != nil {
		return fmt.Errorf("journal socket: %w", err)
	}
	defer c.Close()
	if _, err := c.Write(b.Bytes()); err != nil {
		return fmt.Errorf("journal send: %w", err)
	}
	return nil
}

// journalCat writes lines with systemd-cat, the way a program's stdout
// reaches the journal.
func journalCat(t *testing.T, ident string, lines ...string) {
	t.Helper()
	cmd := exec.Command("systemd-cat", "-t", ident)
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("systemd-cat: %v: %s", err, out)
	}
}

// journalEntries returns what journalctl holds for ident as JSON lines.
func journalEntries(t *testing.T, ident string) [][]byte {
	t.Helper()
	out, err := exec.Command("journalctl", "--no-pager", "--quiet", "-o", "json", "--output-fields=MESSAGE", "-t", ident).Output()
	if err != nil {
		t.Fatalf("journalctl -t %s: %v", ident, err)
	}
	return bytes.Split(bytes.TrimSpace(out), []byte("\n"))[:bytes.Count(out, []byte("\n"))]
}

// waitJournal waits until journald has stored n entries for ident, so a
// test knows where "the end of the journal" is before starting a follower.
func waitJournal(t *testing.T, ident string, n int) [][]byte {
	t.Helper()
	var got [][]byte
	testutil.Eventually(t, testDeadline, fmt.Sprintf("%d journal entries for %s", n, ident), func() bool {
		got = journalEntries(t, ident)
		return len(got) >= n
	})
	if len(got) != n {
		t.Fatalf("%d journal entries for %s, want %d", len(got), ident, n)
	}
	return got
}

type journalRun struct {
	f      *JournalFollower
	c      *collector
	cancel context.CancelFunc
}

// startJournal starts a follower and a collector; stop (or cleanup) stops
// both and waits for the batches channel to close.
func startJournal(t *testing.T, m JournalMatch, saved Position, opt Options) *journalRun {
	t.Helper()
	if opt.Logger == nil {
		opt.Logger = testLogger()
	}
	ctx, cancel := context.WithCancel(context.Background())
	f, err := FollowJournal(ctx, m, saved, opt)
	if err != nil {
		cancel()
		t.Fatalf("FollowJournal: %v", err)
	}
	r := &journalRun{f: f, c: collect(f), cancel: cancel}
	t.Cleanup(r.stop)
	return r
}

func (r *journalRun) stop() {
	r.cancel()
	<-r.c.closed
}

// expectExactly waits for the messages want (what), then writes a sentinel
// for ident: it must be the very next line, so nothing else was still
// coming. All lines must be ident's, want in order and then the sentinel.
func (r *journalRun) expectExactly(t *testing.T, ident string, want []string, what string) {
	t.Helper()
	r.c.waitLines(t, len(want), what)
	journalSend(t, "MESSAGE", "sentinel", "SYSLOG_IDENTIFIER", ident, "SYSLOG_PID", "1")
	r.c.waitLines(t, len(want)+1, "sentinel")
	sameLines(t, append(want, "sentinel"), messages(t, r.c.snapshot(), ident))
}

// messages strips the syslog prefix ("TIME HOST IDENT[PID]: ") from the
// collected lines, checking its shape.
func messages(t *testing.T, lines []string, ident string) []string {
	t.Helper()
	host, _ := os.Hostname()
	var out []string
	for _, l := range lines {
		ts, rest, _ := strings.Cut(l, " ")
		if _, err := time.Parse("2006-01-02T15:04:05.000000-07:00", ts); err != nil {
			t.Errorf("line %.80q: time: %v", l, err)
		}
		h, rest, _ := strings.Cut(rest, " ")
		if host != "" && h != host {
			t.Errorf("line %.80q: host %q, want %q", l, h, host)
		}
		prog, msg, ok := strings.Cut(rest, ": ")
		if !ok || !strings.HasPrefix(prog, ident+"[") || !strings.HasSuffix(prog, "]") {
			t.Errorf("line %.80q: program %q, want %s[PID]", l, prog, ident)
		}
		if _, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(prog, ident+"["), "]")); err != nil {
			t.Errorf("line %.80q: pid: %v", l, err)
		}
		out = append(out, msg)
	}
	return out
}

// sendNumbered writes messages "<tag> <i>: ..." for i in [from, to) and
// returns them.
func sendNumbered(t *testing.T, ident, tag string, from, to int) []string {
	t.Helper()
	out, err := sendNumberedErr(ident, tag, from, to)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sendNumberedErr(ident, tag string, from, to int) ([]string, error) {
	var out []string
	for i := from; i < to; i++ {
		m := fmt.Sprintf("%s %04d: 5346CBA274: milter-reject: END-OF-MESSAGE from unknown[198.18.5.%d]", tag, i, i%250)
		if err := journalSendErr("MESSAGE", m, "SYSLOG_IDENTIFIER", ident, "SYSLOG_PID", "4696"); err != nil {
			return out, err
		}
		out = append(out, m)
	}
	return out, nil
}

func TestJournalFirstStartAtEndThenExactLines(t *testing.T) {
	requireJournal(t)
	t.Parallel()
	ident := uniqueIdent(t) + "/cleanup"
	sendNumbered(t, ident, "old", 0, 5)
	waitJournal(t, ident, 5)

	r := startJournal(t, JournalMatch{Name: "postfix", Identifiers: []string{ident}}, Position{}, Options{MaxBatch: 7})
	want := sendNumbered(t, ident, "new", 0, 40)
	odd := []string{"bytes a\x01b\xffc\x00d", "two\nlines", strings.Repeat("long ", 2000)}
	for _, m := range odd {
		journalSend(t, "MESSAGE", m, "SYSLOG_IDENTIFIER", ident, "SYSLOG_PID", "77")
		want = append(want, strings.ReplaceAll(m, "\n", "#012"))
	}
	// journald serves its datagram socket and the stream socket of
	// systemd-cat in no set order: what systemd-cat writes is only sure
	// to come after the datagrams once those are read back.
	r.c.waitLines(t, len(want), "the entries sent over the socket")
	journalCat(t, ident, "via systemd-cat 1", "via systemd-cat 2 \xfe")
	want = append(want, "via systemd-cat 1", "via systemd-cat 2 \xfe")

	r.c.waitLines(t, len(want), "the systemd-cat lines")
	// Make sure nothing else is still coming: a sentinel written now
	// must be the very next line.
	journalSend(t, "MESSAGE", "sentinel", "SYSLOG_IDENTIFIER", ident, "SYSLOG_PID", "1")
	want = append(want, "sentinel")
	r.c.waitLines(t, len(want), "sentinel")
	got := r.c.snapshot()
	sameLines(t, want, messages(t, got, ident))
	host, _ := os.Hostname()
	if wantPrefix := " " + host + " " + ident + "[4696]: new 0000: "; !strings.Contains(got[0], wantPrefix) {
		t.Errorf("first line %q lacks %q", got[0], wantPrefix)
	}

	r.c.mu.Lock()
	pos := r.c.pos["journal:postfix"]
	r.c.mu.Unlock()
	entries := journalEntries(t, ident)
	last, err := parseJournalEntry(entries[len(entries)-1])
	if err != nil {
		t.Fatal(err)
	}
	if pos.Path != "journal:postfix" || pos.Cursor != last.Cursor {
		t.Errorf("last position %+v, want path journal:postfix and cursor %s", pos, last.Cursor)
	}
	st := r.f.Stats()
	if st.LinesRead != uint64(len(want)) || len(st.Files) != 1 || st.Files[0].Pos.Cursor != last.Cursor || st.Files[0].Open != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestJournalResumeAfterRestartExactlyOnce(t *testing.T) {
	requireJournal(t)
	t.Parallel()
	ident := uniqueIdent(t) + "/smtpd"
	m := JournalMatch{Name: "resume", Identifiers: []string{ident}}
	opt := Options{MaxBatch: 13}

	r1 := startJournal(t, m, Position{}, opt)
	var mu sync.Mutex
	var want []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		w, err := sendNumberedErr(ident, "a", 0, 300)
		if err != nil {
			t.Error(err)
		}
		mu.Lock()
		want = append(want, w...)
		mu.Unlock()
	}()
	// Stop mid-stream, like a daemon restart: what was committed is what
	// the collector received.
	r1.c.waitLines(t, 60, "first run")
	r1.stop()
	first := r1.c.snapshot()
	r1.c.mu.Lock()
	saved := r1.c.pos["journal:resume"]
	r1.c.mu.Unlock()
	<-done
	// Written while stopped.
	want = append(want, sendNumbered(t, ident, "b", 0, 100)...)
	if saved.Cursor == "" {
		t.Fatal("no cursor committed")
	}

	r2 := startJournal(t, m, saved, opt)
	r2.c.waitLines(t, len(want)-len(first), "second run")
	journalSend(t, "MESSAGE", "sentinel", "SYSLOG_IDENTIFIER", ident, "SYSLOG_PID", "1")
	r2.c.waitLines(t, len(want)-len(first)+1, "sentinel")
	got := append(first, r2.c.snapshot()...)
	sameLines(t, append(want, "sentinel"), messages(t, got, ident))
	t.Logf("first run %d lines, second run %d", len(first), len(got)-len(first))
}

// A saved cursor whose entry does not pass the filter (here: another
// program's entry) must not cost the next matching entry, which
// journalctl --after-cursor would skip.
func TestJournalResumeFromCursorOfOtherEntry(t *testing.T) {
	requireJournal(t)
	t.Parallel()
	ident := uniqueIdent(t)
	a, b := ident+"/qmgr", ident+"/other"
	sendNumbered(t, a, "a", 0, 3)
	journalSend(t, "MESSAGE", "b", "SYSLOG_IDENTIFIER", b, "SYSLOG_PID", "2")
	waitJournal(t, b, 1)
	want := sendNumbered(t, a, "a", 3, 6)
	waitJournal(t, a, 6)
	other, err := parseJournalEntry(journalEntries(t, b)[0])
	if err != nil {
		t.Fatal(err)
	}

	r := startJournal(t, JournalMatch{Identifiers: []string{a}}, Position{Path: "journal:" + a, Cursor: other.Cursor}, Options{})
	r.expectExactly(t, a, want, "entries after the cursor")
}

func TestJournalFromStart(t *testing.T) {
	requireJournal(t)
	t.Parallel()
	ident := uniqueIdent(t) + "/cleanup"
	want := sendNumbered(t, ident, "old", 0, 4)
	waitJournal(t, ident, 4)
	r := startJournal(t, JournalMatch{Identifiers: []string{ident}}, Position{}, Options{FromStart: true})
	want = append(want, sendNumbered(t, ident, "new", 0, 3)...)
	r.expectExactly(t, ident, want, "old and new entries")
}

// A prefix selects all of a Postfix instance's programs and nothing else.
func TestJournalIdentifierPrefix(t *testing.T) {
	requireJournal(t)
	t.Parallel()
	ident := uniqueIdent(t)
	r := startJournal(t, JournalMatch{Name: "p", Identifiers: []string{ident + "/*"}}, Position{}, Options{})
	var want []string
	for i, prog := range []string{"smtpd", "other", "cleanup", "qmgr"} {
		id := ident + "/" + prog
		if prog == "other" {
			id = "not" + ident + "/smtpd"
		}
		m := fmt.Sprintf("%s %d", prog, i)
		journalSend(t, "MESSAGE", m, "SYSLOG_IDENTIFIER", id, "SYSLOG_PID", "9")
		if prog != "other" {
			want = append(want, ident+"/"+prog+"[9]: "+m)
		}
	}
	journalSend(t, "MESSAGE", "sentinel", "SYSLOG_IDENTIFIER", ident+"/x", "SYSLOG_PID", "1")
	want = append(want, ident+"/x[1]: sentinel")
	r.c.waitLines(t, len(want), "prefix matches")
	var got []string
	for _, l := range r.c.snapshot() {
		_, rest, _ := strings.Cut(l, " ")
		_, rest, _ = strings.Cut(rest, " ")
		got = append(got, rest)
	}
	sameLines(t, want, got)
}

// journalctl dying (killed here) is restarted after the last entry read:
// nothing lost, nothing twice.
func TestJournalRestartsDeadJournalctl(t *testing.T) {
	requireJournal(t)
	t.Parallel()
	ident := uniqueIdent(t) + "/smtpd"
	r := startJournal(t, JournalMatch{Identifiers: []string{ident}}, Position{}, Options{MaxBatch: 5})
	want := sendNumbered(t, ident, "a", 0, 50)
	r.c.waitLines(t, 10, "before the kill")
	pid := int(r.f.pid.Load())
	if pid == 0 {
		t.Fatal("no journalctl running")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	want = append(want, sendNumbered(t, ident, "b", 0, 50)...)
	testutil.Eventually(t, testDeadline, "a restart", func() bool {
		p := r.f.pid.Load()
		return r.f.Restarts() >= 1 && p != 0 && int(p) != pid
	})
	want = append(want, sendNumbered(t, ident, "c", 0, 50)...)
	r.expectExactly(t, ident, want, "all entries")
}

// Cancelling the context stops journalctl and closes Batches.
func TestJournalCancelStopsJournalctl(t *testing.T) {
	requireJournal(t)
	t.Parallel()
	r := startJournal(t, JournalMatch{Identifiers: []string{uniqueIdent(t)}}, Position{}, Options{})
	var pid int
	testutil.Eventually(t, testDeadline, "journalctl to run", func() bool { pid = int(r.f.pid.Load()); return pid != 0 })
	r.stop()
	if r.f.pid.Load() != 0 {
		t.Error("pid still recorded after stop")
	}
	// Batches closed only after Wait reaped journalctl.
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("journalctl %d still exists after stop: %v", pid, err)
	}
}

// Entries longer than MaxLineBytes are skipped, both those caught by the
// bounded JSON reader and those only too long once rendered.
func TestJournalLongEntriesSkipped(t *testing.T) {
	requireJournal(t)
	t.Parallel()
	ident := uniqueIdent(t) + "/cleanup"
	r := startJournal(t, JournalMatch{Identifiers: []string{ident}}, Position{}, Options{MaxLineBytes: 1024})
	journalSend(t, "MESSAGE", "small 1", "SYSLOG_IDENTIFIER", ident, "SYSLOG_PID", "1")
	journalSend(t, "MESSAGE", strings.Repeat("x", 8<<10), "SYSLOG_IDENTIFIER", ident, "SYSLOG_PID", "1")
	journalSend(t, "MESSAGE", "small 2", "SYSLOG_IDENTIFIER", ident, "SYSLOG_PID", "1")
	journalSend(t, "MESSAGE", strings.Repeat("\xff", 40<<10), "SYSLOG_IDENTIFIER", ident, "SYSLOG_PID", "1")
	journalSend(t, "MESSAGE", "small 3", "SYSLOG_IDENTIFIER", ident, "SYSLOG_PID", "1")
	r.c.waitLines(t, 3, "small entries")
	sameLines(t, []string{"small 1", "small 2", "small 3"}, messages(t, r.c.snapshot(), ident))
	if st := r.f.Stats(); st.LongLinesSkipped != 2 {
		t.Errorf("LongLinesSkipped = %d, want 2", st.LongLinesSkipped)
	}
}

// A saved cursor journalctl rejects is reported and reading starts at the
// end.
func TestJournalBadSavedCursor(t *testing.T) {
	requireJournal(t)
	t.Parallel()
	ident := uniqueIdent(t) + "/cleanup"
	sendNumbered(t, ident, "old", 0, 2)
	waitJournal(t, ident, 2)
	r := startJournal(t, JournalMatch{Identifiers: []string{ident}}, Position{Cursor: "not a cursor"}, Options{})
	want := sendNumbered(t, ident, "new", 0, 2)
	r.expectExactly(t, ident, want, "new entries")
	if st := r.f.Stats(); st.Lost != 1 {
		t.Errorf("Lost = %d, want 1", st.Lost)
	}
}

func TestJournalConfigErrors(t *testing.T) {
	ctx := context.Background()
	for name, m := range map[string]JournalMatch{
		"nothing selected":   {},
		"bad pattern":        {Identifiers: []string{"a*b"}},
		"missing journalctl": {Identifiers: []string{"x"}, Journalctl: "/nonexistent/journalctl"},
	} {
		if _, err := FollowJournal(ctx, m, Position{}, Options{Logger: testLogger()}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// The lines are what the daemon's filters and timestamp parser expect: the
// built-in postfix-ratelimit filter finds the client of Postfix's real
// milter-reject line, and the time is the entry's own.
func TestJournalLinesMatchPostfixFilter(t *testing.T) {
	requireJournal(t)
	t.Parallel()
	ident := uniqueIdent(t) + "/cleanup"
	r := startJournal(t, JournalMatch{Identifiers: []string{ident}}, Position{}, Options{})
	journalSend(t, "MESSAGE", `5346CBA274: milter-reject: END-OF-MESSAGE from unknown[198.18.5.6]: 4.7.1 Ratelimit "ip" exceeded; from=<carol@example.net> to=<bob@example.org> proto=ESMTP helo=<vm>`,
		"SYSLOG_IDENTIFIER", ident, "SYSLOG_PID", "4696")
	r.c.waitLines(t, 1, "the reject line")
	line := []byte(r.c.snapshot()[0])
	ts, n, ok := rules.ParseTime(line, time.Local, time.Now())
	if !ok {
		t.Fatalf("no timestamp in %q", line)
	}
	e, err := parseJournalEntry(journalEntries(t, ident)[0])
	if err != nil {
		t.Fatal(err)
	}
	if want := time.UnixMicro(e.Realtime); !ts.Equal(want) {
		t.Errorf("time %v, want the entry's %v", ts, want)
	}
	f, err := rules.BuiltinFilter("postfix-ratelimit")
	if err != nil {
		t.Fatal(err)
	}
	m, ok := f.Match(line[n:])
	if !ok || m.Addr.String() != "198.18.5.6" || m.Bucket != "ip" {
		t.Errorf("filter on %q: %+v %v, want 198.18.5.6 bucket ip", line[n:], m, ok)
	}
}
