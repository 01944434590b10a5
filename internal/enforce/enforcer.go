package enforce

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/mailjail/mailjail/internal/core"
	"github.com/mailjail/mailjail/internal/engine"
	"github.com/mailjail/mailjail/internal/outbox"
	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/rules"
)

// Options tune an Enforcer. The zero value is usable.
type Options struct {
	Clock  core.Clock      // default the wall clock
	Log    *slog.Logger    // default slog.Default()
	OnSync func(time.Time) // called after each successful target sync (latency measurement, tests)
	// OnSyncDone is called after every sync attempt of a target, with
	// how long it took and its error (metrics).
	OnSyncDone func(target string, took time.Duration, err error)
	// RetryFor is how long an enforcer without background reconcilers
	// (never started: a CLI changing bans without a daemon) keeps
	// retrying a target that fails before Apply gives up; nobody else
	// would retry it. Zero: one attempt.
	RetryFor time.Duration
	// OnChange is told of every change put into force, from the caller
	// of Apply (the daemon's loop): outputs beside the targets (the
	// cluster shares the bans made here) plug in here.
	OnChange func(engine.Change)
}

// Enforcer puts committed changes into force on every target, then wakes
// the outbox.
type Enforcer struct {
	targets  []Target
	recs     []*Reconciler
	outbox   *outbox.Worker
	active   Source
	clock    core.Clock
	log      *slog.Logger
	running  bool
	retryFor time.Duration
	onChange func(engine.Change)
}

// New makes an enforcer for targets, which follow active (the engine's
// cache of the database). ob may be nil (replay runs no actions).
func New(targets []Target, active Source, ob *outbox.Worker, opt Options) *Enforcer {
	e := &Enforcer{targets: targets, outbox: ob, active: active, clock: core.OrReal(opt.Clock), log: opt.Log, retryFor: opt.RetryFor, onChange: opt.OnChange}
	if e.log == nil {
		e.log = slog.Default()
	}
	for _, t := range targets {
		e.recs = append(e.recs, newReconciler(t, e.state, e.clock, e.log, opt.OnSync, opt.OnSyncDone))
	}
	return e
}

// state is what every target is given, for the daemon, the daemon-less
// CLI and replay alike: the active bans but would-be bans and the bans a
// tripped circuit breaker holds (Given), the enforced suspensions.
func (e *Enforcer) state() State {
	s := State{At: e.clock.Now()}
	var bans []store.Ban
	var held int64
	if h, ok := e.active.(Holder); ok {
		bans, held = h.ActiveBansHeld()
	} else {
		bans = e.active.ActiveBans()
	}
	for _, b := range bans {
		if Given(b, held) {
			s.Bans = append(s.Bans, b)
		}
	}
	for _, sp := range e.active.ActiveSuspensions() {
		if sp.Enforced {
			s.Suspensions = append(s.Suspensions, sp)
		}
	}
	return s
}

// Start runs each target's reconciler in the background, for the daemon:
// from then on Apply returns at once and the targets catch up within
// milliseconds, retrying on failure and repairing drift.
func (e *Enforcer) Start() {
	e.running = true
	for _, r := range e.recs {
		r.start()
	}
}

// Stop ends the reconcilers after a final sync of each.
func (e *Enforcer) Stop() error {
	if !e.running {
		return nil
	}
	e.running = false
	var errs []error
	for _, r := range e.recs {
		errs = append(errs, r.stop())
	}
	return errors.Join(errs...)
}

// Close releases what targets hold open (a Redis client, a netlink
// socket), after Stop.
func (e *Enforcer) Close() error {
	var errs []error
	for _, t := range e.targets {
		if c, ok := t.(io.Closer); ok {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}

// Apply puts a committed change into force: every target is brought in
// step with the active bans (in the background once started, at once
// otherwise), then the outbox is woken for the actions and alerts the
// change queued. It logs one line per ban and unban.
func (e *Enforcer) Apply(ctx context.Context, ch engine.Change) error {
	if ch.Empty() {
		return nil
	}
	e.logChange(ch)
	if e.onChange != nil {
		e.onChange(ch)
	}
	var err error
	if n := len(ch.Bans) + len(ch.Lifted) + len(ch.Suspended) + len(ch.Released) + len(ch.Resumed); n > 0 {
		if e.running {
			for _, r := range e.recs {
				r.Kick(n)
			}
		} else {
			err = e.syncNow(ctx)
		}
	}
	if e.outbox != nil {
		e.outbox.Kick()
	}
	return err
}

// ApplyNow is Apply that returns only once every target holds the
// change: a CLI command's change is in force when the command returns.
func (e *Enforcer) ApplyNow(ctx context.Context, ch engine.Change) error {
	if ch.Empty() {
		return nil
	}
	e.logChange(ch)
	if e.onChange != nil {
		e.onChange(ch)
	}
	err := e.syncNow(ctx)
	if e.outbox != nil {
		e.outbox.Kick()
	}
	return err
}

// syncNow brings every target in step before it returns. What still
// fails is left to the reconcilers when they run (they retry only what
// they tried themselves, so they are kicked), else retried for RetryFor.
func (e *Enforcer) syncNow(ctx context.Context) error {
	if e.running || e.retryFor <= 0 {
		err := e.SyncAll(ctx)
		if err != nil && e.running {
			for _, r := range e.recs {
				if r.Stats().LastErr != nil {
					r.Kick(0)
				}
			}
		}
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, e.retryFor)
	defer cancel()
	return e.syncUntil(ctx)
}

// SyncAll brings every target in step now, all at once: a slow target
// (Redis across the network) does not hold up the others, and one that
// fails does not stop them.
func (e *Enforcer) SyncAll(ctx context.Context) error {
	errs := make([]error, len(e.recs))
	var wg sync.WaitGroup
	for i, r := range e.recs {
		wg.Go(func() { errs[i] = r.Sync(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// syncUntil retries SyncAll with backoff until it succeeds or ctx ends.
func (e *Enforcer) syncUntil(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for {
		err := e.SyncAll(ctx)
		if err == nil {
			return nil
		}
		if !core.Sleep(e.clock, backoff, ctx.Done()) {
			return err
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// Targets returns each target's stats.
func (e *Enforcer) Targets() []TargetStats {
	out := make([]TargetStats, 0, len(e.recs))
	for _, r := range e.recs {
		out = append(out, r.Stats())
	}
	return out
}

func (e *Enforcer) logChange(ch engine.Change) {
	for _, b := range ch.Bans {
		e.log.Warn("ban", "addr", rules.FormatPrefix(b.Prefix), "jail", b.Jail, "until", untilText(b.Until), "reason", b.Reason)
	}
	for _, b := range ch.Lifted {
		e.log.Info("unban", "addr", rules.FormatPrefix(b.Prefix), "jail", b.Jail, "by", b.LiftedBy)
	}
	for _, s := range ch.Suspended {
		msg := "suspend"
		if !s.Enforced {
			msg = "account over its limit (suspend = false: recorded, not enforced)"
		}
		e.log.Warn(msg, "account", s.Account, "jail", s.Jail, "until", untilText(s.Until), "reason", s.Reason, "sources", len(s.Sources))
	}
	for _, s := range ch.Released {
		e.log.Info("release", "account", s.Account, "jail", s.Jail, "by", s.LiftedBy)
	}
}

func untilText(t time.Time) string {
	if t.IsZero() {
		return "permanent"
	}
	return t.UTC().Format(time.RFC3339)
}
