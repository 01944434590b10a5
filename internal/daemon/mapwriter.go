package daemon

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailjail/mailjail/internal/core"
	"github.com/mailjail/mailjail/mapfile"
)

// mapWriter rewrites the map in the background whenever it is kicked.
// Kicks that arrive while a write is under way collapse into one more
// write, so a burst of thousands of bans costs a handful of rewrites, and
// reading logs never waits for the disk.
type mapWriter struct {
	path    string
	entries func() []mapfile.Entry
	clock   core.Clock
	log     *slog.Logger
	kick    chan struct{}
	changes atomic.Int64 // changes kicked since the last rewrite began
	done    chan struct{}
	wg      sync.WaitGroup

	writeMu sync.Mutex // one write at a time, so renames happen in snapshot order

	mu      sync.Mutex
	writes  uint64
	lastErr error
	onWrite func(time.Time) // test and metrics hook, called after each write
}

func newMapWriter(path string, entries func() []mapfile.Entry, clock core.Clock, log *slog.Logger) *mapWriter {
	return &mapWriter{path: path, entries: entries, clock: clock, log: log, kick: make(chan struct{}, 1), done: make(chan struct{})}
}

// write rewrites the map now, synchronously.
func (w *mapWriter) write() error {
	w.writeMu.Lock()
	defer w.writeMu.Unlock()
	start := w.clock.Now()
	entries := w.entries()
	err := mapfile.Write(w.path, entries, start)
	w.mu.Lock()
	w.lastErr = err
	if err == nil {
		w.writes++
	}
	hook := w.onWrite
	w.mu.Unlock()
	if err != nil {
		w.log.Error("map not written; the previous map stays in force", "path", w.path, "err", err)
		return err
	}
	w.log.Debug("map written", "path", w.path, "entries", len(entries), "took", w.clock.Now().Sub(start))
	if hook != nil {
		hook(w.clock.Now())
	}
	return nil
}

// During a burst of bans (a botnet run: thousands a second) rewrites are
// spaced burstSpacing apart, so that each carries many bans and rspamd
// rereads a handful of maps, not thousands. A burst is burstBans or more
// changes waiting for one rewrite; fewer are written at once, so a single
// ban still reaches the map within milliseconds.
const (
	burstSpacing = 250 * time.Millisecond
	burstBans    = 50
)

func (w *mapWriter) start() {
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		retry := w.clock.NewTimer(time.Hour)
		retry.Stop()
		var last time.Time
		for {
			select {
			case <-w.kick:
			case <-retry.C():
			case <-w.done:
				return
			}
			if wait := burstSpacing - w.clock.Now().Sub(last); w.changes.Load() >= burstBans && wait > 0 {
				if !core.Sleep(w.clock, wait, w.done) {
					return
				}
			}
			last = w.clock.Now()
			w.changes.Store(0)
			if err := w.write(); err != nil {
				// Keep trying: the database has the bans, and the map must
				// catch up as soon as the disk has room again.
				retry.Reset(time.Second)
			}
		}
	}()
}

// Kick asks for a rewrite for n changed bans.
func (w *mapWriter) Kick(n int) {
	w.changes.Add(int64(n))
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// stop ends the writer after a final synchronous write.
func (w *mapWriter) stop() error {
	close(w.done)
	w.wg.Wait()
	return w.write()
}

func (w *mapWriter) stats() (uint64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.writes, w.lastErr
}
