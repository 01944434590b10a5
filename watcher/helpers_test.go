package watcher

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/testutil"
)

// fakeClock drives RotateWait and the poll ticker deterministically: the
// writer advances it only once it has stopped writing to a rotated file, so
// the follower can never give up on that file early, however slow the
// machine.
type fakeClock = testutil.FakeClock

func newFakeClock() *fakeClock { return testutil.NewFakeClock(time.Unix(1_700_000_000, 0)) }

const (
	testRotateWait = time.Second
	// testDeadline bounds every wait (scaled under -race). A passing test
	// never reaches it: the waits are handshakes, not guesses.
	testDeadline = 20 * time.Second
	// drainRounds bounds the RotateWait-and-kick rounds a drain may take:
	// each round retires at most one finished file per path.
	drainRounds = 100
)

// testOptions follows with a fake clock, no filesystem notifications and
// (set by startFollow) a waker only the test kicks: the follower reads only
// when told to, and the test knows when it is done.
func testOptions(clk *fakeClock) Options {
	return Options{
		Clock:        clk,
		RotateWait:   testRotateWait,
		PollInterval: 2 * time.Millisecond,
		Logger:       testLogger(),
		MaxBatch:     97, // odd size: batches end at arbitrary lines
		NoNotify:     true,
	}
}

// followed is a running follower with its waker, its clock and the
// collector that plays the daemon.
type followed struct {
	*Follower
	wk  *testutil.TestWaker
	clk *fakeClock
	c   *collector
	// dump, when set, explains a failed drain.
	dump func(t *testing.T)
	// stop cancels the follower and waits until its batches are closed
	// and committed; cleanup calls it too.
	stop func()
}

// startFollow starts a follower that is stopped (and waited for) at
// cleanup. A nil opt.Waker gets a TestWaker; opt.Clock must be a fakeClock.
func startFollow(t *testing.T, paths []string, saved map[string]Position, opt Options) *followed {
	t.Helper()
	wk, ok := opt.Waker.(*testutil.TestWaker)
	if opt.Waker == nil {
		wk = testutil.NewTestWaker()
		opt.Waker, ok = wk, true
	}
	if !ok {
		t.Fatal("startFollow needs a TestWaker")
	}
	ctx, cancel := context.WithCancel(context.Background())
	f, err := Follow(ctx, paths, saved, opt)
	if err != nil {
		cancel()
		t.Fatalf("Follow: %v", err)
	}
	h := &followed{Follower: f, wk: wk, clk: opt.Clock.(*fakeClock), c: collect(f)}
	h.stop = func() {
		cancel()
		<-h.c.closed
	}
	t.Cleanup(h.stop)
	return h
}

// followLog creates the file name in a new directory and follows it.
func followLog(t *testing.T, name string, opt Options) (path string, fd *os.File, h *followed) {
	t.Helper()
	path = t.TempDir() + "/" + name
	fd = appendFile(t, path)
	return path, fd, startFollow(t, []string{path}, nil, opt)
}

// sync kicks the follower and waits until it has read everything there is
// and the collector has committed every batch it was sent.
func (h *followed) sync(t *testing.T) {
	t.Helper()
	h.wk.KickAndWait(t, testDeadline)
	h.c.waitBatches(t, h.Stats().Batches)
}

// syncLines syncs and requires exactly n lines committed so far.
func (h *followed) syncLines(t *testing.T, n int, what string) {
	t.Helper()
	h.sync(t)
	if got := h.c.count(); got != n {
		t.Fatalf("%d lines %s, want %d", got, what, n)
	}
}

// drain lets RotateWait pass and syncs, round after round, until the
// collector holds n lines.
func (h *followed) drain(t *testing.T, n int) {
	t.Helper()
	for round := 0; h.c.count() < n; round++ {
		if round == drainRounds {
			if h.dump != nil {
				h.dump(t)
			}
			t.Fatalf("%d of %d lines after %d rounds of RotateWait and a kick; stats %+v", h.c.count(), n, round, h.Stats())
		}
		h.clk.Advance(testRotateWait)
		h.sync(t)
	}
}

// collector plays the daemon: it copies each batch and commits the last
// position of each path.
type collector struct {
	mu      sync.Mutex
	lines   []string
	posns   []Position // of each line
	byPath  map[string][]string
	pos     map[string]Position
	batches uint64
	updated chan struct{} // receives after each commit
	closed  chan struct{}
}

func newCollector() *collector {
	return &collector{byPath: map[string][]string{}, pos: map[string]Position{}, updated: make(chan struct{}, 1), closed: make(chan struct{})}
}

// collect commits every batch of src until its channel closes.
func collect(src Source) *collector {
	c := newCollector()
	go func() {
		defer close(c.closed)
		for b := range src.Batches() {
			c.commit(b)
		}
	}()
	return c
}

func (c *collector) commit(b []Line) {
	c.mu.Lock()
	for _, l := range b {
		c.lines = append(c.lines, string(l.Text))
		c.posns = append(c.posns, l.Pos)
		c.byPath[l.Path] = append(c.byPath[l.Path], string(l.Text))
		c.pos[l.Path] = l.Pos
	}
	c.batches++
	c.mu.Unlock()
	select {
	case c.updated <- struct{}{}:
	default:
	}
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.lines)
}

func (c *collector) snapshot() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.lines...)
}

// waitUntil waits for commits until cond, which runs with c.mu held, holds;
// it fails t at the deadline. For what no test can kick (fsnotify,
// journald) and for a writer that waits for the follower to be under way.
func (c *collector) waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(testutil.Scale(testDeadline))
	defer deadline.Stop()
	for {
		c.mu.Lock()
		ok := cond()
		c.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-c.updated:
		case <-deadline.C:
			t.Fatalf("timed out after %s waiting for %s (%d lines so far)", testutil.Scale(testDeadline), what, c.count())
		}
	}
}

// waitBatches waits until n batches are committed: they were all sent, so
// this is a matter of the collector's goroutine getting to them.
func (c *collector) waitBatches(t *testing.T, n uint64) {
	t.Helper()
	c.waitUntil(t, fmt.Sprintf("%d committed batches", n), func() bool { return c.batches >= n })
}

// waitLines waits until n lines are committed.
func (c *collector) waitLines(t *testing.T, n int, what string) {
	t.Helper()
	c.waitUntil(t, fmt.Sprintf("%d lines (%s)", n, what), func() bool { return len(c.lines) >= n })
}

// logWriter writes numbered lines of varying length in chunks that ignore
// line boundaries, so the follower regularly sees half-written lines.
type logWriter struct {
	rng     *rand.Rand
	name    string
	seq     int
	mu      sync.Mutex
	written []string
}

func newLogWriter(seed int64, name string) *logWriter {
	return &logWriter{rng: rand.New(rand.NewSource(seed)), name: name}
}

// write writes n lines to fd. It reports errors with t.Error, so writer
// goroutines may call it; they then stop.
func (w *logWriter) write(t *testing.T, fd *os.File, n int) bool {
	var b strings.Builder
	w.mu.Lock()
	for range n {
		w.seq++
		l := fmt.Sprintf("%08d %s <%x> rspamd_task_write_log: id: <%06x>, qid: <%s>, ip: 192.0.2.%d, %s",
			w.seq, w.name, w.rng.Int63(), w.rng.Intn(1<<24), w.name, w.seq%250, strings.Repeat("x", w.rng.Intn(200)))
		w.written = append(w.written, l)
		b.WriteString(l)
		b.WriteByte('\n')
	}
	w.mu.Unlock()
	data := []byte(b.String())
	for len(data) > 0 {
		k := min(len(data), 1+w.rng.Intn(4096))
		if _, err := fd.Write(data[:k]); err != nil {
			t.Errorf("write: %v", err)
			return false
		}
		data = data[k:]
	}
	return true
}

func (w *logWriter) lines() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.written...)
}

// appendFile opens path for appending, creating it; the file is closed at
// cleanup if the test has not closed it.
func appendFile(t *testing.T, path string) *os.File {
	t.Helper()
	fd, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fd.Close() })
	return fd
}

// rotate is logrotate's numbered rename rotation: path.N becomes path.N+1
// ..., path becomes path.1. Errors are reported with t.Error, so writer
// goroutines may call it.
func rotate(t *testing.T, path string) bool {
	if !shiftRotated(t, path) {
		return false
	}
	if err := os.Rename(path, path+".1"); err != nil {
		t.Error(err)
		return false
	}
	return true
}

// rotateReopen rotates path, closes the writer's old descriptor fd, and
// writes n lines to a new file at path, which it returns open.
func rotateReopen(t *testing.T, path string, fd *os.File, w *logWriter, n int) *os.File {
	t.Helper()
	if !rotate(t, path) {
		t.FailNow()
	}
	fd.Close()
	fd = appendFile(t, path)
	w.write(t, fd, n)
	return fd
}

// shiftRotated renames path.N to path.N+1, ..., path.1 to path.2, making
// room for a new path.1.
func shiftRotated(t *testing.T, path string) bool {
	n := 1
	for {
		if _, err := os.Stat(fmt.Sprintf("%s.%d", path, n)); err != nil {
			break
		}
		n++
	}
	for k := n - 1; k >= 1; k-- {
		if err := os.Rename(fmt.Sprintf("%s.%d", path, k), fmt.Sprintf("%s.%d", path, k+1)); err != nil {
			t.Error(err)
			return false
		}
	}
	return true
}

// sameLines reports the first difference between want and got.
func sameLines(t *testing.T, want, got []string) {
	t.Helper()
	if len(want) != len(got) {
		t.Errorf("got %d lines, want %d", len(got), len(want))
	}
	seen := make(map[string]int, len(got))
	for _, g := range got {
		seen[g]++
	}
	for _, w := range want {
		if seen[w] == 0 {
			t.Errorf("missing line %.40q", w)
			break
		}
	}
	for g, n := range seen {
		if n > 1 {
			t.Errorf("line delivered %d times: %.40q", n, g)
			break
		}
	}
	for i := range min(len(want), len(got)) {
		if want[i] != got[i] {
			t.Errorf("line %d: got %.40q, want %.40q", i, got[i], want[i])
			return
		}
	}
}

// testLogger discards, or prints with WATCHER_DEBUG=1.
func testLogger() *slog.Logger {
	if os.Getenv("WATCHER_DEBUG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// writeString appends s to fd, failing t.
func writeString(t *testing.T, fd *os.File, s string) {
	t.Helper()
	if _, err := fd.WriteString(s); err != nil {
		t.Fatal(err)
	}
}
