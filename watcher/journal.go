package watcher

// A journal source, for hosts where Postfix logs only to journald.
//
// Why a journalctl subprocess and not github.com/coreos/go-systemd's
// sdjournal: sdjournal needs cgo and libsystemd at build and run time, while
// journalctl is on every systemd host, speaks a documented JSON format and
// keeps this package pure Go. What it costs is a process per source, which
// is restarted (with backoff) when it dies.
//
// Two journalctl behaviours (checked on systemd 252) shape the command
// line:
//
//   - --after-cursor seeks to the cursor and then skips two entries that
//     pass the filter, assuming the cursor's entry is one of them. When it
//     is not (the filter changed, or the cursor is the journal's tail), one
//     matching entry is lost. So the follower passes --cursor and drops the
//     first entry itself when it is the one the cursor names.
//   - --follow without --no-tail prints at most 10 entries, and the rest
//     only once something new is written. So --no-tail is always given.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mailjail/mailjail/internal/core"
)

// Source is what the daemon needs from a follower of any kind: files
// (Follow) and the journal (FollowJournal) deliver the same batches.
type Source interface {
	// Batches delivers lines; see Follower.Batches for the contract.
	Batches() <-chan []Line
	// Stats returns a snapshot of the source's counters.
	Stats() Stats
}

var (
	_ Source = (*Follower)(nil)
	_ Source = (*JournalFollower)(nil)
)

// JournalMatch selects a journal source's entries (see core.JournalMatch).
type JournalMatch = core.JournalMatch

// journalPattern is one Units or Identifiers value.
type journalPattern struct {
	value  string
	prefix bool
}

func (p journalPattern) match(b []byte) bool {
	if p.prefix {
		return bytes.HasPrefix(b, []byte(p.value))
	}
	return string(b) == p.value
}

func parsePatterns(what string, vals []string) ([]journalPattern, error) {
	var out []journalPattern
	for _, v := range vals {
		p := journalPattern{value: v}
		if strings.HasSuffix(v, "*") {
			p = journalPattern{value: strings.TrimSuffix(v, "*"), prefix: true}
		}
		if p.value == "" && !p.prefix {
			return nil, fmt.Errorf("journal: %s: empty value", what)
		}
		if strings.ContainsAny(p.value, "*\n") {
			return nil, fmt.Errorf("journal: %s %q: only a trailing * is supported, and no newline", what, v)
		}
		out = append(out, p)
	}
	return out, nil
}

// serverMatches turns patterns into journalctl matches (FIELD=value, ORed
// for one field, ANDed across fields), or none when any pattern is a
// prefix: journalctl has no prefix match, so the filtering is done here.
func serverMatches(field string, ps []journalPattern) []string {
	var out []string
	for _, p := range ps {
		if p.prefix {
			return nil
		}
		out = append(out, field+"="+p.value)
	}
	return out
}

func anyMatch(ps []journalPattern, b []byte) bool {
	if len(ps) == 0 {
		return true
	}
	for _, p := range ps {
		if p.match(b) {
			return true
		}
	}
	return false
}

// Restart backoff for a journalctl that died: the first restart is quick
// (a crash or a journal rotation hiccup), repeated failures slow down so a
// broken journal does not spin.
var (
	journalRestartMin = 100 * time.Millisecond
	journalRestartMax = 30 * time.Second
)

// journalStderrMax bounds what is kept of journalctl's error output.
const journalStderrMax = 4 << 10

// JournalFollower follows the systemd journal through journalctl and
// delivers entries as syslog-style lines (see FollowJournal).
type JournalFollower struct {
	opt     Options
	log     *slog.Logger
	key     string
	bin     string
	dir     string
	units   []journalPattern
	idents  []journalPattern
	matches []string
	out     *batcher
	jsonMax int

	// Owned by the run goroutine.
	cursor string // cursor of the last entry read: where a restart resumes
	skip   string // the cursor a run started at; its entry is dropped when it comes first

	c        counters
	restarts atomic.Uint64
	pid      atomic.Int64 // the running journalctl, 0 when none (tests kill it)
}

// FollowJournal follows the journal entries selected by m, resuming after
// saved.Cursor (the Pos of the last line the consumer committed) when it is
// set. Without a saved cursor it starts at the end of the journal (the
// entries written after it returns are delivered), or with opt.FromStart at
// its beginning. A saved cursor journalctl rejects is logged, counted in
// Stats().Lost, and reading starts at the end.
//
// Each entry becomes one Line whose Text is the syslog line a file would
// hold, "2026-11-25T03:34:39.123456+00:00 mx postfix/cleanup[4696]: ...",
// with the time of __REALTIME_TIMESTAMP in UTC, and whose Pos has Path
// m.Key() and Cursor the entry's cursor. A newline inside a message is
// written as "#012"; other bytes pass unchanged. Lines longer than
// opt.MaxLineBytes are skipped, counted and logged.
//
// journalctl is restarted, after the last entry read, when it exits, and
// is stopped when ctx is cancelled; Batches is then closed. FollowJournal
// fails when journalctl cannot be found or cannot read the journal.
func FollowJournal(ctx context.Context, m JournalMatch, saved Position, opt Options) (*JournalFollower, error) {
	units, err := parsePatterns("unit", m.Units)
	if err != nil {
		return nil, err
	}
	idents, err := parsePatterns("identifier", m.Identifiers)
	if err != nil {
		return nil, err
	}
	if len(units) == 0 && len(idents) == 0 {
		// Following every entry of the journal is never what a jail
		// means; refuse rather than feed a filter the whole system.
		return nil, errors.New("journal: no units and no identifiers to follow")
	}
	bin := m.Journalctl
	if bin == "" {
		bin = "journalctl"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	opt.setDefaults()
	j := &JournalFollower{
		opt:    opt,
		key:    m.Key(),
		bin:    path,
		dir:    m.Directory,
		units:  units,
		idents: idents,
		out:    newBatcher(opt.MaxBatch, opt.MaxLineBytes),
		// A byte-array MESSAGE takes up to four JSON bytes per byte
		// ("255,") and an escaped string up to six ("\u0001"); the
		// other fields are small.
		jsonMax: 6*opt.MaxLineBytes + 16<<10,
	}
	j.log = opt.Logger.With("component", "watcher", "source", j.key)
	j.matches = append(serverMatches("_SYSTEMD_UNIT", units), serverMatches("SYSLOG_IDENTIFIER", idents)...)
	if err := j.start(ctx, saved); err != nil {
		return nil, err
	}
	j.out.setLast(Position{Path: j.key, Cursor: j.cursor})
	go j.run(ctx)
	return j, nil
}

// start decides where the first journalctl begins: after the saved cursor,
// at the head (FromStart, or nothing matches yet), or after the last
// matching entry. The end is found here, before FollowJournal returns, so
// that "entries written after it returns are delivered" holds; starting
// journalctl with --lines=0 would race with those writes.
func (j *JournalFollower) start(ctx context.Context, saved Position) error {
	if saved.Cursor != "" {
		_, stderr, err := j.query(ctx, "--cursor="+saved.Cursor, "--lines=0")
		if err == nil {
			j.cursor = saved.Cursor
			return nil
		}
		if !strings.Contains(stderr, "cursor") {
			return fmt.Errorf("journal %s: check saved cursor: %w", j.key, err)
		}
		j.c.lost.Add(1)
		j.log.Warn("saved journal cursor rejected; starting at the end of the journal, entries written while stopped are not read",
			"cursor", saved.Cursor, "err", err)
	}
	if j.opt.FromStart {
		return nil
	}
	out, _, err := j.query(ctx, "--lines=1")
	if err != nil {
		return fmt.Errorf("journal %s: find the end of the journal: %w", j.key, err)
	}
	if line := bytes.TrimSpace(out); len(line) > 0 {
		e, err := parseJournalEntry(line)
		if err != nil {
			return fmt.Errorf("journal %s: find the end of the journal: %w", j.key, err)
		}
		j.cursor = e.Cursor
	}
	// No matching entry yet: reading from the head reads exactly the
	// entries written from now on.
	return nil
}

// query runs a one-shot journalctl (no --follow) with the source's matches.
func (j *JournalFollower) query(ctx context.Context, extra ...string) (out []byte, stderr string, err error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	args := append(j.commonArgs(), "--output-fields=__CURSOR")
	args = append(args, extra...)
	args = append(args, "--")
	args = append(args, j.matches...)
	cmd := exec.CommandContext(ctx, j.bin, args...)
	var eb limitedBuffer
	cmd.Stderr = &eb
	out, err = cmd.Output()
	if err != nil {
		return nil, eb.String(), fmt.Errorf("%s %s: %w: %s", j.bin, strings.Join(extra, " "), err, strings.TrimSpace(eb.String()))
	}
	return out, eb.String(), nil
}

func (j *JournalFollower) commonArgs() []string {
	args := []string{"--no-pager", "--quiet", "--output=json", "--all"}
	if j.dir != "" {
		args = append(args, "--directory="+j.dir)
	}
	return args
}

// followArgs is the command line of the following journalctl. --all keeps
// journalctl from printing fields over 4 KiB as null.
func (j *JournalFollower) followArgs() []string {
	args := append(j.commonArgs(), "--follow", "--no-tail", "--output-fields="+strings.Join(journalFields, ","))
	if j.cursor != "" {
		args = append(args, "--cursor="+j.cursor)
	}
	args = append(args, "--")
	return append(args, j.matches...)
}

// Batches delivers lines in journal order. The consumer must commit (or
// drop) a batch before receiving the next one: the Text of its lines is
// reused afterwards. The channel is closed when following stops.
func (j *JournalFollower) Batches() <-chan []Line { return j.out.out }

// Stats returns a snapshot: Files has one entry, the source's key, with the
// position of the last line delivered and Open 1 while journalctl runs;
// BytesRead counts journalctl's JSON output; Lost counts entries that could
// not be parsed and saved cursors that were rejected.
func (j *JournalFollower) Stats() Stats {
	pos := j.out.lastSent()
	open := 0
	if j.pid.Load() != 0 {
		open = 1
	}
	return Stats{
		Files:            []FileStats{{Path: j.key, Pos: pos, Open: open}},
		LinesRead:        j.out.lines.Load(),
		BytesRead:        j.c.bytes.Load(),
		LongLinesSkipped: j.c.long.Load(),
		Lost:             j.c.lost.Load(),
		Batches:          j.out.batches.Load(),
	}
}

// Restarts is how many times journalctl exited and was started again.
func (j *JournalFollower) Restarts() uint64 { return j.restarts.Load() }

func (j *JournalFollower) run(ctx context.Context) {
	defer close(j.out.out)
	delay := journalRestartMin
	for {
		began := j.opt.Clock.Now()
		n, err := j.follow(ctx)
		if ctx.Err() != nil {
			return
		}
		j.restarts.Add(1)
		if n > 0 || j.opt.Clock.Now().Sub(began) > journalRestartMax {
			// It worked for a while: this is a new failure, not
			// the same one again.
			delay = journalRestartMin
		}
		j.log.Warn("journalctl stopped; restarting", "err", err, "cursor", j.cursor, "delay", delay)
		if !core.Sleep(j.opt.Clock, delay, ctx.Done()) {
			return
		}
		delay = min(delay*2, journalRestartMax)
	}
}

// follow runs one journalctl --follow until it exits or ctx is cancelled.
// It returns how many entries were read.
func (j *JournalFollower) follow(ctx context.Context) (int, error) {
	cmd := exec.CommandContext(ctx, j.bin, j.followArgs()...)
	// SIGTERM first so journalctl exits cleanly; WaitDelay kills it if it
	// does not.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 2 * time.Second
	setParentDeathSignal(cmd)
	var stderr limitedBuffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, fmt.Errorf("journalctl stdout: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s: %w", j.bin, err)
	}
	j.pid.Store(int64(cmd.Process.Pid))
	j.skip = j.cursor
	n, rerr := j.read(ctx, out)
	if rerr != nil && ctx.Err() == nil {
		// Reading failed while journalctl may still be writing; it
		// must go before Wait can return.
		_ = cmd.Process.Kill()
	}
	werr := cmd.Wait()
	j.pid.Store(0)
	switch {
	case rerr != nil:
		return n, fmt.Errorf("read journalctl output: %w", rerr)
	case werr != nil:
		return n, fmt.Errorf("journalctl: %w: %s", werr, strings.TrimSpace(stderr.String()))
	default:
		return n, fmt.Errorf("journalctl exited: %s", strings.TrimSpace(stderr.String()))
	}
}

// read consumes journalctl's output, one JSON entry per line, through a
// buffer of jsonMax bytes: a longer entry is skipped without being held in
// memory. A batch is sent whenever no more output is buffered, so entries
// are delivered as soon as journalctl writes them.
func (j *JournalFollower) read(ctx context.Context, r io.Reader) (int, error) {
	br := bufio.NewReaderSize(r, j.jsonMax)
	n := 0
	for {
		if br.Buffered() == 0 && !j.out.flush(ctx) {
			return n, nil
		}
		line, err := br.ReadSlice('\n')
		j.c.bytes.Add(uint64(len(line)))
		if errors.Is(err, bufio.ErrBufferFull) {
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = br.ReadSlice('\n')
				j.c.bytes.Add(uint64(len(line)))
			}
			if total := j.c.long.Add(1); core.Sparse(total-1, total) {
				j.log.Warn("skipped over-long journal entry", "max_json_bytes", j.jsonMax, "after_cursor", j.cursor, "skipped_so_far", total)
			}
			if err == nil {
				continue
			}
		}
		if err != nil {
			// At EOF a partial line is an entry journalctl did not
			// finish; its cursor was not taken, so the restart
			// prints it again whole.
			j.out.flush(ctx)
			if errors.Is(err, io.EOF) {
				return n, nil
			}
			return n, err
		}
		n++
		if !j.entry(ctx, line[:len(line)-1]) {
			return n, nil
		}
	}
}

// entry turns one JSON line into a Line of the current batch. It reports
// false when ctx was cancelled.
func (j *JournalFollower) entry(ctx context.Context, line []byte) bool {
	e, err := parseJournalEntry(line)
	if err != nil {
		if total := j.c.lost.Add(1); core.Sparse(total-1, total) {
			j.log.Warn("unreadable journal entry skipped", "err", err, "line", truncate(line, 200), "skipped_so_far", total)
		}
		return true
	}
	skip := j.skip
	j.skip = ""
	if e.Cursor == skip {
		// The entry the run started at (--cursor): already read.
		return true
	}
	j.cursor = e.Cursor
	if !anyMatch(j.units, e.Unit) || !anyMatch(j.idents, e.Identifier) {
		return true
	}
	size := journalLineLen(&e)
	if size > j.opt.MaxLineBytes {
		if total := j.c.long.Add(1); core.Sparse(total-1, total) {
			j.log.Warn("skipped over-long journal entry", "cursor", e.Cursor, "bytes", size, "max_bytes", j.opt.MaxLineBytes, "skipped_so_far", total)
		}
		return true
	}
	b, ok := j.out.room(ctx, size)
	if !ok {
		return false
	}
	start := len(b.arena)
	now := j.opt.Clock.Now()
	b.arena = appendJournalLine(b.arena, &e, now)
	b.add(start, Line{Path: j.key, Pos: Position{Path: j.key, Cursor: e.Cursor}, Read: now})
	return true
}

// limitedBuffer keeps the first journalStderrMax bytes written to it: the
// reason journalctl failed, without letting a chatty one grow memory.
type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := journalStderrMax - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string { return string(l.b) }

// truncate quotes the start of b for a log message.
func truncate(b []byte, n int) string {
	if len(b) > n {
		return fmt.Sprintf("%q...", b[:n])
	}
	return fmt.Sprintf("%q", b)
}
