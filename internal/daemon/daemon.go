// Package daemon runs mailjail: it follows the jails' logs, feeds the
// engine, keeps the rspamd map in step with the database, lifts bans when
// they end, runs actions, sends alerts and answers the CLI on the control
// socket. Everything that changes state happens in one loop, so the order
// of events is the order of the logs and of the commands.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"runtime/debug"
	"time"

	"github.com/mailjail/mailjail/actions"
	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/control"
	"github.com/mailjail/mailjail/internal/core"
	"github.com/mailjail/mailjail/internal/engine"
	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/mapfile"
	"github.com/mailjail/mailjail/notify"
	"github.com/mailjail/mailjail/rules"
	"github.com/mailjail/mailjail/watcher"
)

// Options are run-time choices that are not configuration.
type Options struct {
	Version   string
	FromStart bool              // read existing logs from their start on the first run
	Clock     core.Clock        // default the wall clock
	Watcher   watcher.Options   // tuning and test hooks
	OnMap     func(t time.Time) // called after each map write (latency measurement, tests)
}

// Run runs the daemon until ctx is cancelled.
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger, opt Options) error {
	opt.Clock = core.OrReal(opt.Clock)
	lock, err := TryLock(cfg.Global.Database)
	if err != nil {
		return fmt.Errorf("%w (is another daemon running?)", err)
	}
	defer lock.Unlock()
	st, err := store.Open(cfg.Global.Database, store.Options{Durable: true})
	if err != nil {
		return err
	}
	defer st.Close()
	d, err := newDaemon(cfg, st, log, opt)
	if err != nil {
		return err
	}
	return d.run(ctx)
}

type daemon struct {
	cfg     *config.Config
	st      *store.Store
	log     *slog.Logger
	opt     Options
	eng     *engine.Engine
	mw      *mapWriter
	actions *actions.Runner
	mailer  *notify.Mailer
	started time.Time
	sources []watcher.Source
	reqs    chan ctlReq
}

// sourceBatch is a batch from one source; done tells the source's
// forwarder that the lines (whose bytes the source reuses) were consumed.
type sourceBatch struct {
	lines []watcher.Line
	done  chan struct{}
}

type ctlReq struct {
	req   control.Request
	reply chan control.Response
}

func newDaemon(cfg *config.Config, st *store.Store, log *slog.Logger, opt Options) (*daemon, error) {
	eng, err := engine.New(cfg, st, log)
	if err != nil {
		return nil, err
	}
	d := &daemon{cfg: cfg, st: st, log: log, opt: opt, eng: eng, started: opt.Clock.Now(), reqs: make(chan ctlReq)}
	d.mw = newMapWriter(cfg.Global.MapFile, eng.Entries, opt.Clock, log)
	d.mw.onWrite = opt.OnMap
	d.actions = actions.NewRunner(log, 30*time.Second, 4096)
	if cfg.Alert.Enabled() {
		d.mailer = notify.NewMailer(notify.Config{SMTP: cfg.Alert.SMTP, From: cfg.Alert.From, To: cfg.Alert.To, SubjectPrefix: cfg.Alert.Subject}, log)
	}
	return d, nil
}

// Prepare restores the bans and takes over the map: what the daemon does
// before it writes the map, and what a CLI does before changing bans
// without a daemon. Strikes are restored separately (RestoreStrikes): the
// map must not wait for them.
func Prepare(ctx context.Context, eng *engine.Engine, mapPath string, now time.Time) (imported int, expired []store.Ban, err error) {
	if err := eng.RestoreBans(now); err != nil {
		return 0, nil, fmt.Errorf("restore state: %w", err)
	}
	adopted, err := eng.MapAdopted(mapPath)
	if err != nil {
		return 0, nil, err
	}
	if !adopted {
		prefixes, err := readExistingMap(mapPath)
		if err != nil {
			return 0, nil, err
		}
		if imported, err = eng.AdoptMap(ctx, mapPath, prefixes, now); err != nil {
			return 0, nil, fmt.Errorf("take over %s: %w", mapPath, err)
		}
	}
	expired, err = eng.ExpireDue(ctx, now)
	if err != nil {
		return imported, nil, fmt.Errorf("expire bans: %w", err)
	}
	ignored, err := eng.LiftIgnored(ctx, now)
	if err != nil {
		return imported, expired, fmt.Errorf("lift bans of ignored addresses: %w", err)
	}
	return imported, append(expired, ignored...), nil
}

func readExistingMap(path string) ([]netip.Prefix, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("take over %s: %w", path, err)
	}
	defer f.Close()
	prefixes, err := mapfile.Parse(f, path)
	if err != nil {
		return nil, fmt.Errorf("take over existing map (fix or move the line, nothing was changed): %w", err)
	}
	return prefixes, nil
}

func (d *daemon) run(ctx context.Context) error {
	now := d.opt.Clock.Now()
	imported, expired, err := Prepare(ctx, d.eng, d.cfg.Global.MapFile, now)
	if err != nil {
		return err
	}
	if imported > 0 {
		d.log.Warn("took over existing map entries as permanent manual bans", "map", d.cfg.Global.MapFile, "entries", imported)
	}
	d.afterLift(expired)
	if err := d.mw.write(); err != nil {
		return err
	}
	d.mw.start()
	defer d.mw.stop()
	defer d.actions.Close()
	if d.mailer != nil {
		defer d.mailer.Close()
	}

	saved, err := d.st.Positions()
	if err != nil {
		return err
	}
	wopt := d.opt.Watcher
	wopt.FromStart = wopt.FromStart || d.opt.FromStart || d.cfg.Global.FromStart
	wopt.Logger = d.log
	if wopt.Clock == nil {
		wopt.Clock = d.opt.Clock
	}
	fctx, stopFollow := context.WithCancel(ctx)
	defer stopFollow()
	if pats := d.eng.LogPatterns(); len(pats) > 0 {
		fol, err := watcher.Follow(fctx, pats, saved, wopt)
		if err != nil {
			return fmt.Errorf("follow logs: %w", err)
		}
		d.sources = append(d.sources, fol)
	}
	for _, m := range d.eng.JournalMatches() {
		jf, err := watcher.FollowJournal(fctx, m, saved[m.Key()], wopt)
		if err != nil {
			return fmt.Errorf("follow journal %s: %w", m.Key(), err)
		}
		d.sources = append(d.sources, jf)
	}
	batches := fanIn(fctx, d.sources)

	ln, err := control.Listen(d.cfg.Global.Socket, d.cfg.Global.SocketGroup)
	if err != nil {
		return err
	}
	defer os.Remove(d.cfg.Global.Socket)
	defer ln.Close()
	go control.Serve(ln, d.handle(ctx))

	jails := make([]string, 0)
	for _, j := range d.eng.Jails() {
		jails = append(jails, j.Cfg.Name)
	}
	d.log.Info("mailjail started", "version", d.opt.Version, "config", d.cfg.Source, "jails", jails,
		"logs", d.eng.LogPatterns(), "map", d.cfg.Global.MapFile, "database", d.cfg.Global.Database, "active_bans", len(d.eng.ActiveBans()))
	// Bans are in force and the logs are followed (their lines wait in
	// the sources); strike windows are restored before the first line is
	// judged. With millions of strikes that takes a second or two, which
	// must not hold up the map or systemd.
	sdNotify("READY=1\nSTATUS=restoring strikes")
	defer sdNotify("STOPPING=1")
	restoreStart := d.opt.Clock.Now()
	if err := d.eng.RestoreStrikes(now); err != nil {
		return fmt.Errorf("restore strikes: %w", err)
	}
	// Restoring millions of strikes leaves garbage behind; give it back
	// before settling into the steady state.
	debug.FreeOSMemory()
	d.log.Info("strikes restored", "addresses", d.eng.Tracked(), "took", d.opt.Clock.Now().Sub(restoreStart).Round(time.Millisecond))
	sdNotify("STATUS=following logs")

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
			r.reply <- d.apply(ctx, r.req)
		case <-tick.C():
			now := d.opt.Clock.Now()
			expired, err := d.eng.ExpireDue(ctx, now)
			if err != nil {
				d.log.Error("expire bans", "err", err)
			}
			if len(expired) > 0 {
				d.afterLift(expired)
				d.mw.Kick(len(expired))
			}
			if now.Sub(lastPrune) >= time.Minute {
				lastPrune = now
				if err := d.eng.Prune(ctx, now, 7*24*time.Hour); err != nil {
					d.log.Error("prune strikes", "err", err)
				}
				if err := d.eng.SaveBuckets(ctx); err != nil {
					d.log.Error("save rate buckets", "err", err)
				}
			}
		}
	}
}

// fanIn merges the sources' batches into one channel. Each forwarder waits
// until its batch is consumed before taking the next one, because a source
// reuses the bytes of a batch once the next is received.
func fanIn(ctx context.Context, sources []watcher.Source) <-chan sourceBatch {
	out := make(chan sourceBatch)
	for _, src := range sources {
		go func() {
			for lines := range src.Batches() {
				b := sourceBatch{lines: lines, done: make(chan struct{})}
				select {
				case out <- b:
				case <-ctx.Done():
					return
				}
				select {
				case <-b.done:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	return out
}

// process stages a batch and commits it, retrying until the database takes
// it: a full disk or a locked database delays reading, it never drops a
// strike or a ban.
func (d *daemon) process(ctx context.Context, batch []watcher.Line) error {
	d.eng.Stage(batch, d.opt.Clock.Now())
	backoff := 100 * time.Millisecond
	for {
		bans, err := d.eng.Commit(ctx)
		if err == nil {
			if len(bans) > 0 {
				d.mw.Kick(len(bans))
				d.afterBan(bans)
			}
			d.alertUrgent(d.eng.TakeUrgent())
			return nil
		}
		d.log.Error("state not saved, retrying", "database", d.cfg.Global.Database, "err", err, "retry_in", backoff)
		if !core.Sleep(d.opt.Clock, backoff, ctx.Done()) {
			return nil
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

func (d *daemon) jailCfg(name string) *config.Jail { return d.cfg.Jail(name) }

func (d *daemon) afterBan(bans []store.Ban) {
	for _, b := range bans {
		addr := rules.FormatPrefix(b.Prefix)
		until := "permanent"
		if !b.Until.IsZero() {
			until = b.Until.UTC().Format(time.RFC3339)
		}
		d.log.Warn("ban", "addr", addr, "jail", b.Jail, "until", until, "reason", b.Reason)
		j := d.jailCfg(b.Jail)
		if j == nil {
			continue
		}
		d.actions.Submit(actions.Expand(j.BanAction, actions.Vars{IP: addr, Jail: b.Jail, BanTime: b.Until.Sub(b.Since)}))
		if d.mailer != nil && j.Alert {
			var lines []string
			if b.Prefix.IsSingleIP() {
				if strikes, err := d.st.RecentStrikes(b.Prefix.Addr(), 5); err == nil {
					for _, s := range strikes {
						lines = append(lines, s.Line)
					}
				}
			}
			d.mailer.Send(notify.Alert{Event: "ban", Jail: b.Jail, Addr: addr, Since: b.Since, Until: b.Until, Strikes: b.Strikes, Reason: b.Reason, Lines: lines})
		}
	}
}

// alertUrgent mails administrators about rate events far over the limit.
func (d *daemon) alertUrgent(evs []store.RateEvent) {
	if d.mailer == nil {
		return
	}
	for _, ev := range evs {
		if j := d.jailCfg(ev.Jail); j == nil || !j.Alert {
			continue
		}
		d.mailer.Send(notify.Alert{Event: "urgent rate", Jail: ev.Jail, Addr: ev.Key, Since: ev.At,
			Reason: fmt.Sprintf("%s reached %.1f, %.1f× the burst of %g (rate %s): %s", ev.What, ev.Level, ev.Level/ev.Burst, ev.Burst, ev.Rate, ev.Detail)})
	}
}

func (d *daemon) afterLift(bans []store.Ban) {
	for _, b := range bans {
		addr := rules.FormatPrefix(b.Prefix)
		d.log.Info("unban", "addr", addr, "jail", b.Jail, "by", b.LiftedBy)
		if j := d.jailCfg(b.Jail); j != nil {
			d.actions.Submit(actions.Expand(j.UnbanAction, actions.Vars{IP: addr, Jail: b.Jail}))
		}
	}
}

// handle passes socket requests into the main loop and waits for the
// answer.
func (d *daemon) handle(ctx context.Context) func(control.Request) control.Response {
	return func(req control.Request) control.Response {
		r := ctlReq{req: req, reply: make(chan control.Response, 1)}
		select {
		case d.reqs <- r:
		case <-ctx.Done():
			return control.Response{Code: ExitUnreachable, Error: "daemon stopping"}
		}
		return <-r.reply
	}
}

func (d *daemon) apply(ctx context.Context, req control.Request) control.Response {
	if req.Op == "status" {
		s, err := BuildStatus(d.cfg, d.st, d.eng)
		if err != nil {
			return control.Response{Code: ExitUnreachable, Error: err.Error()}
		}
		d.fillRunning(s)
		return control.Response{OK: true, Status: s}
	}
	resp := Apply(ctx, d.eng, d.cfg, req, d.opt.Clock.Now())
	if len(resp.Bans) == 0 {
		return resp
	}
	// The change must be in force when the command returns.
	if err := d.mw.write(); err != nil {
		return control.Response{Code: ExitUnreachable, Error: "state saved but map not written: " + err.Error(), Bans: resp.Bans}
	}
	for _, b := range resp.Bans {
		p, _ := rules.ParsePrefix(b.Addr)
		sb := store.Ban{Jail: b.Jail, Prefix: p, Since: b.Since, Strikes: b.Strikes, Reason: b.Reason, LiftedBy: b.LiftedBy}
		if b.Until != nil {
			sb.Until = *b.Until
		}
		if req.Op == "ban" {
			d.afterBan([]store.Ban{sb})
		} else {
			d.afterLift([]store.Ban{sb})
		}
	}
	return resp
}
