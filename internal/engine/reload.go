package engine

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/mailjail/mailjail/internal/config"
)

// ErrPending refuses a reload while a batch waits to be saved (the
// database is failing): its strikes were judged by the old jails.
var ErrPending = errors.New("a batch of events is waiting to be saved")

// JailChanges names the jails a reload added, removed and changed.
type JailChanges struct {
	Added, Removed, Changed []string
}

// Reload puts cfg's jails, filters, ignore and allow lists in place of
// the running ones, keeping the active bans and suspensions (the cache of
// the database, which no configuration changes). A jail whose settings
// and filter are unchanged keeps its state in memory as it is; an added
// or changed jail gets its state from the database as at a start:
// strikes inside findtime, earlier bans for escalation, account strikes,
// saved rate buckets. Nothing is lost, because Reload is called between
// batches with nothing pending (else ErrPending) and the rate buckets are
// saved first. On error the engine is unchanged. The caller lifts what
// the new ignore and allow lists exempt (LiftIgnored, ReleaseAllowed).
func (e *Engine) Reload(ctx context.Context, cfg *config.Config, now time.Time) (JailChanges, error) {
	var ch JailChanges
	if !e.pending.empty() {
		return ch, ErrPending
	}
	next, err := New(cfg, e.st, e.log)
	if err != nil {
		return ch, err
	}
	// The fresh jails are restored on an engine of their own, so that
	// the kept ones are not restored twice.
	fresh, err := New(cfg, e.st, e.log)
	if err != nil {
		return ch, err
	}
	fresh.jails = fresh.jails[:0]
	kept := map[int]*Jail{} // index in next.jails -> the running jail kept there
	for i, j := range next.jails {
		old := e.jail(j.Cfg.Name)
		switch {
		case old == nil:
			ch.Added = append(ch.Added, j.Cfg.Name)
		case e.sameJail(old, cfg, j):
			kept[i] = old
			continue
		default:
			ch.Changed = append(ch.Changed, j.Cfg.Name)
		}
		fresh.jails = append(fresh.jails, j)
	}
	for _, j := range e.jails {
		if next.jail(j.Cfg.Name) == nil {
			ch.Removed = append(ch.Removed, j.Cfg.Name)
		}
	}
	if err := e.SaveBuckets(ctx); err != nil {
		return JailChanges{}, fmt.Errorf("save rate buckets: %w", err)
	}
	if len(fresh.jails) > 0 {
		if err := fresh.RestoreBans(now); err != nil {
			return JailChanges{}, fmt.Errorf("restore state of new jails: %w", err)
		}
		if err := fresh.RestoreStrikes(now); err != nil {
			return JailChanges{}, fmt.Errorf("restore strikes of new jails: %w", err)
		}
	}
	// Kept and fresh jails recorded in different shared histories: one
	// from the database replaces both.
	shared, err := next.loadSharedHistory(now)
	if err != nil {
		return JailChanges{}, fmt.Errorf("restore ban history: %w", err)
	}
	// The allow list is the configuration's and the database's.
	oldCfg := e.cfg
	e.cfg = next.cfg
	if err := e.loadAllow(); err != nil {
		e.cfg = oldCfg
		return JailChanges{}, err
	}
	for i, old := range kept {
		old.Cfg = next.jails[i].Cfg
		next.jails[i] = old
	}
	e.loc = next.loc
	e.jails = next.jails
	e.shareHistory(shared)
	e.pathJails = map[string][]*Jail{}
	// What the host names and files stood for stays until the caller
	// resolves the new configuration's.
	if err := e.SetIgnore(e.resolved); err != nil {
		return ch, err
	}
	return ch, nil
}

// sameJail reports whether the running jail old would be built the same
// from j of cfg: same settings and same filter.
func (e *Engine) sameJail(old *Jail, cfg *config.Config, j *Jail) bool {
	if !reflect.DeepEqual(old.Cfg, j.Cfg) {
		return false
	}
	os, oldCustom := e.cfg.Filters[old.Cfg.Filter]
	ns, newCustom := cfg.Filters[j.Cfg.Filter]
	return oldCustom == newCustom && reflect.DeepEqual(os, ns)
}
