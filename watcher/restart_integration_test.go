package watcher

import (
	"context"
	"maps"
	"math/rand"
	"os"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/testutil"
)

// restartWriter writes and rotates in its own goroutine, so that the
// restarts of TestRestartExactlyOnce fall at arbitrary points of it. It
// advances the clock past RotateWait once it stopped writing to a rotated
// file, as in TestRotationRenameFinishesOldFile.
func restartWriter(t *testing.T, path string, fd *os.File, w *logWriter, clk *fakeClock) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() { fd.Close() }()
		for r := range 8 {
			if !w.write(t, fd, 1200) {
				return
			}
			if r%2 != 0 {
				continue
			}
			if !rotate(t, path) || !w.write(t, fd, 100) {
				return
			}
			nfd, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
			if err != nil {
				t.Error(err)
				return
			}
			fd.Close()
			fd = nfd
			clk.Advance(2 * testRotateWait)
		}
	}()
	return done
}

// The consumer is killed (context cancelled, last batch possibly not
// committed) at random points while a writer keeps writing and rotating;
// each restart resumes from the committed positions. The committed lines
// must be exactly the written lines.
//
// The first run commits a line before the writer starts: a start without
// any committed position is a first start, which reads the file at the path
// from its beginning and nothing rotated away before it (a restart after a
// rotation then rightly skipped the whole first file).
func TestRestartExactlyOnce(t *testing.T) {
	dir := t.TempDir()
	rt := &restartTest{path: dir + "/rspamd.log", clk: newFakeClock(), w: newLogWriter(12, "restart"), rng: rand.New(rand.NewSource(13))}
	fd := appendFile(t, rt.path)
	rt.w.write(t, fd, 1)
	opt := testOptions(rt.clk)
	opt.FromStart = true
	_, rt.committed, rt.saved = runOnce(t, rt.path, nil, opt, 1)
	rt.writerDone = restartWriter(t, rt.path, fd, rt.w, rt.clk)

	restarts := 0
	for finished := false; !finished; restarts++ {
		if restarts > 500 {
			t.Fatal("too many restarts")
		}
		var crashed bool
		finished, crashed = rt.run(t)
		if !crashed && !finished {
			t.Fatalf("stalled with %d of %d lines committed", len(rt.committed), len(rt.w.lines()))
		}
	}
	t.Logf("%d lines over %d restarts", len(rt.committed), restarts)
	sameLines(t, rt.w.lines(), rt.committed)
}

// restartTest is the state TestRestartExactlyOnce keeps across restarts:
// what the consumer committed, and the writer.
type restartTest struct {
	path       string
	clk        *fakeClock
	w          *logWriter
	rng        *rand.Rand
	writerDone <-chan struct{}
	committed  []string
	saved      map[string]Position
}

// run is one run of the consumer: it commits until it crashes (at a random
// batch, while the writer runs) or has every line. Without a batch to
// take, it lets RotateWait pass once the writer is done and kicks the
// follower again as soon as it has caught up.
func (rt *restartTest) run(t *testing.T) (finished, crashed bool) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wk := testutil.NewTestWaker()
	opt := testOptions(rt.clk)
	opt.FromStart, opt.NoNotify, opt.Waker = true, false, wk
	f, err := Follow(ctx, []string{rt.path}, maps.Clone(rt.saved), opt)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		for range f.Batches() { // wait for the follower to stop
		}
	}()
	crashAfter := 1 + rt.rng.Intn(4)
	deadline := time.NewTimer(testutil.Scale(testDeadline))
	defer deadline.Stop()
	wk.Kick()
	for n := 0; ; {
		writing := true
		select {
		case <-rt.writerDone:
			writing = false
		default:
		}
		if !writing && len(rt.committed) >= len(rt.w.lines()) {
			return true, false
		}
		var b []Line
		select {
		case b = <-f.Batches():
		case <-wk.Idle():
			if !writing {
				rt.clk.Advance(testRotateWait)
			}
			wk.Kick()
			continue
		case <-deadline.C:
			return false, false
		}
		n++
		if writing && n == crashAfter && rt.rng.Intn(2) == 0 {
			return false, true // killed after receiving, before committing
		}
		// Commit: lines and positions together, as one transaction.
		for _, l := range b {
			rt.committed = append(rt.committed, string(l.Text))
			rt.saved[l.Path] = l.Pos
		}
		if writing && n == crashAfter {
			return false, true // killed right after committing
		}
	}
}
