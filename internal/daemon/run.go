package daemon

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/mailjail/mailjail/internal/control"
	"github.com/mailjail/mailjail/internal/core"
)

// stopGrace bounds how long stopping waits for control requests under way;
// the outbox's attempt under way is abandoned at once (it stays pending).
const stopGrace = 5 * time.Second

func (d *daemon) run(ctx context.Context) error {
	now := d.opt.Clock.Now()
	// Pinged from the loop and from its waits (a degraded start, a
	// database that fails): what is not pinged is stuck.
	d.wd = newWatchdog(d.opt.Clock)
	defer d.wd.stop()
	if err := d.wd.during(func() error { return d.eng.RestoreBans(now) }); err != nil {
		return fmt.Errorf("restore state: %w", err)
	}
	defer d.wg.Wait()
	defer d.stopServing()
	// Cancelled before the socket shuts down, whatever ends the run, so
	// that a request waiting for the loop is answered "stopping".
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d.obs.setPhase(phaseStarting)
	// Before the map is prepared: a start lifts the bans of addresses
	// that ignoreip now holds, files and host names included.
	d.opt.Ignore.Clock, d.opt.Ignore.Log = d.opt.Clock, d.log
	if err := d.startIgnore(ctx); err != nil {
		return err
	}
	defer func() { d.stopIgnore() }()
	if err := d.startMetrics(ctx); err != nil {
		return err
	}
	defer d.stopMetrics()
	if !d.retry(ctx, "take over the map and lift ended bans", func() error { return d.prepare(ctx, now) }) {
		return d.fatal
	}
	d.ready = true
	d.enf.Start()
	defer d.enf.Stop()
	octx, stopOutbox := context.WithCancel(context.WithoutCancel(ctx))
	defer stopOutbox()
	d.wg.Go(func() { d.outbox.Run(octx) })
	d.wg.Go(func() { d.purger.run(ctx) })
	d.runCluster(octx)

	fctx, stopFollow := context.WithCancel(ctx)
	batches, err := d.follow(fctx)
	if err != nil {
		stopFollow()
		return err
	}
	d.batches, d.stopFollow, d.following = batches, stopFollow, true
	defer func() { d.stopFollow() }()
	// The socket is listened on once the logs are followed: a client that
	// sees it knows that everything appended from then on is read.
	if err := d.startServing(ctx); err != nil {
		return err
	}
	d.logStart()
	// Bans are in force and the logs are followed (their lines wait in
	// the sources); strike windows are restored before the first line is
	// judged. With millions of strikes that takes a second or two, which
	// must not hold up the map or systemd.
	d.obs.setPhase(phaseRestoring)
	sdNotify("READY=1\nSTATUS=restoring strikes")
	defer sdNotify("STOPPING=1")
	if err := d.wd.during(func() error { return d.restoreStrikes(now) }); err != nil {
		return err
	}
	sdNotify("STATUS=" + d.statusLine())
	d.obs.setPhase(phaseFollowing)
	return d.loop(ctx, now)
}

// prepare takes over the map, lifts bans that ended while the daemon was
// down and writes every target, before anything is read. A map that
// cannot be parsed stops the start; a database that cannot be written is
// retried (the old map stays in force meanwhile).
func (d *daemon) prepare(ctx context.Context, now time.Time) error {
	imported, ch, err := Prepare(ctx, d.eng, AdoptedMap(d.cfg), now)
	if errors.Is(err, ErrBadMap) {
		return permanent{err}
	}
	if err != nil {
		return err
	}
	if imported > 0 {
		d.log.Warn("took over existing map entries as permanent manual bans", "map", d.cfg.Global.MapFile, "entries", imported)
	}
	// Before Start, Apply writes every target at once.
	if ch.Empty() {
		err = d.enf.SyncAll(ctx)
	} else {
		err = d.enf.Apply(ctx, ch)
	}
	if err != nil {
		// Start degraded rather than not at all: what the targets held
		// stays in force, the reconcilers retry, and logs are read.
		d.log.Error("targets not written at start; retrying in the background", "err", err)
		sdNotify("STATUS=degraded: " + err.Error())
	}
	return nil
}

// startServing answers the control socket from now on (once).
func (d *daemon) startServing(ctx context.Context) error {
	if d.srv != nil {
		return nil
	}
	ln, err := control.Listen(d.cfg.Global.Socket, d.cfg.Global.SocketGroup)
	if err != nil {
		return err
	}
	d.srv = control.NewServer(ln, &handler{d: d, ctx: ctx})
	d.wg.Go(func() {
		if err := d.srv.Serve(); err != nil {
			d.log.Error("control socket", "err", err)
		}
	})
	return nil
}

func (d *daemon) stopServing() {
	if d.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), stopGrace)
	defer cancel()
	if err := d.srv.Shutdown(ctx); err != nil {
		d.log.Warn("control socket closed before its requests finished", "err", err)
	}
}

func (d *daemon) logStart() {
	jails := make([]string, 0)
	for _, j := range d.eng.Jails() {
		jails = append(jails, j.Cfg.Name)
	}
	if why := mapReaderError(d.cfg.Global.MapFile); why != "" {
		d.log.Error("rspamd cannot read the map: its bans are not enforced", "err", why)
	}
	d.log.Info("mailjail started", "version", d.opt.Version, "config", d.cfg.Source, "jails", jails,
		"logs", d.eng.LogPatterns(), "map", d.cfg.Global.MapFile, "database", d.cfg.Global.Database, "active_bans", len(d.eng.ActiveBans()))
}

func (d *daemon) restoreStrikes(now time.Time) error {
	start := d.opt.Clock.Now()
	if err := d.eng.RestoreStrikes(now); err != nil {
		return fmt.Errorf("restore strikes: %w", err)
	}
	// Restoring millions of strikes leaves garbage behind; give it back
	// before settling into the steady state.
	debug.FreeOSMemory()
	d.log.Info("strikes restored", "addresses", d.eng.Tracked(), "took", d.opt.Clock.Now().Sub(start).Round(time.Millisecond))
	return nil
}

// loop is the one goroutine that changes state: log batches, control
// requests and the clock, in the order they arrive.
func (d *daemon) loop(ctx context.Context, now time.Time) error {
	tick := d.opt.Clock.NewTicker(time.Second)
	defer tick.Stop()
	lastPrune := now
	for {
		select {
		case <-ctx.Done():
			d.log.Info("mailjail stopping")
			if err := d.eng.SaveBuckets(context.Background()); err != nil {
				d.log.Error("save rate buckets", "err", err)
			}
			return nil
		case b := <-d.batches:
			if d.opt.stall != nil {
				d.opt.stall()
			}
			d.process(ctx, b.lines)
			close(b.done)
		case r := <-d.reqs:
			r.run()
			close(r.done)
		case <-d.opt.Reload:
			// The outcome is logged; the caller of SIGHUP has no
			// answer to read.
			d.reload(ctx)
		case recs := <-d.incoming():
			d.applyShared(ctx, recs)
		case st := <-d.ignoreUpdates:
			d.applyIgnore(ctx, st, d.opt.Clock.Now())
		case <-d.wd.C():
			d.wd.ping()
		case <-tick.C():
			now := d.opt.Clock.Now()
			d.expire(ctx, now)
			if now.Sub(lastPrune) >= time.Minute {
				lastPrune = now
				d.housekeeping(ctx, now)
			}
		}
	}
}

func (d *daemon) expire(ctx context.Context, now time.Time) {
	ch, err := d.eng.ExpireDue(ctx, now)
	if err != nil {
		d.log.Error("expire bans", "err", err)
		return
	}
	d.enf.Apply(ctx, ch)
}

func (d *daemon) housekeeping(ctx context.Context, now time.Time) {
	d.eng.Prune(now)
	d.requestPurge(now)
	if err := d.eng.SaveBuckets(ctx); err != nil {
		d.log.Error("save rate buckets", "err", err)
	}
}

// process stages a batch and commits it, retrying until the database takes
// it: a full disk or a locked database delays reading, it never drops a
// strike or a ban. Then the change goes into force.
func (d *daemon) process(ctx context.Context, batch []core.Line) {
	d.eng.Stage(batch, d.opt.Clock.Now())
	d.retry(ctx, "save state", func() error {
		ch, err := d.eng.Commit(ctx)
		if err == nil {
			d.enf.Apply(ctx, ch)
		}
		return err
	})
}

// permanent marks an error that retrying cannot mend.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// setDegraded records why the daemon is degraded ("" when it is not), for
// status.
func (d *daemon) setDegraded(why string) { d.degraded = why }

// retry runs fn until it succeeds, with backoff, and reports whether it
// did (false: the daemon is stopping, or fn failed for good). Meanwhile
// the daemon is degraded: it says so in the log, in status and to
// systemd, and it keeps answering the control socket (a command it
// answers as failed is rolled back, never applied later).
func (d *daemon) retry(ctx context.Context, what string, fn func() error) bool {
	wait := 100 * time.Millisecond
	for {
		err := fn()
		if err == nil {
			if d.setDegraded(""); d.ready {
				sdNotify("STATUS=" + d.statusLine())
			}
			return true
		}
		if perm := (permanent{}); errors.As(err, &perm) {
			d.fatal = perm.error
			return false
		}
		msg := fmt.Sprintf("%s: %v", what, err)
		d.setDegraded(msg)
		d.log.Error("degraded: "+what+" failed, retrying", "database", d.cfg.Global.Database, "err", err, "retry_in", wait)
		// READY: a degraded daemon is up (its socket answers), and
		// systemd must not kill it for taking long to start.
		sdNotify("READY=1\nSTATUS=degraded: " + msg)
		// A degraded start answers the socket at once, so that status
		// can say why.
		if err := d.startServing(ctx); err != nil {
			d.log.Error("control socket", "err", err)
		}
		if !d.serveWhile(ctx, wait) {
			return false
		}
		wait = min(2*wait, 30*time.Second)
	}
}

// serveWhile answers control requests for d of the daemon's clock, and
// reports whether the daemon goes on.
func (d *daemon) serveWhile(ctx context.Context, wait time.Duration) bool {
	t := d.opt.Clock.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C():
			return true
		case r := <-d.reqs:
			r.run()
			close(r.done)
		case <-d.wd.C():
			d.wd.ping()
		}
	}
}
