package daemon

import (
	"context"
	"errors"
	"fmt"

	"github.com/mailjail/mailjail/internal/control"
	"github.com/mailjail/mailjail/internal/enforce"
	"github.com/mailjail/mailjail/internal/store"
)

// ctlReq is a control request's work, run by the main loop between log
// batches.
type ctlReq struct {
	run  func()
	done chan struct{}
}

// errStopping answers requests that arrive while the daemon stops.
var errStopping = errors.New("daemon stopping")

// errNotReady answers changes asked for before the daemon has taken over
// the map: carrying them out would write a map without its old entries.
var errNotReady = errors.New("daemon not ready")

// handler is the daemon's control.Handler: each call runs in the main
// loop, so commands and bans from logs never race.
type handler struct {
	d   *daemon
	ctx context.Context // the daemon's
}

// inLoop runs fn in the main loop and waits for it.
func (h *handler) inLoop(ctx context.Context, fn func()) error {
	r := ctlReq{run: fn, done: make(chan struct{})}
	select {
	case h.d.reqs <- r:
	case <-h.ctx.Done():
		return errStopping
	case <-ctx.Done():
		return ctx.Err()
	}
	<-r.done
	return nil
}

func (h *handler) Ban(ctx context.Context, r enforce.BanRequest) ([]store.Ban, error) {
	return inLoopChange(h, ctx, r, h.d.ops.Ban)
}

func (h *handler) Unban(ctx context.Context, r enforce.UnbanRequest) ([]store.Ban, error) {
	return inLoopChange(h, ctx, r, h.d.ops.Unban)
}

func (h *handler) Suspend(ctx context.Context, r enforce.SuspendRequest) ([]store.Suspension, error) {
	return inLoopChange(h, ctx, r, h.d.ops.Suspend)
}

func (h *handler) Release(ctx context.Context, accounts []string) ([]store.Suspension, error) {
	return inLoopChange(h, ctx, accounts, h.d.ops.Release)
}

// AllowAdd and AllowDel change no target, so they need not wait for the
// daemon to be ready: an allow entry can be added while the map is
// broken.
func (h *handler) AllowAdd(ctx context.Context, r control.AllowRequest) (added []store.Allowed, err error) {
	if lerr := h.inLoop(ctx, func() { added, err = AllowAdd(h.ctx, h.d.eng, r, h.d.opt.Clock.Now()) }); lerr != nil {
		return nil, lerr
	}
	return added, err
}

func (h *handler) AllowDel(ctx context.Context, r control.AllowRequest) (removed []store.Allowed, err error) {
	if lerr := h.inLoop(ctx, func() { removed, err = AllowDel(h.ctx, h.d.eng, h.d.cfg, r) }); lerr != nil {
		return nil, lerr
	}
	return removed, err
}

// inLoopChange runs op(r) in the main loop once the daemon is ready (has
// taken over the maps) and returns what it changed.
func inLoopChange[R, D any](h *handler, ctx context.Context, r R, op func(context.Context, R) (D, error)) (out D, err error) {
	if lerr := h.inLoop(ctx, func() {
		if err = h.d.notReady(); err == nil {
			out, err = op(h.ctx, r)
		}
	}); lerr != nil {
		var zero D
		return zero, lerr
	}
	return out, err
}

// Resume releases a tripped circuit breaker, in the loop like any
// change; systemd's STATUS= follows.
func (h *handler) Resume(ctx context.Context, by string) ([]store.Ban, error) {
	bans, err := inLoopChange(h, ctx, by, h.d.resume)
	return bans, err
}

func (h *handler) Status(ctx context.Context) (s *control.Status, err error) {
	if lerr := h.inLoop(ctx, func() {
		if s, err = BuildStatus(h.d.cfg, h.d.st, h.d.eng); err == nil {
			h.d.fillRunning(s)
		}
	}); lerr != nil {
		return nil, lerr
	}
	return s, err
}

// Outbox is the daemon's outbox worker: listing, retrying and dropping
// items need not wait for the main loop (the worker and the store are
// safe to use from any goroutine), and a retry wakes the worker.
func (h *handler) Outbox() control.Outbox { return h.d.outbox }

// notReady is errNotReady, with the reason, before the daemon is ready.
func (d *daemon) notReady() error {
	if d.ready {
		return nil
	}
	return fmt.Errorf("%w: %s", errNotReady, d.degraded)
}

// Reload rereads the configuration in the main loop, between batches
// (control.Reloader). It does not wait for the daemon to be ready: a
// configuration can be mended while the database is failing, and the
// engine refuses what cannot be done then.
func (h *handler) Reload(ctx context.Context) (res *control.Reload, err error) {
	if lerr := h.inLoop(ctx, func() { res, err = h.d.reload(h.ctx) }); lerr != nil {
		return nil, lerr
	}
	return res, err
}
