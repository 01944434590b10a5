package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/mailjail/mailjail/actions"
	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/control"
	"github.com/mailjail/mailjail/internal/core"
	"github.com/mailjail/mailjail/internal/daemon"
	"github.com/mailjail/mailjail/internal/engine"
	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/mapfile"
)

// change sends a ban/unban request to the running daemon, or, when none
// runs, applies it to the database and map directly under the lock the
// daemon holds while it runs. Either way the map is rewritten before this
// returns.
func change(ctx context.Context, cfg *config.Config, req control.Request) (*control.Response, error) {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := control.Call(cctx, cfg.Global.Socket, req)
	if err == nil {
		return resp, nil
	}
	if !errors.Is(err, control.ErrNoDaemon) {
		return nil, &exitError{code: daemon.ExitUnreachable, err: err}
	}
	lock, err := daemon.WaitLock(cfg.Global.Database, 10*time.Second, core.RealClock{})
	if errors.Is(err, daemon.ErrLocked) {
		return nil, exitf(daemon.ExitUnreachable, "a mailjail daemon holds %s but its socket %s does not answer", daemon.LockPath(cfg.Global.Database), cfg.Global.Socket)
	}
	if err != nil {
		return nil, &exitError{code: daemon.ExitUnreachable, err: err}
	}
	defer lock.Unlock()
	st, err := store.Open(cfg.Global.Database, store.Options{Durable: true})
	if err != nil {
		return nil, &exitError{code: daemon.ExitUnreachable, err: err}
	}
	defer st.Close()
	eng, err := engine.New(cfg, st, newLogger(os.Stderr, "warn"))
	if err != nil {
		return nil, &exitError{code: daemon.ExitUsage, err: err}
	}
	now := time.Now()
	if _, _, err := daemon.Prepare(ctx, eng, cfg.Global.MapFile, now); err != nil {
		return nil, &exitError{code: daemon.ExitUnreachable, err: err}
	}
	r := daemon.Apply(ctx, eng, cfg, req, now)
	if len(r.Bans) > 0 {
		if err := mapfile.Write(cfg.Global.MapFile, eng.Entries(), now); err != nil {
			return nil, exitf(daemon.ExitUnreachable, "state saved but map not written: %w", err)
		}
		runActions(cfg, req.Op, r.Bans)
	}
	return &r, nil
}

// runActions runs the jails' ban/unban commands for a change made without
// a daemon, and waits for them.
func runActions(cfg *config.Config, op string, bans []control.Ban) {
	runner := actions.NewRunner(newLogger(os.Stderr, "warn"), 30*time.Second, len(bans)+1)
	defer runner.Close()
	for _, b := range bans {
		j := cfg.Jail(b.Jail)
		if j == nil {
			continue
		}
		argv := j.UnbanAction
		v := actions.Vars{IP: b.Addr, Jail: b.Jail}
		if op == "ban" {
			argv = j.BanAction
			if b.Until != nil {
				v.BanTime = b.Until.Sub(b.Since)
			}
		}
		runner.Submit(actions.Expand(argv, v))
	}
}

// openRead opens the database for reading. A database that does not
// exist yet is reported as such (callers treat it as empty state).
func openRead(cfg *config.Config) (*store.Store, error) {
	if _, err := os.Stat(cfg.Global.Database); errors.Is(err, os.ErrNotExist) {
		return nil, errNoDatabase
	} else if err != nil {
		return nil, exitf(daemon.ExitUnreachable, "database %s: %w", cfg.Global.Database, err)
	}
	st, err := store.Open(cfg.Global.Database, store.Options{ReadOnly: true})
	if err != nil {
		return nil, &exitError{code: daemon.ExitUnreachable, err: err}
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
		code = daemon.ExitUnreachable
	}
	return &exitError{code: code, err: fmt.Errorf("%s", resp.Error)}
}
