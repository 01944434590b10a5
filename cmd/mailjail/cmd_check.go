package main

import (
	"errors"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/control"
	"github.com/mailjail/mailjail/mapfile"
)

func checkCommand() *cli.Command {
	return &cli.Command{
		Name:      "check",
		Usage:     "validate the configuration and its filters",
		ArgsUsage: "[FILE]",
		Description: `Parses the configuration, compiles every filter and checks every value.
Each problem is printed as FILE:LINE: KEY: PROBLEM and the exit code is 2;
a valid configuration prints a summary and exits 0. It also checks that
the map can be rewritten keeping its group and mode (rspamd's access),
as the daemon's start does.

The file checked is FILE when given, else the global --config FILE (which
may also follow the command: mailjail check --config FILE), else
$MAILJAIL_CONFIG, else ` + config.DefaultPath + ` if it exists, else the
embedded default. The summary's first line names the file checked.

Examples:
   mailjail check
   mailjail check /etc/mailjail/mailjail.toml.new && mv ...
   mailjail -c /etc/mailjail/mailjail.toml.new check`,
		Action: func(c *cli.Context) error {
			if c.NArg() > 1 {
				return exitf(control.ExitUsage, "check takes at most one FILE, got %d arguments", c.NArg())
			}
			path := c.String("config")
			if file := c.Args().First(); file != "" {
				// A --config that names another file would be ignored
				// silently (the defect this replaced); $MAILJAIL_CONFIG is
				// only a default and yields.
				if c.IsSet("config") && path != os.Getenv(config.EnvPath) && path != file {
					return exitf(control.ExitUsage, "check: two files given, --config %s and %s", path, file)
				}
				path = file
			}
			cfg, err := config.Load(path)
			if err != nil {
				return &exitError{code: control.ExitUsage, err: err}
			}
			// A map whose group a rewrite could not keep would lose
			// rspamd's access at the first ban.
			// Run as another user than the daemon's, check cannot know
			// whether the daemon may write there: it says so.
			w := c.App.Writer
			mapErr := mapfile.CheckWritable(cfg.Global.MapFile)
			if errors.Is(mapErr, mapfile.ErrGroup) {
				return exitf(control.ExitUsage, "%s: global.map_file: %v", cfg.Source, mapErr)
			}
			textf(w, "%s: ok\n", cfg.Source)
			if mapErr != nil {
				textf(w, "warning: global.map_file: %v (fine if the daemon runs as another user who can)\n", mapErr)
			}
			for _, j := range cfg.Jails {
				state := "enabled"
				if !j.Enabled {
					state = "disabled"
				}
				textf(w, "jail %s (%s): filter=%s logpath=%v maxretry=%d findtime=%s bantime=%s\n",
					j.Name, state, j.Filter, j.LogPath, j.MaxRetry, j.FindTime, j.BanTime)
			}
			return nil
		},
	}
}
