package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"syscall"
	"time"

	"github.com/mailjail/mailjail/actions"
	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/core"
	"github.com/mailjail/mailjail/internal/enforce"
	"github.com/mailjail/mailjail/internal/engine"
	"github.com/mailjail/mailjail/internal/outbox"
	"github.com/mailjail/mailjail/internal/redisconn"
	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/internal/target/nftset"
	"github.com/mailjail/mailjail/internal/target/postfixtable"
	"github.com/mailjail/mailjail/internal/target/rspamdredis"
	"github.com/mailjail/mailjail/mapfile"
	"github.com/mailjail/mailjail/notify"
	"github.com/redis/go-redis/v9"
)

// The pieces below are shared by the daemon and the daemon-less CLI, so
// that both put a change into force the same way.

// NewOutbox makes the outbox worker with the configured action runner,
// webhooks and alert sender. A webhook whose secret or CA file cannot be
// read is logged here; its items fail with the cause until a restart.
func NewOutbox(cfg *config.Config, st *store.Store, log *slog.Logger, clock core.Clock) *outbox.Worker {
	return outbox.New(st, OutboxHandlers(cfg, log, clock), log, outbox.Options{Clock: clock,
		DigestInterval: cfg.Alert.DigestInterval.D, UrgentInterval: cfg.Alert.UrgentInterval.D})
}

// OutboxHandlers deliver cfg's actions, webhooks and alerts (a reload
// builds them anew).
func OutboxHandlers(cfg *config.Config, log *slog.Logger, clock core.Clock) outbox.Handlers {
	h := outbox.Handlers{Action: func(ctx context.Context, a outbox.Action) error {
		_, err := actions.Run(ctx, actions.Command{Argv: a.Argv, Event: a.Event, Jail: a.Jail, Addr: a.Addr}, log)
		return err
	}}
	var hooks []actions.WebhookConfig
	for _, name := range cfg.WebhookNames() {
		w := cfg.Webhook(name)
		hooks = append(hooks, actions.WebhookConfig{Name: name, URL: w.URL, Timeout: w.Timeout.D,
			BearerTokenFile: w.BearerTokenFile, HMACSecretFile: w.HMACSecretFile, CAFile: w.CAFile})
	}
	host, _ := os.Hostname()
	wh, err := actions.NewHooks(hooks, host, core.OrReal(clock).Now)
	if err != nil {
		log.Error("webhook not usable", "err", err)
	}
	h.Webhook = func(ctx context.Context, w outbox.Webhook) error { return wh.Send(ctx, w.Hook, w.HookEvent) }
	if cfg.Alert.Enabled() {
		s, err := notify.NewSender(cfg.Alert.Notify(), clock.Now)
		if err != nil {
			// Check refuses what makes this fail (a bad template, a CA
			// file that is not PEM); what is left (a file unreadable
			// now) fails each attempt, logged and retried.
			h.Alert = func(context.Context, []outbox.Alert) error { return err }
		} else {
			h.Alert = s.Send
		}
	}
	return h
}

// Targets are the enforcement targets of cfg: those of every kind a
// jail (or [global], for manual bans) names, each given only the bans and
// suspensions of the jails that name its kind.
func Targets(cfg *config.Config) ([]enforce.Target, error) {
	return TargetsFollowing(cfg, func() *config.Config { return cfg })
}

// TargetsFollowing is Targets whose scopes follow the configuration
// current returns (from any goroutine): after a reload, a jail's bans go
// to the targets its new settings name.
func TargetsFollowing(cfg *config.Config, current func() *config.Config) ([]enforce.Target, error) {
	var out []enforce.Target
	for _, kind := range cfg.UsedTargets() {
		ts, err := targetsOf(cfg, kind)
		if err != nil {
			return nil, fmt.Errorf("target %s: %w", kind, err)
		}
		keep := func(jail string) bool { return slices.Contains(current().TargetsOf(jail), kind) }
		for _, t := range ts {
			out = append(out, enforce.Scoped(t, keep))
		}
	}
	return out, nil
}

// targetsOf builds the targets of one kind.
func targetsOf(cfg *config.Config, kind string) ([]enforce.Target, error) {
	switch kind {
	case config.TargetRspamdMap:
		return []enforce.Target{enforce.NewMapTarget(cfg.Global.MapFile), enforce.NewAccountMapTarget(cfg.Global.AccountMapFile)}, nil
	case config.TargetPostfix:
		pf := cfg.Postfix
		return []enforce.Target{postfixtable.New(postfixtable.Config{Path: pf.Table, Type: pf.Type,
			Postmap: pf.Postmap, Reload: pf.Reload, Message: pf.Message})}, nil
	case config.TargetNftables:
		return []enforce.Target{nftablesTarget(cfg.Nftables)}, nil
	case config.TargetRspamdRedis:
		return rspamdRedis(cfg)
	}
	return nil, fmt.Errorf("target kind %q is not built in", kind)
}

// rspamdRedis is the rspamd-redis target on a client of its own (one per
// daemon: it is the only user of [redis] so far), which the enforcer's
// Close closes through the target. No connection is made here: a daemon
// started while Redis is down syncs once it is back.
func rspamdRedis(cfg *config.Config) ([]enforce.Target, error) {
	c, err := openRedis(cfg)
	if err != nil {
		return nil, err
	}
	return []enforce.Target{rspamdredis.New(c, rspamdredis.Config{Bans: cfg.BansKey(), Accounts: cfg.AccountsKey(), Owner: cfg.RspamdRedis.Owner})}, nil
}

// openRedis is a client of [redis] (no connection is made yet).
func openRedis(cfg *config.Config) (redis.UniversalClient, error) {
	r := cfg.Redis
	return redisconn.Open(redisconn.Config{Address: r.Address, Sentinels: r.Sentinels, MasterName: r.MasterName,
		Username: r.Username, Password: r.Password, PasswordFile: r.PasswordFile, DB: r.DB,
		TLS: r.TLS, CAFile: r.CAFile, Timeout: r.Timeout.D})
}

// NewEnforcer makes the enforcer for cfg's targets, following eng's
// active bans and suspensions, and installs the outbox planner in eng.
func NewEnforcer(cfg *config.Config, eng *engine.Engine, ob *outbox.Worker, opt enforce.Options) (*enforce.Enforcer, error) {
	return newEnforcer(cfg, func() *config.Config { return cfg }, eng, ob, opt)
}

// newEnforcer is NewEnforcer whose scopes follow current.
func newEnforcer(cfg *config.Config, current func() *config.Config, eng *engine.Engine, ob *outbox.Worker, opt enforce.Options) (*enforce.Enforcer, error) {
	targets, err := TargetsFollowing(cfg, current)
	if err != nil {
		return nil, err
	}
	eng.SetEffects(enforce.Effects(cfg))
	return enforce.New(targets, eng, ob, opt), nil
}

// AdoptedMap is the map Prepare takes over: map_file when the rspamd-map
// target is in use, else none ("").
func AdoptedMap(cfg *config.Config) string {
	if cfg.UsesTarget(config.TargetRspamdMap) {
		return cfg.Global.MapFile
	}
	return ""
}

// Prepare takes over the map and lifts bans that ended or are now
// ignored: what the daemon does before it writes the map, and what a CLI
// does before changing bans without a daemon, both after
// eng.RestoreBans (once: it also feeds escalation). It returns what it
// changed (imported entries, bans lifted) for the enforcer. Strikes are
// restored separately (RestoreStrikes): the map must not wait for them.
// It may be called again after an error. mapPath is AdoptedMap's: ""
// takes over no map.
func Prepare(ctx context.Context, eng *engine.Engine, mapPath string, now time.Time) (imported int, ch engine.Change, err error) {
	adopted := mapPath == ""
	if !adopted {
		if adopted, err = eng.MapAdopted(mapPath); err != nil {
			return 0, ch, err
		}
	}
	if !adopted {
		existing, err := readExistingMap(mapPath)
		if err != nil {
			return 0, ch, err
		}
		if ch, err = eng.AdoptMap(ctx, mapPath, existing, now); err != nil {
			return 0, ch, fmt.Errorf("take over %s: %w", mapPath, err)
		}
		imported = len(ch.Bans)
	}
	expired, err := eng.ExpireDue(ctx, now)
	if err != nil {
		return imported, ch, fmt.Errorf("expire bans: %w", err)
	}
	ignored, err := eng.LiftIgnored(ctx, now)
	if err != nil {
		return imported, ch, fmt.Errorf("lift bans of ignored addresses: %w", err)
	}
	allowed, err := eng.ReleaseAllowed(ctx, now)
	if err != nil {
		return imported, ch, fmt.Errorf("release allowed accounts: %w", err)
	}
	ch.Lifted = append(append(ch.Lifted, expired.Lifted...), ignored.Lifted...)
	ch.Released = append(append(ch.Released, expired.Released...), allowed.Released...)
	ch.At = now
	return imported, ch, nil
}

// LockMaps takes LockMap of every file a target of cfg rewrites (the
// address and account maps, the Postfix table), and returns what
// releases them: two mailjails writing one file would each drop the
// other's entries.
func LockMaps(cfg *config.Config) (unlock func(), err error) {
	var held []*mapfile.Lock
	unlock = func() {
		for _, l := range held {
			l.Unlock()
		}
	}
	var paths []string
	if cfg.UsesTarget(config.TargetRspamdMap) {
		paths = append(paths, cfg.Global.MapFile, cfg.Global.AccountMapFile)
	}
	if cfg.UsesTarget(config.TargetPostfix) {
		paths = append(paths, cfg.Postfix.Table)
	}
	for _, path := range paths {
		l, err := LockMap(path)
		if err != nil {
			unlock()
			return nil, err
		}
		held = append(held, l)
	}
	return unlock, nil
}

// LockMap takes the map's own lock (one mailjail per map, whatever its
// database) and checks that a rewrite can keep the map's group and mode.
// A map on a file system that is full or read-only is not an error here:
// the daemon starts degraded and retries.
func LockMap(path string) (*mapfile.Lock, error) {
	l, err := mapfile.TryLock(path)
	if err != nil {
		return nil, err
	}
	if err := mapfile.CheckWritable(path); err != nil && !errors.Is(err, syscall.EROFS) && !errors.Is(err, syscall.ENOSPC) {
		l.Unlock()
		return nil, err
	}
	return l, nil
}

// ErrBadMap means the existing map cannot be taken over: retrying will
// not help, the administrator must fix or move it.
var ErrBadMap = errors.New("existing map cannot be taken over")

func readExistingMap(path string) (mapfile.Parsed, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return mapfile.Parsed{}, nil
	}
	if err != nil {
		return mapfile.Parsed{}, fmt.Errorf("take over %s: %w", path, err)
	}
	defer f.Close()
	m, err := mapfile.ParseEntries(f, path)
	if err != nil {
		return mapfile.Parsed{}, fmt.Errorf("%w (fix or move the line, nothing was changed): %w", ErrBadMap, err)
	}
	return m, nil
}

// nftablesTarget is the nftables target of [nftables], in the daemon's
// own network namespace. Ports and priority were checked by Validate.
func nftablesTarget(n config.Nftables) *nftset.Set {
	ports := make([]uint16, 0, len(n.Ports))
	for _, p := range n.Ports {
		ports = append(ports, uint16(p))
	}
	return nftset.New(nftset.Config{Table: n.Table, Ports: ports, Priority: int32(n.Priority)})
}
