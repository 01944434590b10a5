package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/urfave/cli/v2"

	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/control"
)

func reloadCommand() *cli.Command {
	return &cli.Command{
		Name:  "reload",
		Usage: "make the running daemon reread its configuration (as SIGHUP does)",
		Description: `The daemon rereads the file it was started with (--config here only
says where its socket is) and checks it first: an
invalid one is refused with every error (file:line) and the running
configuration stays in force. Jails added, removed or changed take effect
between two batches of log lines without losing a strike, a ban, a
suspension or a read position; filters, ignoreip (bans of addresses now
ignored are lifted), allow lists, alerts, actions and webhooks reload too.
A removed jail's bans are kept until they end. Settings that need a
restart (database, socket, socket_group, map files, log_level, the target
sections, the target kinds in use) keep their running value and are
named in a warning.

Exit status: 0 reloaded (warnings included), 2 refused, 3 no daemon.
JSON: {"config", "applied", "added", "removed", "changed", "warnings",
"errors"} (lists always present).

Examples:
   mailjail reload
   systemctl reload mailjail`,
		Flags: []cli.Flag{jsonFlag},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			socket := reloadSocket(c.String("config"))
			ctx, cancel := context.WithTimeout(c.Context, 2*time.Minute)
			defer cancel()
			resp, err := control.Call(ctx, socket, control.OpReload, control.Request{})
			if err != nil {
				return &exitError{code: control.ExitUnreachable, err: err}
			}
			if resp.Reload == nil {
				return respond(resp)
			}
			if c.Bool("json") {
				if err := printJSON(c.App.Writer, resp.Reload); err != nil {
					return err
				}
			} else {
				printReload(c.App.Writer, c.App.ErrWriter, resp.Reload)
			}
			if !resp.OK {
				return &exitError{code: resp.Code, err: fmt.Errorf("%s", resp.Error)}
			}
			return nil
		},
	}
}

// reloadSocket is the socket of the configuration at path, also when that
// configuration is invalid (the daemon must still be asked, so that it
// logs the refusal and says why): as far as the file reads as TOML, else
// the default socket.
func reloadSocket(path string) string {
	if cfg, _ := config.Load(path); cfg != nil {
		return cfg.Global.Socket
	}
	if path == "" {
		path = os.Getenv(config.EnvPath)
	}
	if path == "" {
		path = config.DefaultPath
	}
	var f struct {
		Global struct {
			Socket string `toml:"socket"`
		} `toml:"global"`
	}
	if data, err := os.ReadFile(path); err == nil && toml.Unmarshal(data, &f) == nil && f.Global.Socket != "" {
		return f.Global.Socket
	}
	def, err := config.LoadDefault()
	if err != nil {
		return ""
	}
	return def.Global.Socket
}

func printReload(w, errw io.Writer, r *control.Reload) {
	if !r.Applied {
		fmt.Fprintf(errw, "reload refused; the running configuration stays in force (%s):\n", r.Config)
		for _, e := range r.Errors {
			fmt.Fprintf(errw, "  %s\n", e)
		}
		return
	}
	fmt.Fprintf(w, "reloaded %s\n", r.Config)
	for _, l := range []struct {
		what  string
		names []string
	}{{"jails added", r.Added}, {"jails removed (their bans are kept until they end)", r.Removed}, {"jails changed", r.Changed}} {
		if len(l.names) > 0 {
			fmt.Fprintf(w, "  %s: %s\n", l.what, strings.Join(l.names, ", "))
		}
	}
	if len(r.Added)+len(r.Removed)+len(r.Changed) == 0 {
		fmt.Fprintln(w, "  jails unchanged")
	}
	for _, warn := range r.Warnings {
		fmt.Fprintf(errw, "warning: %s\n", warn)
	}
}
