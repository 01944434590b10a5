package daemon

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/control"
	"github.com/mailjail/mailjail/internal/core"
	"github.com/mailjail/mailjail/internal/enforce"
	"github.com/mailjail/mailjail/internal/engine"
)

// EmbeddedSource is config.Config.Source of the embedded default: a
// reload of it rereads the embedded default.
const embeddedSource = "embedded default"

// loadAgain rereads the configuration the daemon runs with, from where it
// came, and validates it.
func loadAgain(source string) (*config.Config, error) {
	if source == embeddedSource {
		return config.LoadDefault()
	}
	return config.Load(source)
}

// reload rereads the configuration and puts it in force between batches
// (it runs in the main loop): an invalid one is refused whole and the
// running one stays; what cannot change live is kept as it runs and named
// in a warning; the rest (jails, filters, ignore and allow lists, alerts,
// actions, webhooks, the jails' targets) takes effect without losing a
// strike, a ban or a read position. The error wraps core.ErrInvalid for
// a configuration refused.
func (d *daemon) reload(ctx context.Context) (*control.Reload, error) {
	res := &control.Reload{Config: d.cfg.Source, Added: []string{}, Removed: []string{}, Changed: []string{}, Warnings: []string{}, Errors: []string{}}
	if !d.following {
		// Still starting: the logs are followed from the jails of the
		// configuration the start has.
		res.Errors = append(res.Errors, "daemon still starting")
		return res, fmt.Errorf("%w: reload not done: the daemon is still starting (%s); try again", errNotReady, d.degraded)
	}
	sdNotify(reloadingState(d.opt.Clock))
	defer func() { sdNotify("READY=1\nSTATUS=" + d.statusLine()) }()
	d.log.Info("reloading configuration", "config", d.cfg.Source)
	cfg, err := loadAgain(d.cfg.Source)
	if err != nil {
		for line := range strings.SplitSeq(err.Error(), "\n") {
			if line = strings.TrimSpace(line); line != "" {
				res.Errors = append(res.Errors, line)
				d.log.Error("reload refused: "+line, "config", d.cfg.Source)
			}
		}
		return res, fmt.Errorf("%w: configuration %s refused (%d %s); the running one stays in force",
			core.ErrInvalid, d.cfg.Source, len(res.Errors), plural(len(res.Errors), "error", "errors"))
	}
	res.Warnings = keepRestartOnly(d.cfg, cfg)
	for _, w := range cfg.Warnings() {
		res.Warnings = append(res.Warnings, w.Error())
	}
	now := d.opt.Clock.Now()
	oldPatterns, oldJournals := d.cfgSources()
	// Restoring the strikes of changed jails takes a while on a big
	// database; the loop is busy, not stuck.
	var jc engine.JailChanges
	err = d.wd.during(func() (err error) { jc, err = d.eng.Reload(ctx, cfg, now); return err })
	if err != nil {
		res.Errors = append(res.Errors, err.Error())
		d.log.Error("reload not done; the running configuration stays in force", "err", err)
		if errors.Is(err, engine.ErrPending) {
			return res, fmt.Errorf("reload not done, try again once the daemon is no longer degraded: %w", err)
		}
		return res, fmt.Errorf("reload not done: %w", err)
	}
	for _, w := range res.Warnings {
		d.log.Warn("reload: " + w)
	}
	d.cfg = cfg
	d.cfgNow.Store(cfg)
	d.ops.Cfg = cfg
	d.eng.SetEffects(enforce.Effects(cfg))
	h := OutboxHandlers(cfg, d.log, d.opt.Clock)
	d.handlers.Store(&h)
	res.Applied = true
	res.Added, res.Removed, res.Changed = orEmpty(jc.Added), orEmpty(jc.Removed), orEmpty(jc.Changed)
	if err := d.restartIgnore(ctx); err != nil {
		// The new jails run with the addresses the old lists stood for.
		res.Warnings = append(res.Warnings, "ignoreip files and host names not reread: "+err.Error())
		d.log.Error("reload: ignoreip not reread", "err", err)
	}
	d.liftExempt(ctx, now, res)
	if newPatterns, newJournals := d.cfgSources(); !slices.Equal(oldPatterns, newPatterns) || !reflect.DeepEqual(oldJournals, newJournals) {
		if err := d.refollow(ctx); err != nil {
			// The jails are in force but some logs are not read: as
			// bad as a start that cannot follow them.
			d.setDegraded("follow logs after reload: " + err.Error())
			res.Warnings = append(res.Warnings, "logs not followed: "+err.Error())
			d.log.Error("reload: logs not followed", "err", err)
		}
	}
	d.log.Info("configuration reloaded", "config", cfg.Source, "added", jc.Added, "removed", jc.Removed, "changed", jc.Changed, "warnings", len(res.Warnings))
	return res, nil
}

// liftExempt lifts the bans of addresses the new ignore lists exempt and
// the suspensions of accounts the new allow list holds, as a start does.
func (d *daemon) liftExempt(ctx context.Context, t time.Time, res *control.Reload) {
	ignored, err := d.eng.LiftIgnored(ctx, t)
	if err == nil {
		var allowed engine.Change
		if allowed, err = d.eng.ReleaseAllowed(ctx, t); err == nil {
			ignored.Released = append(ignored.Released, allowed.Released...)
		}
	}
	if err != nil {
		msg := "bans of newly ignored addresses not lifted (the next reload or start lifts them): " + err.Error()
		res.Warnings = append(res.Warnings, msg)
		d.log.Error("reload: " + msg)
	}
	d.enf.Apply(ctx, ignored)
}

// cfgSources are the logs the running jails read.
func (d *daemon) cfgSources() ([]string, []core.JournalMatch) {
	p := slices.Clone(d.eng.LogPatterns())
	slices.Sort(p)
	return p, d.eng.JournalMatches()
}

// refollow replaces the sources by followers of the running jails' logs,
// from the read positions in the database. The loop is between batches,
// so every line consumed is in the database and the followers' lines not
// consumed yet are read again by the new ones: none is lost or counted
// twice. A file not followed before starts at its end (unless
// from_start).
func (d *daemon) refollow(ctx context.Context) error {
	d.stopFollow()
	d.sources = nil
	fctx, stop := context.WithCancel(ctx)
	batches, err := d.follow(fctx)
	if err != nil {
		stop()
		d.batches, d.stopFollow = nil, func() {}
		return err
	}
	d.batches, d.stopFollow = batches, stop
	return nil
}

// keepRestartOnly sets in next what cannot change while the daemon runs
// to the running values (the store, socket, map files and target
// connections stay as they are) and names each such key that differed.
func keepRestartOnly(cur, next *config.Config) []string {
	var warn []string
	keep := func(key string, differ bool, restore func()) {
		if differ {
			warn = append(warn, key+" changed: needs a restart (the running value stays in force)")
			restore()
		}
	}
	g, n := &cur.Global, &next.Global
	keep("global.database", g.Database != n.Database, func() { n.Database = g.Database })
	keep("global.socket", g.Socket != n.Socket, func() { n.Socket = g.Socket })
	keep("global.socket_group", g.SocketGroup != n.SocketGroup, func() { n.SocketGroup = g.SocketGroup })
	keep("global.map_file", g.MapFile != n.MapFile, func() { n.MapFile = g.MapFile })
	keep("global.account_map_file", g.AccountMapFile != n.AccountMapFile, func() { n.AccountMapFile = g.AccountMapFile })
	keep("global.log_level", g.LogLevel != n.LogLevel, func() { n.LogLevel = g.LogLevel })
	keep("[postfix]", !reflect.DeepEqual(cur.Postfix, next.Postfix), func() { next.Postfix = cur.Postfix })
	keep("[nftables]", !reflect.DeepEqual(cur.Nftables, next.Nftables), func() { next.Nftables = cur.Nftables })
	keep("[redis]", !reflect.DeepEqual(cur.Redis, next.Redis), func() { next.Redis = cur.Redis })
	keep("[rspamd_redis]", !reflect.DeepEqual(cur.RspamdRedis, next.RspamdRedis), func() { next.RspamdRedis = cur.RspamdRedis })
	keep("[cluster]", !reflect.DeepEqual(cur.Cluster, next.Cluster), func() { next.Cluster = cur.Cluster })
	if was, now := cur.UsedTargets(), next.UsedTargets(); !slices.Equal(was, now) {
		// The targets are built at the start; a jail naming a kind not
		// running has its bans in the kinds that do.
		warn = append(warn, fmt.Sprintf("target kinds in use changed from %v to %v: needs a restart (bans go to the running targets the jails name meanwhile)", was, now))
	}
	return warn
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// statusLine is the STATUS= systemd shows: what the daemon does, or why
// it is degraded.
func (d *daemon) statusLine() string {
	if d.degraded != "" {
		return "degraded: " + d.degraded
	}
	if b := d.eng.Breaker(); b.Active() {
		return BreakerView(b, d.eng.HeldBans()).Summary()
	}
	return "following logs"
}
