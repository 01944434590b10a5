package daemon

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/mailjail/mailjail/internal/control"
	"github.com/mailjail/mailjail/internal/core"
)

// stopGrace bounds how long stopping waits for control requests under way;
// the outbox's attempt under way is abandoned at once (it stays pending).
const stopGrace = 5 * time.Second

func (d *daemon) run(ctx context.Context) error {
	now := d.opt.Clock.Now()
	if err := d.prepare(ctx, now); err != nil {
		return err
	}
	d.enf.Start()
	defer d.enf.Stop()

	var wg sync.WaitGroup
	defer wg.Wait()
	octx, stopOutbox := context.WithCancel(context.WithoutCancel(ctx))
	defer stopOutbox()
	wg.Go(func() { d.outbox.Run(octx) })

	fctx, stopFollow := context.WithCancel(ctx)
	defer stopFollow()
	batches, err := d.follow(fctx)
	if err != nil {
		return err
	}

	srv, err := d.serve(ctx)
	if err != nil {
		return err
	}
	wg.Go(func() {
		if err := srv.Serve(); err != nil {
			d.log.Error("control socket", "err", err)
		}
	})
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), stopGrace)
		defer cancel()
		srv.Shutdown(sctx)
	}()

	d.logStart()
	// Bans are in force and the logs are followed (their lines wait in
	// the sources); strike windows are restored before the first line is
	// judged. With millions of strikes that takes a second or two, which
	// must not hold up the map or systemd.
	sdNotify("READY=1\nSTATUS=restoring strikes")
	defer sdNotify("STOPPING=1")
	if err := d.restoreStrikes(now); err != nil {
		return err
	}
	sdNotify("STATUS=following logs")
	return d.loop(ctx, batches, now)
}

// prepare restores the bans, takes over the map and writes every target,
// before anything is read.
func (d *daemon) prepare(ctx context.Context, now time.Time) error {
	imported, ch, err := Prepare(ctx, d.eng, d.cfg.Global.MapFile, now)
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

func (d *daemon) serve(ctx context.Context) (*control.Server, error) {
	ln, err := control.Listen(d.cfg.Global.Socket, d.cfg.Global.SocketGroup)
	if err != nil {
		return nil, err
	}
	return control.NewServer(ln, &handler{d: d, ctx: ctx}), nil
}

func (d *daemon) logStart() {
	jails := make([]string, 0)
	for _, j := range d.eng.Jails() {
		jails = append(jails, j.Cfg.Name)
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
func (d *daemon) loop(ctx context.Context, batches <-chan sourceBatch, now time.Time) error {
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
		case b := <-batches:
			err := d.process(ctx, b.lines)
			close(b.done)
			if err != nil {
				return err
			}
		case r := <-d.reqs:
			r.run()
			close(r.done)
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
	if err := d.eng.Prune(ctx, now, 7*24*time.Hour); err != nil {
		d.log.Error("prune strikes", "err", err)
	}
	if err := d.eng.SaveBuckets(ctx); err != nil {
		d.log.Error("save rate buckets", "err", err)
	}
}

// process stages a batch and commits it, retrying until the database takes
// it: a full disk or a locked database delays reading, it never drops a
// strike or a ban. Then the change goes into force.
func (d *daemon) process(ctx context.Context, batch []core.Line) error {
	d.eng.Stage(batch, d.opt.Clock.Now())
	backoff := 100 * time.Millisecond
	for {
		ch, err := d.eng.Commit(ctx)
		if err == nil {
			d.enf.Apply(ctx, ch)
			return nil
		}
		d.log.Error("state not saved, retrying", "database", d.cfg.Global.Database, "err", err, "retry_in", backoff)
		if !core.Sleep(d.opt.Clock, backoff, ctx.Done()) {
			return nil
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}
