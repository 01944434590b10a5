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

// fakeClock drives RotateWait deterministically: the writer advances it only
// once it has stopped writing to a rotated file, so the follower can never
// give up on that file early, however slow the machine.
type fakeClock = testutil.FakeClock

func newFakeClock() *fakeClock { return testutil.NewFakeClock(time.Unix(1_700_000_000, 0)) }

// manualWaker wakes the follower only when the test says so.
type manualWaker chan struct{}

func (w manualWaker) Wake() <-chan struct{} { return w }

func (w manualWaker) kick() {
	select {
	case w <- struct{}{}:
	default:
	}
}

const testRotateWait = time.Second

func testOptions(clk *fakeClock) Options {
	return Options{
		Clock:        clk,
		RotateWait:   testRotateWait,
		PollInterval: 2 * time.Millisecond,
		Logger:       testLogger(),
		MaxBatch:     97, // odd size: batches end at arbitrary lines
	}
}

// collector plays the daemon: it copies each batch and commits the last
// position of each path.
type collector struct {
	mu      sync.Mutex
	lines   []string
	byPath  map[string][]string
	pos     map[string]Position
	updated chan struct{}
	closed  chan struct{}
}

func collect(t *testing.T, f *Follower) *collector {
	t.Helper()
	c := &collector{byPath: map[string][]string{}, pos: map[string]Position{}, updated: make(chan struct{}, 1), closed: make(chan struct{})}
	go func() {
		defer close(c.closed)
		for b := range f.Batches() {
			c.commit(b)
		}
	}()
	return c
}

func (c *collector) commit(b []Line) {
	c.mu.Lock()
	for _, l := range b {
		c.lines = append(c.lines, string(l.Text))
		c.byPath[l.Path] = append(c.byPath[l.Path], string(l.Text))
		c.pos[l.Path] = l.Pos
	}
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

// waitFor polls cond until it holds or the timeout passes, calling nudge
// (e.g. advance the clock) between polls.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool, nudge func()) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			if dump != nil {
				dump(t)
			}
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		case <-tick.C:
			if nudge != nil {
				nudge()
			}
		}
	}
}

// dump, when set by a test, explains a timeout.
var dump func(t *testing.T)

// startFollow starts a follower that is stopped (and waited for) at cleanup.
func startFollow(t *testing.T, paths []string, saved map[string]Position, opt Options) (*Follower, *collector) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f, err := Follow(ctx, paths, saved, opt)
	if err != nil {
		cancel()
		t.Fatalf("Follow: %v", err)
	}
	c := collect(t, f)
	t.Cleanup(func() {
		cancel()
		<-c.closed
	})
	return f, c
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

func (w *logWriter) write(t *testing.T, fd *os.File, n int) {
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
			return
		}
		data = data[k:]
	}
}

func (w *logWriter) lines() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.written...)
}

func appendFile(t *testing.T, path string) *os.File {
	t.Helper()
	fd, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	return fd
}

// shiftRotated renames path.N to path.N+1 ... and path to path.1, like
// logrotate's numbered rotation.
func shiftRotated(t *testing.T, path string) {
	t.Helper()
	n := 1
	for {
		if _, err := os.Stat(fmt.Sprintf("%s.%d", path, n)); err != nil {
			break
		}
		n++
	}
	for k := n - 1; k >= 1; k-- {
		if err := os.Rename(fmt.Sprintf("%s.%d", path, k), fmt.Sprintf("%s.%d", path, k+1)); err != nil {
			t.Fatal(err)
		}
	}
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

// startManual follows path with notifications off and a waker the test
// kicks by hand; idle receives each time the follower has caught up, so a
// test knows it has read everything there is without sleeping.
func startManual(t *testing.T, path string) (manualWaker, <-chan struct{}, *collector) {
	t.Helper()
	opt := testOptions(newFakeClock())
	wk := make(manualWaker, 1)
	idle := make(chan struct{}, 100)
	opt.Waker, opt.NoNotify = wk, true
	opt.onIdle = func() { idle <- struct{}{} }
	_, c := startFollow(t, []string{path}, nil, opt)
	return wk, idle, c
}
