package watcher

import (
	"context"
	"maps"
	"math/rand"
	"os"
	"testing"
	"time"
)

// The consumer is killed (context cancelled, last batch possibly not
// committed) at random points while a writer keeps writing and rotating;
// each restart resumes from the committed positions. The committed lines
// must be exactly the written lines.
func TestRestartExactlyOnce(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/rspamd.log"
	fd := appendFile(t, path)
	clk := newFakeClock()
	w := newLogWriter(12, "restart")
	rng := rand.New(rand.NewSource(13))

	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for r := range 8 {
			w.write(t, fd, 1200)
			if r%2 == 0 {
				shiftRotated(t, path)
				if err := os.Rename(path, path+".1"); err != nil {
					t.Error(err)
					return
				}
				w.write(t, fd, 100)
				nfd := appendFile(t, path)
				fd.Close()
				fd = nfd
				clk.Advance(2 * testRotateWait)
			}
		}
		fd.Close()
	}()

	var committed []string
	saved := map[string]Position{}
	finished := false
	restarts := 0
	for ; !finished; restarts++ {
		if restarts > 500 {
			t.Fatal("too many restarts")
		}
		ctx, cancel := context.WithCancel(context.Background())
		opt := testOptions(clk)
		opt.FromStart = true // without a saved position nothing was committed yet
		f, err := Follow(ctx, []string{path}, maps.Clone(saved), opt)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		writing := true
		select {
		case <-writerDone:
			writing = false
		default:
		}
		crashAfter := 1 + rng.Intn(4)
		tick := time.NewTicker(2 * time.Millisecond)
		deadline := time.After(10 * time.Second)
		for n := 0; ; {
			if !writing && len(committed) >= len(w.lines()) {
				finished = true
				break
			}
			var b []Line
			select {
			case b = <-f.Batches():
			case <-tick.C:
				select {
				case <-writerDone:
					writing = false
				default:
				}
				if !writing {
					clk.Advance(testRotateWait)
				}
				continue
			case <-deadline:
				t.Fatalf("stalled with %d of %d lines committed", len(committed), len(w.lines()))
			}
			n++
			if writing && n == crashAfter {
				if rng.Intn(2) == 0 {
					break // killed after receiving, before committing
				}
			}
			// Commit: lines and positions together, as one transaction.
			for _, l := range b {
				committed = append(committed, string(l.Text))
				saved[l.Path] = l.Pos
			}
			if writing && n == crashAfter {
				break // killed right after committing
			}
		}
		tick.Stop()
		cancel()
		for range f.Batches() { // wait for the old follower to stop
		}
	}
	t.Logf("%d lines over %d restarts", len(committed), restarts)
	sameLines(t, w.lines(), committed)
}
