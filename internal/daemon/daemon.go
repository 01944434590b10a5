// Package daemon runs mailjail: it follows the jails' logs, feeds the
// engine, puts every committed change into force through the enforcer
// (the rspamd map and the outbox of actions and alerts), lifts bans when
// they end and answers the CLI on the control socket. Everything that
// changes state happens in one loop, so the order of events is the order
// of the logs and of the commands.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailjail/mailjail/internal/allowlist"
	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/control"
	"github.com/mailjail/mailjail/internal/core"
	"github.com/mailjail/mailjail/internal/enforce"
	"github.com/mailjail/mailjail/internal/engine"
	"github.com/mailjail/mailjail/internal/metrics"
	"github.com/mailjail/mailjail/internal/outbox"
	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/watcher"
)

// Options are run-time choices that are not configuration.
type Options struct {
	Version   string
	FromStart bool              // read existing logs from their start on the first run
	Clock     core.Clock        // default the wall clock
	Watcher   watcher.Options   // tuning and test hooks
	OnMap     func(t time.Time) // called after each target sync (latency measurement, tests)
	// Reload asks for the configuration to be reread (SIGHUP), like
	// `mailjail reload`.
	Reload <-chan struct{}
	// Ignore replaces the resolver and the host's addresses of ignoreip
	// (tests).
	Ignore allowlist.Options

	stall func() // tests: called by the loop before each batch (a stuck loop)
	// Purge tunes the background purge of old history (tests, benchmarks).
	Purge store.PurgeOptions
}

// Run runs the daemon until ctx is cancelled.
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger, opt Options) error {
	opt.Clock = core.OrReal(opt.Clock)
	lock, err := TryLock(cfg.Global.Database)
	if err != nil {
		return fmt.Errorf("%w (is another daemon running?)", err)
	}
	defer lock.Unlock()
	unlockMaps, err := LockMaps(cfg)
	if err != nil {
		return err
	}
	defer unlockMaps()
	st, err := store.Open(cfg.Global.Database, store.Options{Durable: true})
	if err != nil {
		return err
	}
	defer st.Close()
	d, err := newDaemon(cfg, st, log, opt)
	if err != nil {
		return err
	}
	defer d.enf.Close()
	return d.run(ctx)
}

type daemon struct {
	cfg     *config.Config
	st      *store.Store
	log     *slog.Logger
	opt     Options
	eng     *engine.Engine
	enf     *enforce.Enforcer
	ops     *enforce.Ops
	outbox  *outbox.Worker
	purger  *purger
	started time.Time
	sources []watcher.Source
	reqs    chan ctlReq
	srv     *control.Server // nil until the socket is listened on
	wg      sync.WaitGroup  // the goroutines run starts (outbox, socket, metrics)
	obs     observability

	// What a reload replaces, read by other goroutines: the
	// configuration the targets' scopes follow, the outbox's handlers.
	cfgNow   atomic.Pointer[config.Config]
	handlers atomic.Pointer[outbox.Handlers]
	wd       *watchdog

	// Read and written by the main loop only.
	ready    bool   // prepared: bans and unbans may be carried out
	degraded string // why the daemon cannot do its work now ("" when it can)
	fatal    error  // why a retry gave up for good
	// The sources' merged batches and what stops them (a reload that
	// changes the logs replaces both).
	batches    <-chan sourceBatch
	stopFollow context.CancelFunc
	following  bool // the loop reads the sources: a reload may replace them
	// What ignoreip's files, host names and ignoreself stand for, its
	// updates and what stops them (a reload replaces all three).
	cluster       *clusterNode // nil without [cluster]
	ignoreState   allowlist.State
	ignoreUpdates <-chan allowlist.State
	stopIgnore    func()
}

func newDaemon(cfg *config.Config, st *store.Store, log *slog.Logger, opt Options) (*daemon, error) {
	eng, err := engine.New(cfg, st, log)
	if err != nil {
		return nil, err
	}
	d := &daemon{cfg: cfg, st: st, log: log, opt: opt, eng: eng, started: opt.Clock.Now(), reqs: make(chan ctlReq), stopFollow: func() {}, stopIgnore: func() {}}
	d.cfgNow.Store(cfg)
	h := OutboxHandlers(cfg, log, opt.Clock)
	d.handlers.Store(&h)
	d.outbox = outbox.New(st, d.liveHandlers(), log, outbox.Options{Clock: opt.Clock,
		DigestInterval: cfg.Alert.DigestInterval.D, UrgentInterval: cfg.Alert.UrgentInterval.D})
	d.purger = newPurger(st, log, opt.Clock, opt.Purge)
	d.obs.timer = metrics.NewSyncTimer()
	if err := d.newCluster(); err != nil {
		return nil, err
	}
	if d.enf, err = newEnforcer(cfg, d.cfgNow.Load, eng, d.outbox, enforce.Options{Clock: opt.Clock, Log: log, OnSync: opt.OnMap,
		OnSyncDone: d.obs.timer.Observe, OnChange: d.shareChange}); err != nil {
		return nil, err
	}
	d.ops = &enforce.Ops{Eng: eng, Cfg: cfg, Enf: d.enf, Clock: opt.Clock}
	return d, nil
}

// liveHandlers deliver through the handlers of the configuration in
// force, so that a reload changes alerts, webhooks and actions without
// stopping the outbox (which would kill an action under way).
func (d *daemon) liveHandlers() outbox.Handlers {
	return outbox.Handlers{
		Action: func(ctx context.Context, a outbox.Action) error { return d.handlers.Load().Action(ctx, a) },
		Alert: func(ctx context.Context, b []outbox.Alert) error {
			if h := d.handlers.Load().Alert; h != nil {
				return h(ctx, b)
			}
			return errNoAlerts
		},
		Webhook: func(ctx context.Context, w outbox.Webhook) error { return d.handlers.Load().Webhook(ctx, w) },
	}
}

// errNoAlerts fails the alerts queued before a reload removed [alert]:
// retried, then given up, as the outbox does for a nil handler.
var errNoAlerts = errors.New("alerts are not configured (any more)")
