package daemon

import (
	"context"
	"errors"

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
	if lerr := h.inLoop(ctx, func() { bans, err = h.d.ops.Ban(h.ctx, r) }); lerr != nil {
		return nil, lerr
	}
	return bans, err
}

func (h *handler) Unban(ctx context.Context, r enforce.UnbanRequest) (bans []store.Ban, err error) {
	if lerr := h.inLoop(ctx, func() { bans, err = h.d.ops.Unban(h.ctx, r) }); lerr != nil {
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
