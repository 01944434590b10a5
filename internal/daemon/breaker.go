package daemon

import (
	"context"

	"github.com/mailjail/mailjail/internal/control"
	"github.com/mailjail/mailjail/internal/engine"
	"github.com/mailjail/mailjail/internal/store"
)

// resume releases a tripped circuit breaker (see engine.Resume) and tells
// systemd the daemon follows its logs again.
func (d *daemon) resume(ctx context.Context, by string) ([]store.Ban, error) {
	ch, err := d.ops.Resume(ctx, by)
	if err == nil || len(ch.Resumed) > 0 {
		sdNotify("STATUS=" + d.statusLine())
	}
	return ch.Resumed, err
}

// BreakerView is a tripped breaker as status shows it, with the active
// bans it holds (nil when it is not tripped).
func BreakerView(b engine.BreakerState, held []store.Ban) *control.BreakerStatus {
	if !b.Active() {
		return nil
	}
	return &control.BreakerStatus{Tripped: b.Tripped.UTC(), Reason: b.Reason, Held: len(held), FirstHeldID: b.HeldFrom}
}

// breakerStatus fills status's breaker, and the map's entries the
// breaker holds back, from the engine or, without one, the database.
func breakerStatus(s *control.Status, st *store.Store, eng *engine.Engine) error {
	var b engine.BreakerState
	var err error
	if eng != nil {
		b = eng.Breaker()
	} else if b, err = engine.ReadBreaker(st); err != nil {
		return err
	}
	if !b.Active() {
		return nil
	}
	bans, err := st.ActiveBans()
	if err != nil {
		return err
	}
	var held []store.Ban
	given := map[string]bool{}
	for _, x := range bans {
		switch {
		case engine.Held(x, b.HeldFrom):
			held = append(held, x)
		case !x.LogOnly:
			given[x.Prefix.String()] = true
		}
	}
	s.Breaker = BreakerView(b, held)
	s.MapEntries = len(given)
	return nil
}
