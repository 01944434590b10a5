package daemon

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/mailjail/mailjail/internal/control"
	"github.com/mailjail/mailjail/internal/engine"
	"github.com/mailjail/mailjail/internal/metrics"
)

// metricsTimeout bounds how long a scrape or a health check waits for the
// main loop, which answers between log batches.
const metricsTimeout = 5 * time.Second

// Run phases, for /healthz: only "following" can be healthy.
const (
	phaseStarting  = "starting: taking over the map"
	phaseRestoring = "starting: restoring strikes"
	phaseFollowing = "following"
)

// observability is the daemon's metrics listener and what feeds it.
type observability struct {
	timer *metrics.SyncTimer
	srv   *metrics.Server // nil: metrics_listen is not set
	phase atomic.Pointer[string]
}

func (o *observability) setPhase(p string) { o.phase.Store(&p) }

// startMetrics listens on metrics_listen, if set, until ctx ends; its
// answers that need the daemon's state are taken in the main loop.
func (d *daemon) startMetrics(ctx context.Context) error {
	if d.cfg.Global.MetricsListen == "" {
		return nil
	}
	h := &handler{d: d, ctx: ctx}
	snap := func(ctx context.Context) (s metrics.Snapshot, err error) {
		if lerr := h.inLoop(ctx, func() { s, err = d.snapshot() }); lerr != nil {
			return s, lerr
		}
		return s, err
	}
	reg := metrics.NewRegistry(metrics.NewCollector(snap, metricsTimeout), d.obs.timer)
	srv, err := metrics.Listen(d.cfg.Global.MetricsListen, metrics.Handler(reg, d.health(h), metricsTimeout, d.log))
	if err != nil {
		return err
	}
	d.obs.srv = srv
	d.log.Info("metrics listening", "addr", srv.Addr().String())
	d.wg.Go(func() {
		if err := srv.Serve(); err != nil {
			d.log.Error("metrics listener", "err", err)
		}
	})
	return nil
}

func (d *daemon) stopMetrics() {
	if d.obs.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), stopGrace)
	defer cancel()
	if err := d.obs.srv.Shutdown(ctx); err != nil {
		d.log.Warn("metrics listener closed before its requests finished", "err", err)
	}
}

// health is /healthz: "" when the daemon follows its logs, is not
// degraded and every target took its last write; else why not. A main
// loop that does not answer in time is unhealthy too.
func (d *daemon) health(h *handler) metrics.HealthFunc {
	return func(ctx context.Context) string {
		if p := d.obs.phase.Load(); p == nil || *p != phaseFollowing {
			if p == nil {
				return phaseStarting
			}
			return *p
		}
		var why string
		if err := h.inLoop(ctx, func() { why = d.unhealthy() }); err != nil {
			return fmt.Sprintf("main loop not answering: %v", err)
		}
		return why
	}
}

// unhealthy says what keeps the daemon from its work, or "" (main loop).
func (d *daemon) unhealthy() string {
	if d.degraded != "" {
		return "degraded: " + d.degraded
	}
	for _, t := range d.enf.Targets() {
		if t.LastErr != nil {
			return fmt.Sprintf("target %s not updated: %v", t.Name, t.LastErr)
		}
	}
	return ""
}

// snapshot is the daemon's state for metrics and health, from memory and
// the outbox's counts (main loop). It does not count the database's
// strikes, as status does: that takes long with millions of them.
func (d *daemon) snapshot() (metrics.Snapshot, error) {
	var s metrics.Snapshot
	journals := map[string]bool{}
	for _, j := range d.cfg.EnabledJails() {
		if k := journalKey(j); k != "" {
			journals[k] = true
		}
	}
	counts := d.eng.SourceCounts()
	seen := map[string]bool{}
	for _, src := range d.sources {
		for _, f := range src.Stats().Files {
			if seen[f.Path] {
				continue
			}
			seen[f.Path] = true
			c := counts[f.Path]
			ms := metrics.Source{Name: f.Path, Kind: "file", Lines: c.Lines, Matches: c.Matches, Last: c.Last}
			if journals[f.Path] {
				ms.Kind = "journal"
			} else {
				ms.Lag, ms.HasLag = max(f.Size-f.Pos.Offset, 0), true
			}
			s.Sources = append(s.Sources, ms)
		}
	}
	active, would := map[string]int{}, map[string]int{}
	for _, b := range d.eng.ActiveBans() {
		if b.LogOnly {
			would[b.Jail]++
		} else {
			active[b.Jail]++
		}
	}
	s.BreakerHeld = len(d.eng.HeldBans())
	susp := map[string]int{}
	for _, sp := range d.eng.ActiveSuspensions() {
		susp[sp.Jail]++
	}
	changes := d.eng.ChangeCounts()
	jail := func(name string) metrics.Jail {
		c := changes[name]
		return metrics.Jail{Name: name, Bans: c.Bans, Unbans: c.Unbans, Suspensions: c.Suspensions, Releases: c.Releases,
			RateEvents: c.RateEvents, ActiveBans: active[name], ActiveSuspensions: susp[name], WouldBans: would[name]}
	}
	for _, j := range d.eng.Jails() {
		mj, jc := jail(j.Cfg.Name), j.Counters()
		mj.FromLogs = true
		if j.Filter != nil {
			mj.Filter = j.Cfg.Filter
		}
		mj.Prefiltered, mj.Matches, mj.Strikes, mj.Tracked = jc.Prefiltered, jc.Matches, jc.Strikes, j.Tracked()
		if rs := j.RateStats(); rs != nil {
			for _, n := range rs.Keys {
				mj.BucketKeys += n
			}
		}
		s.Jails = append(s.Jails, mj)
	}
	s.Jails = append(s.Jails, jail(engine.ManualJail))
	for _, t := range d.enf.Targets() {
		s.Targets = append(s.Targets, metrics.Target{Name: t.Name, Syncs: t.Syncs, Errors: t.Errors, Entries: t.Entries, Repairs: t.Repairs})
	}
	// A database of an older schema has no outbox (read-only status).
	if c, err := d.st.CountOutbox(); err == nil {
		s.Outbox = &metrics.Outbox{Pending: c.Pending, Failed: c.Failed, GaveUp: c.GaveUp}
	}
	return s, nil
}

// fillHealth adds the health warnings to a running daemon's status.
func (d *daemon) fillHealth(s *control.Status) {
	snap, err := d.snapshot()
	if err != nil {
		return
	}
	s.Warnings = metrics.Warnings(snap, d.started, d.opt.Clock.Now())
}
