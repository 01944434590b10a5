package engine

import (
	"context"
	"time"

	"github.com/mailjail/mailjail/internal/store"
)

// Change is what one committed transaction changed in force: bans made,
// bans lifted, urgent rate events. The engine returns one from every
// operation that writes; the enforcer (internal/enforce) puts it into
// force, the same way for the daemon, the daemon-less CLI and replay.
type Change struct {
	Bans   []store.Ban
	Lifted []store.Ban
	Rate   []store.RateEvent // rate events (log-only jails over a limit)
	Urgent []store.RateEvent // those of Rate far over their limit: alert now
	// Suspended and Released are accounts suspended and released.
	Suspended []store.Suspension
	Released  []store.Suspension
	At        time.Time // when it was committed, by the caller's clock
	// Imported: the bans were taken over from an existing map, already
	// in force: they cause no actions or alerts.
	Imported bool
	// Trip is set when the change tripped the circuit breaker; Held is
	// the first ban ID a tripped breaker holds (0: none held), so that
	// held bans run no actions (see Held); Resumed are the held bans a
	// resume released: now given to the targets, their actions due.
	Trip    *BreakerState
	Held    int64
	Resumed []store.Ban
}

// Empty reports whether the change changed nothing in force.
func (c Change) Empty() bool {
	return len(c.Bans) == 0 && len(c.Lifted) == 0 && len(c.Rate) == 0 && len(c.Suspended) == 0 && len(c.Released) == 0 &&
		len(c.Resumed) == 0 && c.Trip == nil
}

// Effects writes, in the change's own transaction, what the change
// causes besides enforcement (actions and alerts for the outbox), so
// that a crash right after the commit loses none of them.
type Effects func(tx *store.Tx, ch Change) error

// SetEffects installs the hook every writing transaction calls; without
// one a change causes nothing but itself (replay).
func (e *Engine) SetEffects(f Effects) { e.effects = f }

// update runs fn and then the effects of the change it returns, in one
// transaction; on error nothing of either is written.
func (e *Engine) update(ctx context.Context, at time.Time, fn func(tx *store.Tx) (Change, error)) (Change, error) {
	var ch Change
	err := e.st.Update(ctx, func(tx *store.Tx) (err error) {
		if ch, err = fn(tx); err != nil {
			return err
		}
		ch.At = at
		if ch.Held == 0 {
			ch.Held = e.brk.state.HeldFrom
		}
		if e.effects == nil || ch.Empty() || ch.Imported {
			return nil
		}
		return e.effects(tx, ch)
	})
	if err != nil {
		return Change{}, err
	}
	e.countChange(ch)
	return ch, nil
}
