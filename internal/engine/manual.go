package engine

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/mailjail/mailjail/internal/core"
	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/rules"
)

// ErrIgnored refuses a manual ban of an address in ignoreip.
var ErrIgnored = fmt.Errorf("in ignoreip, or holds an address that is: %w", core.ErrInvalid)

// Ban bans p by hand. d is the length (config.Permanent for no end).
func (e *Engine) Ban(ctx context.Context, p netip.Prefix, jail string, d time.Duration, reason string, now time.Time) (Change, error) {
	if jail == "" {
		jail = ManualJail
	}
	if e.ignoreOf(jail).Overlaps(p) {
		return Change{}, fmt.Errorf("ban %s: %w", rules.FormatPrefix(p), ErrIgnored)
	}
	b := store.Ban{Jail: jail, Prefix: p, Since: now, Reason: reason}
	if d > 0 {
		b.Until = now.Add(d)
	}
	ch, err := e.update(ctx, now, func(tx *store.Tx) (Change, error) {
		id, err := tx.AddBan(b)
		b.ID = id
		return Change{Bans: []store.Ban{b}}, err
	})
	if err != nil {
		return Change{}, err
	}
	e.put(b)
	return ch, nil
}

// Unban lifts the active bans of p (in jail, or all jails when empty)
// and clears its strikes. It returns store.ErrNotFound when p is not
// banned.
func (e *Engine) Unban(ctx context.Context, p netip.Prefix, jail string, now time.Time, by string) (Change, error) {
	ch, err := e.update(ctx, now, func(tx *store.Tx) (ch Change, err error) {
		ch.Lifted, err = tx.LiftBans(p, jail, now, by)
		return ch, err
	})
	if err != nil {
		return Change{}, err
	}
	for _, j := range e.jails {
		if jail == "" || j.Cfg.Name == jail {
			if p.IsSingleIP() {
				j.Policy.Lift(rules.KeyOf(j.key(p.Addr())))
			} else {
				j.Policy.Lift(rules.KeyOf(p.Addr()))
			}
		}
	}
	if len(ch.Lifted) == 0 {
		return Change{}, fmt.Errorf("%s is not banned: %w", rules.FormatPrefix(p), store.ErrNotFound)
	}
	e.forget(ch.Lifted)
	return ch, nil
}

// LiftIgnored lifts active bans of addresses that are now in ignoreip (of
// their jail, or the global one for manual bans): an operator who adds a
// gateway to ignoreip and restarts expects it out of the map. A banned
// range that merely overlaps an ignored address is kept, with a warning.
func (e *Engine) LiftIgnored(ctx context.Context, now time.Time) (lifted Change, err error) {
	lifted.At = now
	for _, b := range e.ActiveBans() {
		ign := e.ignoreOf(b.Jail)
		switch {
		case b.Prefix.IsSingleIP() && ign.Contains(b.Prefix.Addr()):
			l, err := e.Unban(ctx, b.Prefix, b.Jail, now, "ignoreip")
			if err != nil {
				return lifted, err
			}
			lifted.Lifted = append(lifted.Lifted, l.Lifted...)
		case !b.Prefix.IsSingleIP() && ign.Overlaps(b.Prefix):
			e.log.Warn("a banned range covers an address in ignoreip; kept, unban it if that is wrong", "range", rules.FormatPrefix(b.Prefix), "jail", b.Jail)
		}
	}
	return lifted, nil
}
