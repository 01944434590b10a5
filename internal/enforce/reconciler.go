package enforce

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailjail/mailjail/internal/core"
)

// During a burst of bans (a botnet run: thousands a second) syncs are
// spaced burstSpacing apart, so that each carries many bans and rspamd
// rereads a handful of maps, not thousands. A burst is burstBans or more
// changes waiting for one sync; fewer are synced at once, so a single ban
// still reaches the target within milliseconds.
const (
	burstSpacing = 250 * time.Millisecond
	burstBans    = 50
)

// Retry and check timing.
const (
	minRetry      = time.Second
	maxRetry      = 30 * time.Second
	checkInterval = time.Second
	// Every resyncChecks checks the target is synced whether or not it
	// looks drifted: the safety net for changes a cheap drift check cannot
	// see (an element edited in place), and the sweep of what others left
	// in a shared Redis hash.
	resyncChecks = 300
)

// TargetStats is one target as status shows it.
type TargetStats struct {
	Name     string
	Entries  int       // held after the last successful sync (Counter), else bans given
	Syncs    uint64    // successful syncs
	LastSync time.Time // of the last successful sync
	LastErr  error     // of the last attempt, nil when it succeeded
	Repairs  uint64    // drifts found and repaired
	Errors   uint64    // failed syncs
}

// Reconciler keeps one target in step with the state, in the background:
// kicks that arrive while a sync is under way collapse into one more, a
// failure is retried with backoff until it succeeds, drift is checked
// every second and the whole state is written again every five minutes.
type Reconciler struct {
	target Target
	state  func() State
	clock  core.Clock
	log    *slog.Logger
	onSync func(time.Time) // test and latency hook
	onDone func(target string, took time.Duration, err error)

	kick    chan struct{}
	changes atomic.Int64 // changes kicked since the last sync began
	done    chan struct{}
	wg      sync.WaitGroup
	syncMu  sync.Mutex // one sync at a time, so updates land in snapshot order

	mu    sync.Mutex
	stats TargetStats
}

func newReconciler(t Target, state func() State, clock core.Clock, log *slog.Logger, onSync func(time.Time), onDone func(string, time.Duration, error)) *Reconciler {
	return &Reconciler{target: t, state: state, clock: clock, log: log, onSync: onSync, onDone: onDone,
		kick: make(chan struct{}, 1), done: make(chan struct{}), stats: TargetStats{Name: t.Name()}}
}

// Sync brings the target in step now, synchronously.
func (r *Reconciler) Sync(ctx context.Context) error {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	s := r.state()
	start := r.clock.Now()
	err := r.target.Sync(ctx, s)
	r.mu.Lock()
	r.stats.LastErr = err
	if err != nil {
		r.stats.Errors++
	} else {
		r.stats.Syncs++
		r.stats.LastSync = start
		r.stats.Entries = len(s.Bans)
		if c, ok := r.target.(Counter); ok {
			r.stats.Entries = c.Entries()
		}
	}
	r.mu.Unlock()
	if r.onDone != nil {
		r.onDone(r.target.Name(), r.clock.Now().Sub(start), err)
	}
	if err != nil {
		r.log.Error("target not updated; what it held stays in force, retrying", "target", r.target.Name(), "err", err)
		return err
	}
	r.log.Debug("target updated", "target", r.target.Name(), "entries", len(s.Bans), "took", r.clock.Now().Sub(start))
	if r.onSync != nil {
		r.onSync(r.clock.Now())
	}
	return nil
}

// Kick asks for a sync for n changed bans.
func (r *Reconciler) Kick(n int) {
	r.changes.Add(int64(n))
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Stats is a snapshot for status.
func (r *Reconciler) Stats() TargetStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// start runs the loop; a target whose last sync failed is retried at once.
func (r *Reconciler) start() {
	// The timers exist before start returns, so time moved by a test
	// (or a clock jump) right after is not lost.
	retry := r.clock.NewTimer(time.Hour)
	retry.Stop()
	check := r.clock.NewTicker(checkInterval)
	r.wg.Add(1)
	go r.loop(retry, check)
	if r.Stats().LastErr != nil {
		r.Kick(0)
	}
}

func (r *Reconciler) loop(retry core.Timer, check core.Ticker) {
	defer r.wg.Done()
	defer check.Stop()
	backoff := minRetry
	checker, _ := r.target.(Checker)
	var last time.Time
	checks := 0
	for {
		select {
		case <-r.kick:
		case <-retry.C():
		case <-check.C():
			if checks++; checks%resyncChecks == 0 {
				break
			}
			if checker == nil || !r.drifted(checker) {
				continue
			}
			r.mu.Lock()
			r.stats.Repairs++
			r.mu.Unlock()
			r.log.Warn("target changed behind mailjail's back; restoring it", "target", r.target.Name())
		case <-r.done:
			return
		}
		if wait := burstSpacing - r.clock.Now().Sub(last); r.changes.Load() >= burstBans && wait > 0 {
			if !core.Sleep(r.clock, wait, r.done) {
				return
			}
		}
		last = r.clock.Now()
		r.changes.Store(0)
		// Kicks that came while waiting are carried by this sync.
		select {
		case <-r.kick:
		default:
		}
		if err := r.Sync(context.Background()); err != nil {
			// The database has the bans: keep trying until the target
			// holds them (a full disk, an immutable directory).
			retry.Reset(backoff)
			backoff = min(2*backoff, maxRetry)
			continue
		}
		backoff = minRetry
	}
}

// drifted asks c between syncs, never during one (a sync in progress
// replaces the file before it records what it wrote).
func (r *Reconciler) drifted(c Checker) bool {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	return c.Drifted()
}

// finalSyncTimeout bounds stopping, so that a hung target (a map on a
// dead NFS server) cannot hold the daemon past systemd's stop timeout.
const finalSyncTimeout = 5 * time.Second

// stop ends the loop after a final synchronous sync, within
// finalSyncTimeout.
func (r *Reconciler) stop() error {
	close(r.done)
	ctx, cancel := context.WithTimeout(context.Background(), finalSyncTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		r.wg.Wait()
		done <- r.Sync(ctx)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("target %s: final sync: %w", r.target.Name(), ctx.Err())
	}
}
