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

func (h *handler) Ban(ctx context.Context, r enforce.BanRequest) (bans []store.Ban, err error) {
	if lerr := h.inLoop(ctx, func() {
		if err = h.d.notReady(); err == nil {
			bans, err = h.d.ops.Ban(h.ctx, r)
		}
	}); lerr != nil {
		return nil, lerr
	}
	return bans, err
}

func (h *handler) Unban(ctx context.Context, r enforce.UnbanRequest) (bans []store.Ban, err error) {
	if lerr := h.inLoop(ctx, func() {
		if err = h.d.notReady(); err == nil {
			bans, err = h.d.ops.Unban(h.ctx, r)
		}
	}); lerr != nil {
		return nil, lerr
	}
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

// notReady is errNotReady, with the reason, before the daemon is ready.
func (d *daemon) notReady() error {
	if d.ready {
		return nil
	}
	return fmt.Errorf("%w: %s", errNotReady, d.degraded)
}
