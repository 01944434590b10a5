package daemon

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/internal/storetest"
	"github.com/mailjail/mailjail/internal/testutil"
	"github.com/mailjail/mailjail/watcher"
)

// Log rotation while a writer appends at full speed and the daemon runs:
// every event written is stored as exactly one strike. Each event has its
// own client address, so a miss or a double count names the very line.
//
// The three ways logs are rotated, each three times in a row:
//
//   - rename: logrotate's "create" — rspamd.log becomes rspamd.log.1 (older
//     copies shift up), a new empty rspamd.log is created, the writer goes on
//     appending to the renamed file for a while and only then reopens (what
//     rspamd does on SIGUSR1);
//   - copytruncate: rspamd.log is copied to rspamd.log.1 and truncated in
//     place; the writer keeps its descriptor (O_APPEND);
//   - delete: rspamd.log is removed and recreated; the writer goes on
//     appending to the deleted file for a while before it reopens.
//
// Two windows are inherent to the rotation methods, not to mailjail, and the
// writer is kept out of them so that the comparison can be exact: nothing is
// written between copytruncate's copy and its truncate (logrotate itself
// loses such lines), and a file is not rotated away by copytruncate before
// the daemon has read a line of its current content, nor deleted before the
// daemon has opened it (a deleted file nobody holds open cannot be read; a
// truncated file whose new content was never read looks like growth — the
// residual risks listed in watcher/doc.go).
func TestRotationWhileWritingCountsEveryEventOnce(t *testing.T) {
	for _, mode := range []string{"rename", "copytruncate", "delete"} {
		t.Run(mode, func(t *testing.T) { testRotationMode(t, mode) })
	}
}

const (
	rotPhaseLines = 4000 // events written between two rotations (at least)
	rotRotations  = 3
	rotLinesOnOld = 500 // events appended to a renamed/deleted file before the writer reopens
	// The follower runs on a fake clock, moved rotPollEvery every
	// rotTickEvery of real time: a rotated file is given up only when the
	// writer has reopened and moved the clock past rotRotateWait, however
	// slow the machine, so a late write to it can never be lost to timing.
	rotRotateWait  = time.Hour
	rotPollEvery   = 50 * time.Millisecond
	rotTickEvery   = 5 * time.Millisecond
	rotCatchUpTime = 20 * time.Second
)

func testRotationMode(t *testing.T, mode string) {
	dir, err := os.MkdirTemp("", "mjrot") // short: unix socket path limit
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cfg := rotationConfig(t, dir)
	logPath := cfg.Jails[0].LogPath[0]
	if err := os.WriteFile(logPath, nil, 0o644); err != nil {
		t.Fatal(err)
	}

	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	clock := testutil.NewFakeClock(time.Now())
	go driveClock(ctx, clock)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cfg, slog.New(slog.NewTextHandler(logs, nil)), Options{
			Watcher: watcher.Options{RotateWait: rotRotateWait, PollInterval: rotPollEvery, Clock: clock},
		})
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("daemon: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("daemon did not stop within 15 s")
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("daemon log:\n%s", logs.String())
		}
	})
	// The control socket is listened on after the logs are followed: from
	// then on everything appended to the (empty) log is read.
	pollUntil(t, "daemon to follow the log", 15*time.Second, func() bool {
		select {
		case err := <-done:
			t.Fatalf("daemon exited: %v", err)
		default:
		}
		_, err := os.Stat(cfg.Global.Socket)
		return err == nil
	})

	w, err := startRotWriter(logPath, clock)
	if err != nil {
		t.Fatal(err)
	}
	db := openReadOnly(t, cfg.Global.Database)
	started := time.Now()

	var rotErr error
	for r := 1; r <= rotRotations; r++ {
		if rotErr = w.waitWritten(int64(r*rotPhaseLines), 30*time.Second); rotErr != nil {
			break
		}
		switch mode {
		case "rename":
			rotErr = rotateRename(logPath, r, w, db)
		case "copytruncate":
			rotErr = rotateCopyTruncate(logPath, r, w, db)
		case "delete":
			rotErr = rotateDelete(logPath, w, db)
		}
		if rotErr != nil {
			break
		}
	}
	written := w.finish(int64((rotRotations + 1) * rotPhaseLines))
	if rotErr != nil {
		t.Fatalf("%s rotation: %v\n(events written after this point may not have been read yet)\n%s", mode, rotErr, db.diff(t, written))
	}
	if w.err != nil {
		t.Fatalf("writer: %v", w.err)
	}
	wroteFor := time.Since(started)

	// Caught up: every event stored. Then the count must stay: nothing is
	// read a second time once the rotated files are retired (RotateWait)
	// and the follower has polled again.
	if !testutil.WaitFor(rotCatchUpTime, func() bool { return db.strikes(t) >= written }) || db.strikes(t) != written {
		n := db.strikes(t)
		t.Fatalf("%s: %d events written, %d strikes stored\n%s", mode, written, n, db.diff(t, written))
	}
	caughtUp := time.Since(started)
	clock.Advance(2 * rotRotateWait) // every rotated file is given up
	if !testutil.HoldsFor(20*rotTickEvery, func() bool { return db.strikes(t) == written }) {
		n := db.strikes(t)
		t.Fatalf("%s: %d events written, %d strikes stored after catching up\n%s", mode, written, n, db.diff(t, written))
	}
	if d := db.diff(t, written); d != "" {
		t.Fatalf("%s: %d strikes stored, but not one per event:\n%s", mode, written, d)
	}
	stop()
	if strings.Contains(logs.String(), "lost") {
		t.Errorf("%s: the daemon warned about lost data although every event was counted:\n%s", mode, grepLines(logs.String(), "lost"))
	}
	t.Logf("%s: %d rotations, %d events written in %v (%d after a rename/delete to the old file), %d strikes stored, caught up after %v",
		mode, rotRotations, written, wroteFor.Round(time.Millisecond), w.onOld.Load(), written, caughtUp.Round(time.Millisecond))
}

func rotationConfig(t *testing.T, dir string) *config.Config {
	t.Helper()
	return testConfig(t, dir, "maxretry = 1000000\nfindtime = \"1h\"\n")
}

// rotAddr is the client address of event i: one address per event.
func rotAddr(i int64) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
}

// rotLine is rspamd's summary line for event i. The task tag differs per
// line, as rspamd's does, so files do not share their first bytes.
func rotLine(i int64, now time.Time) string {
	return now.UTC().Format("2006-01-02 15:04:05") + fmt.Sprintf(` #1(rspamd_proxy) <%x>; proxy; rspamd_task_write_log: id: <m%d@x>, ip: %s`, i+0x100000, i, rotAddr(i)) +
		`, from: <a@b>, (default: F (soft reject): [0.00/15.00] []), len: 1, forced: soft reject "Ratelimit "ip" exceeded"; score=nan (set by ratelimit)` + "\n"
}

// rotWriter appends events to a log through its own descriptor, one
// write(2) per line, without pause. Between two lines it runs what the
// rotator hands it (reopen, pause).
type rotWriter struct {
	path    string
	f       *os.File
	ops     chan func()
	written atomic.Int64 // events written
	onOld   atomic.Int64 // events written to a file after it was rotated away
	old     atomic.Bool  // the descriptor points at a rotated file
	stopAt  atomic.Int64 // stop once this many are written (0: not yet known)
	done    chan struct{}
	err     error

	truncatedAt int64 // events written before the last truncation (rotator only)
	clock       *testutil.FakeClock
}

func startRotWriter(path string, clock *testutil.FakeClock) (*rotWriter, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return nil, err
	}
	w := &rotWriter{path: path, f: f, ops: make(chan func()), done: make(chan struct{}), clock: clock}
	go w.run()
	return w, nil
}

func (w *rotWriter) run() {
	defer close(w.done)
	defer func() { w.f.Close() }()
	for i := int64(0); ; i++ {
		select {
		case op := <-w.ops:
			op()
		default:
		}
		if s := w.stopAt.Load(); s > 0 && i >= s {
			return
		}
		if i >= 50*rotPhaseLines {
			w.err = fmt.Errorf("%d events written and the rotations are not done", i)
			return
		}
		if _, err := w.f.WriteString(rotLine(i, time.Now())); err != nil {
			w.err = err
			return
		}
		w.written.Add(1)
		if w.old.Load() {
			w.onOld.Add(1)
		}
	}
}

// do runs fn on the writer's goroutine, between two lines, and returns when
// fn has returned.
func (w *rotWriter) do(fn func()) error {
	ran := make(chan struct{})
	select {
	case w.ops <- func() { fn(); close(ran) }:
	case <-w.done:
		return fmt.Errorf("writer stopped: %v", w.err)
	}
	<-ran
	return nil
}

// reopen is rspamd's SIGUSR1: the writer closes the rotated file and opens
// the one at the path. It returns how many events were written before,
// all of them to the rotated file or earlier ones.
func (w *rotWriter) reopen() (before int64, err error) {
	if e := w.do(func() {
		before = w.written.Load()
		w.f.Close()
		w.f, err = os.OpenFile(w.path, os.O_WRONLY|os.O_APPEND, 0)
		w.old.Store(false)
	}); e != nil {
		return 0, e
	}
	return before, err
}

// pause stops the writer until the returned function is called.
func (w *rotWriter) pause() (resume func(), err error) {
	release := make(chan struct{})
	paused := make(chan struct{})
	go func() {
		if e := w.do(func() { close(paused); <-release }); e != nil {
			err = e
			close(paused)
		}
	}()
	<-paused
	return func() { close(release) }, err
}

func (w *rotWriter) waitWritten(n int64, timeout time.Duration) error {
	stopped := false
	ok := testutil.WaitFor(timeout, func() bool {
		select {
		case <-w.done:
			stopped = true
			return true
		default:
		}
		return w.written.Load() >= n
	})
	switch {
	case stopped && w.written.Load() < n:
		return fmt.Errorf("writer stopped after %d events: %v", w.written.Load(), w.err)
	case !ok:
		return fmt.Errorf("only %d of %d events written after %v", w.written.Load(), n, testutil.Scale(timeout))
	}
	return nil
}

// finish lets the writer write at least min events, stops it and returns
// how many it wrote.
func (w *rotWriter) finish(min int64) int64 {
	w.stopAt.Store(max(min, w.written.Load()+1))
	<-w.done
	return w.written.Load()
}

// shiftRotated renames path.k to path.k+1, highest first, like logrotate.
func shiftRotated(path string, upTo int) error {
	for k := upTo; k >= 1; k-- {
		from := fmt.Sprintf("%s.%d", path, k)
		if _, err := os.Stat(from); err != nil {
			continue
		}
		if err := os.Rename(from, fmt.Sprintf("%s.%d", path, k+1)); err != nil {
			return err
		}
	}
	return nil
}

// rotateRename is logrotate's "create" rotation with a postrotate SIGUSR1
// that comes late: the writer appends rotLinesOnOld events to the renamed
// file after the new one exists (lateReopen).
func rotateRename(path string, r int, w *rotWriter, db *roDB) error {
	if err := shiftRotated(path, r); err != nil {
		return err
	}
	if err := os.Rename(path, path+".1"); err != nil {
		return err
	}
	w.old.Store(true)
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		return err
	}
	return w.lateReopen(db)
}

// lateReopen is the end of a rename or delete rotation: the writer appends
// half of rotLinesOnOld events to the rotated file at full speed, pauses
// until the daemon has counted everything (it then sits at the end of the
// rotated file, the new one waiting), appends the other half to the rotated
// file — lines a follower that gives up on a rotated file too early loses —
// and only then reopens.
func (w *rotWriter) lateReopen(db *roDB) error {
	if err := w.waitWritten(w.written.Load()+rotLinesOnOld/2, 10*time.Second); err != nil {
		return err
	}
	resume, err := w.pause()
	if err != nil {
		return err
	}
	err = w.waitStored(db, w.written.Load(), 15*time.Second)
	resume()
	if err != nil {
		return err
	}
	if err := w.waitWritten(w.written.Load()+rotLinesOnOld/2, 10*time.Second); err != nil {
		return err
	}
	before, err := w.reopen()
	if err != nil {
		return err
	}
	// Nothing is written to the rotated file any more. Once the daemon has
	// read it to its end, it may be given up.
	if err := w.waitStored(db, before, 15*time.Second); err != nil {
		return err
	}
	w.clock.Advance(rotRotateWait)
	return nil
}

// driveClock moves the follower's clock on, one poll interval every
// rotTickEvery, until ctx ends.
func driveClock(ctx context.Context, clock *testutil.FakeClock) {
	t := time.NewTicker(rotTickEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			clock.Advance(rotPollEvery)
		}
	}
}

// rotateDelete removes the log and creates a new one; the writer appends
// rotLinesOnOld events to the deleted file before it reopens (lateReopen). The file is
// deleted only once the daemon holds it open.
func rotateDelete(path string, w *rotWriter, db *roDB) error {
	if err := waitHeldOpen(path, 2, 10*time.Second); err != nil { // the writer and the daemon
		return err
	}
	if err := os.Remove(path); err != nil {
		return err
	}
	w.old.Store(true)
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		return err
	}
	return w.lateReopen(db)
}

// rotateCopyTruncate copies the log to path.1 and truncates it, the writer
// paused in between. It waits (the writer paused) until the daemon has
// stored an event of the log's current content.
func rotateCopyTruncate(path string, r int, w *rotWriter, db *roDB) error {
	resume, err := w.pause()
	if err != nil {
		return err
	}
	defer resume()
	if r > 1 {
		if err := w.waitStored(db, w.truncatedAt+1, 15*time.Second); err != nil {
			return err
		}
	}
	if err := shiftRotated(path, r); err != nil {
		return err
	}
	src, err := os.Open(path)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(path+".1", os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	if err := dst.Close(); err != nil {
		return err
	}
	if err := os.Truncate(path, 0); err != nil {
		return err
	}
	w.truncatedAt = w.written.Load()
	return nil
}

func (w *rotWriter) waitStored(db *roDB, n int64, timeout time.Duration) error {
	var got int64
	var err error
	if testutil.WaitFor(timeout, func() bool { got, err = db.count(); return err != nil || got >= n }) {
		return err
	}
	return fmt.Errorf("daemon stored %d of %d events after %v", got, n, testutil.Scale(timeout))
}

// waitHeldOpen waits until at least n descriptors of this process (the
// daemon runs in it) refer to the file at path.
func waitHeldOpen(path string, n int, timeout time.Duration) error {
	var want syscall.Stat_t
	if err := syscall.Stat(path, &want); err != nil {
		return err
	}
	held := 0
	var err error
	if testutil.WaitFor(timeout, func() bool {
		held, err = heldOpen(want)
		return err != nil || held >= n
	}) {
		return err
	}
	return fmt.Errorf("%s: %d descriptors after %v, want %d", path, held, testutil.Scale(timeout), n)
}

// heldOpen counts this process's descriptors of the file want.
func heldOpen(want syscall.Stat_t) (int, error) {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0, err
	}
	held := 0
	for _, e := range ents {
		var st syscall.Stat_t
		if syscall.Stat(filepath.Join("/proc/self/fd", e.Name()), &st) == nil && st.Dev == want.Dev && st.Ino == want.Ino {
			held++
		}
	}
	return held, nil
}

// roDB reads the daemon's database while it runs.
type roDB struct{ st *store.Store }

func openReadOnly(t *testing.T, path string) *roDB {
	t.Helper()
	var st *store.Store
	pollUntil(t, "database", 10*time.Second, func() bool {
		var err error
		st, err = store.Open(path, store.Options{ReadOnly: true})
		return err == nil
	})
	t.Cleanup(func() { st.Close() })
	return &roDB{st: st}
}

func (d *roDB) count() (int64, error) {
	c, err := d.st.CountsByJail()
	if err != nil {
		return 0, err
	}
	return c["rl"].Strikes, nil
}

func (d *roDB) strikes(t *testing.T) int64 {
	t.Helper()
	n, err := d.count()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// diff lists the events 0..written-1 not stored exactly once, and strikes
// of addresses that were never written.
func (d *roDB) diff(t *testing.T, written int64) string {
	t.Helper()
	diff, err := storetest.CountDiff(d.st, written, rotAddr)
	if err != nil {
		t.Fatal(err)
	}
	return diff
}

func pollUntil(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, timeout, what, cond)
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// syncBuffer collects the daemon's log from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
