package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/mailjail/mailjail/internal/allowlist"
	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/control"
	"github.com/mailjail/mailjail/internal/core"
	"github.com/mailjail/mailjail/internal/daemon"
	"github.com/mailjail/mailjail/internal/enforce"
	"github.com/mailjail/mailjail/internal/engine"
	"github.com/mailjail/mailjail/internal/outbox"
	"github.com/mailjail/mailjail/internal/store"
)

// Bounds of a change made without a daemon: waiting for another CLI's
// lock, retrying targets that cannot be written (nobody else would), and
// running the actions and alerts the change queued (what is left stays
// in the outbox for the daemon).
const (
	lockWait    = 10 * time.Second
	enforceWait = 30 * time.Second
	outboxWait  = 30 * time.Second
)

// change sends a request that changes state (control.ChangeOps) to the
// running daemon, or, when none runs, carries it out on the database and
// the targets directly, under the lock the daemon holds while it runs,
// through the same operations the daemon uses. Either way the change is
// in force when this returns.
func change(ctx context.Context, cfg *config.Config, op string, req control.Request) (*control.Response, error) {
	if resp, err := askDaemon(ctx, cfg, op, req); resp != nil || err != nil {
		return resp, err
	}
	return changeLocally(ctx, cfg, op, req)
}

// askDaemon sends the request to the running daemon. With no daemon it
// returns neither a response nor an error: the caller works without one.
func askDaemon(ctx context.Context, cfg *config.Config, op string, req control.Request) (*control.Response, error) {
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	resp, err := control.Call(cctx, cfg.Global.Socket, op, req)
	switch {
	case err == nil:
		return resp, nil
	case errors.Is(err, control.ErrNoDaemon):
		return nil, nil
	}
	return nil, &exitError{code: control.ExitUnreachable, err: err}
}

// lockState takes the lock a running daemon holds, for a change made
// without one (another CLI's change is waited for).
func lockState(cfg *config.Config, clock core.Clock) (unlock func(), err error) {
	lock, err := daemon.WaitLock(cfg.Global.Database, lockWait, clock)
	if errors.Is(err, daemon.ErrLocked) {
		return nil, exitf(control.ExitUnreachable, "a mailjail daemon holds %s but its socket %s does not answer", daemon.LockPath(cfg.Global.Database), cfg.Global.Socket)
	}
	if err != nil {
		return nil, &exitError{code: control.ExitUnreachable, err: err}
	}
	return func() { lock.Unlock() }, nil
}

// drainOutbox carries out what is due in the outbox, for up to
// outboxWait, and says what is left for the daemon.
func drainOutbox(ctx context.Context, ob *outbox.Worker) {
	octx, cancel := context.WithTimeout(ctx, outboxWait)
	defer cancel()
	if left, err := ob.Drain(octx); err != nil {
		fmt.Fprintf(os.Stderr, "mailjail: actions and alerts not carried out: %v\n", err)
	} else if left > 0 {
		fmt.Fprintf(os.Stderr, "mailjail: %d actions or alerts left in the outbox for the daemon\n", left)
	}
}

func changeLocally(ctx context.Context, cfg *config.Config, op string, req control.Request) (*control.Response, error) {
	clock := core.RealClock{}
	unlock, err := lockState(cfg, clock)
	if err != nil {
		return nil, err
	}
	defer unlock()
	unlockMaps, err := daemon.LockMaps(cfg)
	if err != nil {
		return nil, &exitError{code: control.ExitUnreachable, err: err}
	}
	defer unlockMaps()
	st, err := store.Open(cfg.Global.Database, store.Options{Durable: true})
	if err != nil {
		return nil, &exitError{code: control.ExitUnreachable, err: err}
	}
	defer st.Close()
	log := newLogger(os.Stderr, "warn", config.LogText)
	eng, err := engine.New(cfg, st, log)
	if err != nil {
		return nil, &exitError{code: control.ExitUsage, err: err}
	}
	ob := daemon.NewOutbox(cfg, st, log, clock)
	enf, err := daemon.NewEnforcer(cfg, eng, ob, enforce.Options{Clock: clock, Log: log, RetryFor: enforceWait})
	if err != nil {
		return nil, &exitError{code: control.ExitUsage, err: err}
	}
	defer enf.Close()
	if err := eng.RestoreBans(clock.Now()); err != nil {
		return nil, &exitError{code: control.ExitUnreachable, err: fmt.Errorf("restore state: %w", err)}
	}
	if _, _, err := daemon.LoadIgnore(ctx, cfg, st, eng, allowlist.Options{Clock: clock, Log: log}); err != nil {
		return nil, &exitError{code: control.ExitUnreachable, err: fmt.Errorf("load ignoreip: %w", err)}
	}
	_, prep, err := daemon.Prepare(ctx, eng, daemon.AdoptedMap(cfg), clock.Now())
	if err != nil {
		return nil, &exitError{code: control.ExitUnreachable, err: err}
	}
	// Bans that ended meanwhile leave the targets too; a failure here is
	// retried by the command's own change, which writes the whole state.
	if err := enf.Apply(ctx, prep); err != nil {
		fmt.Fprintf(os.Stderr, "mailjail: targets not brought in step: %v\n", err)
	}
	h := &localHandler{ops: &enforce.Ops{Eng: eng, Cfg: cfg, Enf: enf, Clock: clock}}
	resp := control.Do(ctx, h, op, req)
	drainOutbox(ctx, ob)
	return &resp, nil
}

// localHandler carries out a change without a daemon: the daemon's
// operations, on the database under its lock.
type localHandler struct{ ops *enforce.Ops }

func (h *localHandler) Ban(ctx context.Context, r enforce.BanRequest) ([]store.Ban, error) {
	bans, err := h.ops.Ban(ctx, r)
	return bans, laterNote(err)
}

func (h *localHandler) Unban(ctx context.Context, r enforce.UnbanRequest) ([]store.Ban, error) {
	bans, err := h.ops.Unban(ctx, r)
	return bans, laterNote(err)
}

func (h *localHandler) Suspend(ctx context.Context, r enforce.SuspendRequest) ([]store.Suspension, error) {
	ss, err := h.ops.Suspend(ctx, r)
	return ss, laterNote(err)
}

func (h *localHandler) Release(ctx context.Context, accounts []string) ([]store.Suspension, error) {
	ss, err := h.ops.Release(ctx, accounts)
	return ss, laterNote(err)
}

func (h *localHandler) AllowAdd(ctx context.Context, r control.AllowRequest) ([]store.Allowed, error) {
	return daemon.AllowAdd(ctx, h.ops.Eng, r, h.ops.Clock.Now())
}

func (h *localHandler) AllowDel(ctx context.Context, r control.AllowRequest) ([]store.Allowed, error) {
	return daemon.AllowDel(ctx, h.ops.Eng, h.ops.Cfg, r)
}

func (h *localHandler) Resume(ctx context.Context, by string) ([]store.Ban, error) {
	ch, err := h.ops.Resume(ctx, by)
	return ch.Resumed, laterNote(err)
}

// laterNote says, for a change saved but not in force, who puts it in
// force: with no daemon nobody retries it now.
func laterNote(err error) error {
	if errors.Is(err, enforce.ErrNotEnforced) {
		return fmt.Errorf("%w; the daemon (or the next mailjail command) writes it when it starts", err)
	}
	return err
}

// openRead opens the database for reading. A database that does not
// exist yet is reported as such (callers treat it as empty state).
func openRead(cfg *config.Config) (*store.Store, error) {
	if _, err := os.Stat(cfg.Global.Database); errors.Is(err, os.ErrNotExist) {
		return nil, errNoDatabase
	} else if err != nil {
		return nil, exitf(control.ExitUnreachable, "database %s: %w", cfg.Global.Database, err)
	}
	st, err := store.Open(cfg.Global.Database, store.Options{ReadOnly: true})
	if err != nil {
		return nil, &exitError{code: control.ExitUnreachable, err: err}
	}
	return st, nil
}

var errNoDatabase = errors.New("no database yet")

// respond turns a control response into the command's exit.
func respond(resp *control.Response) error {
	if resp.OK {
		return nil
	}
	code := resp.Code
	if code == 0 {
		code = control.ExitUnreachable
	}
	return &exitError{code: code, err: fmt.Errorf("%s", resp.Error)}
}
