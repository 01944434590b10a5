package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/mailjail/mailjail/internal/control"
	"github.com/mailjail/mailjail/internal/daemon"
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show the daemon's state per jail",
		Description: `Per jail: files followed and their read positions, addresses holding
strikes, active bans, bans in total; the daemon's uptime and version.
Without a running daemon it prints what the database holds and
"running": false.

JSON: {"running", "version", "pid", "started", "uptime_seconds", "database",
"map_file", "map_entries", "map_writes", "lines_read", "matches",
"jails": [{"name", "filter", "logpath", "files": [{"path", "offset",
"size", "open"}], "strikes_tracked", "strikes_stored", "active_bans",
"total_bans"}]}

Examples:
   mailjail status
   mailjail status --json | jq '.jails[] | {name, active_bans}'`,
		Flags: []cli.Flag{jsonFlag},
		Action: func(c *cli.Context) error {
			cfg, err := loadConfig(c)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(c.Context, 10*time.Second)
			defer cancel()
			var s *control.Status
			resp, err := control.Call(ctx, cfg.Global.Socket, control.OpStatus, control.Request{})
			switch {
			case err == nil && resp.Status != nil:
				s = resp.Status
			case err == nil:
				return respond(resp)
			case errors.Is(err, control.ErrNoDaemon):
				st, err := openRead(cfg)
				if errors.Is(err, errNoDatabase) {
					s = &control.Status{Database: cfg.Global.Database, MapFile: cfg.Global.MapFile}
					break
				}
				if err != nil {
					return err
				}
				defer st.Close()
				if s, err = daemon.BuildStatus(cfg, st, nil); err != nil {
					return &exitError{code: daemon.ExitUnreachable, err: err}
				}
			default:
				return &exitError{code: daemon.ExitUnreachable, err: err}
			}
			s.Version = versionString()
			if s.Jails == nil {
				s.Jails = []control.JailStatus{}
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, s)
			}
			printStatus(c, s)
			return nil
		},
	}
}

func printStatus(c *cli.Context, s *control.Status) {
	w := c.App.Writer
	if s.Running {
		fmt.Fprintf(w, "mailjail %s: running, pid %d, up %s\n", s.Version, s.PID, (time.Duration(s.UptimeSec) * time.Second).String())
		fmt.Fprintf(w, "lines read: %d, matches: %d, ignored: %d, without timestamp: %d\n", s.Lines, s.Matches, s.Ignored, s.NoTime)
	} else {
		fmt.Fprintf(w, "mailjail %s: daemon not running\n", s.Version)
	}
	fmt.Fprintf(w, "database: %s\nmap: %s (%d entries", s.Database, s.MapFile, s.MapEntries)
	if s.Running {
		fmt.Fprintf(w, ", %d writes", s.MapWrites)
	}
	fmt.Fprintln(w, ")")
	if s.MapError != "" {
		fmt.Fprintf(w, "map error: %s\n", s.MapError)
	}
	for _, j := range s.Jails {
		fmt.Fprintf(w, "jail %s (filter %s): %d active bans, %d bans total, %d addresses with strikes, %d strikes stored\n",
			j.Name, j.Filter, j.ActiveBans, j.TotalBans, j.StrikesTracked, j.StrikesStored)
		for _, f := range j.Files {
			fmt.Fprintf(w, "  %s at %d of %d bytes\n", f.Path, f.Offset, f.Size)
		}
	}
}
