package daemon

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/mailjail/mailjail/internal/control"
	"github.com/mailjail/mailjail/internal/core"
	"github.com/mailjail/mailjail/internal/store"
)

// purger removes old history (store.Purge) in a goroutine of its own, so
// that a purge of millions of rows never holds up the loop: the loop
// asks for a purge once a minute with what its configuration keeps, and
// the purger's transactions are small enough that a commit of the loop
// waits for one at most (bench/retention measures it).
type purger struct {
	st    *store.Store
	log   *slog.Logger
	clock core.Clock
	opt   store.PurgeOptions
	req   chan store.Retention // holds the newest request not yet taken

	mu   sync.Mutex
	last purgeResult
}

// purgeResult is the last purge, for status.
type purgeResult struct {
	At      time.Time // when it ended (zero: none yet)
	Took    time.Duration
	Removed int64 // rows deleted
	Err     string
}

func newPurger(st *store.Store, log *slog.Logger, clock core.Clock, opt store.PurgeOptions) *purger {
	if opt.Pause == nil {
		opt.Pause = Rest
	}
	return &purger{st: st, log: log, clock: clock, opt: opt, req: make(chan store.Retention, 1)}
}

// Rest waits as long as a purge transaction took (or until ctx ends):
// the daemon's loop then finds the store's connection free at least half
// of the time during a purge. It is a throttle, not a timing rule, so it
// waits on the wall clock.
func Rest(ctx context.Context, took time.Duration) {
	t := time.NewTimer(took)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// request asks for a purge without waiting: a request not yet taken is
// replaced by the newer one (a purge that takes longer than a minute is
// followed by one more, not by a queue of them).
func (p *purger) request(r store.Retention) {
	for {
		select {
		case p.req <- r:
			return
		default:
		}
		select {
		case <-p.req:
		default:
		}
	}
}

// run purges on request until ctx ends; a purge under way stops between
// two transactions, and what is left is purged after the next start.
func (p *purger) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-p.req:
			p.purge(ctx, r)
		}
	}
}

func (p *purger) purge(ctx context.Context, r store.Retention) {
	start := p.clock.Now()
	st, err := p.st.Purge(ctx, r, p.opt)
	res := purgeResult{At: p.clock.Now(), Took: p.clock.Now().Sub(start)}
	for _, n := range st.Removed {
		res.Removed += n
	}
	switch {
	case errors.Is(err, context.Canceled):
		return
	case err != nil:
		res.Err = err.Error()
		p.log.Error("purge old history", "err", err)
	case res.Removed > 0 || st.LinesCleared > 0:
		p.log.Info("purged old history", "removed", st.Removed, "lines_cleared", st.LinesCleared,
			"pages_freed", st.PagesFreed, "transactions", st.Batches, "took", res.Took.Round(time.Millisecond))
	}
	p.mu.Lock()
	p.last = res
	p.mu.Unlock()
}

// lastPurge returns the last purge that ended.
func (p *purger) lastPurge() purgeResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

// fillPurge adds the last purge to a status.
func (d *daemon) fillPurge(s *control.Status) {
	if last := d.purger.lastPurge(); !last.At.IsZero() {
		s.LastPurge = &control.PurgeStatus{At: last.At.UTC(), TookSec: last.Took.Seconds(), Removed: last.Removed, Error: last.Err}
	}
}

// requestPurge asks the purger for a purge of what the configuration
// no longer keeps at now.
func (d *daemon) requestPurge(now time.Time) {
	g := d.cfg.Global
	d.purger.request(d.eng.Retention(now, g.DBPurgeAge, g.DBMaxMatches))
}
