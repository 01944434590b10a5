package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"

	"github.com/urfave/cli/v2"

	"github.com/mailjail/mailjail/internal/allowlist"
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
a valid configuration prints a summary and exits 0. ignoreip files are
read (a bad line is an error naming its file and line) and host names
are looked up: one that does not resolve now is a warning, as the daemon
keeps the addresses it saved from an earlier lookup. It also checks that
the map (and a Postfix table target) can be rewritten keeping its group
and mode (rspamd's and Postfix's access), as the daemon's start does.
The summary lists each enforcement target in use and each jail's targets.

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
			var files [][2]string // key, path
			if cfg.UsesTarget(config.TargetRspamdMap) {
				files = append(files, [2]string{"global.map_file", cfg.Global.MapFile})
			}
			if cfg.UsesTarget(config.TargetPostfix) {
				files = append(files, [2]string{"postfix.table", cfg.Postfix.Table})
			}
			var warnings []string
			for _, w := range cfg.Warnings() {
				warnings = append(warnings, w.Error()+"\n")
			}
			for _, f := range files {
				err := mapfile.CheckWritable(f[1])
				if errors.Is(err, mapfile.ErrGroup) {
					return exitf(control.ExitUsage, "%s: %s: %v", cfg.Source, f[0], err)
				}
				if err != nil {
					warnings = append(warnings, fmt.Sprintf("warning: %s: %v (fine if the daemon runs as another user who can)\n", f[0], err))
				}
			}
			warnings = append(warnings, checkIgnoreNames(c.Context, cfg)...)
			textf(w, "%s: ok\n", cfg.Source)
			for _, warn := range warnings {
				textf(w, "%s", warn)
			}
			for _, kind := range cfg.UsedTargets() {
				textf(w, "target %s: %s\n", kind, cfg.TargetNote(kind))
			}
			for _, j := range cfg.Jails {
				state := "enabled"
				if !j.Enabled {
					state = "disabled"
				}
				textf(w, "jail %s (%s): filter=%s logpath=%v maxretry=%d findtime=%s bantime=%s targets=%v\n",
					j.Name, state, j.Filter, j.LogPath, j.MaxRetry, j.FindTime, j.BanTime, cfg.TargetsOf(j.Name))
			}
			return nil
		},
	}
}

// checkIgnoreNames looks up ignoreip's host names (in the configuration
// and its files) as the daemon would, and warns about each that does not
// resolve: until it does, it protects no address.
func checkIgnoreNames(ctx context.Context, cfg *config.Config) []string {
	st := allowlist.New(cfg, allowlist.Options{Log: slog.New(slog.DiscardHandler)}).Load(ctx, nil)
	var out []string
	for _, host := range slices.Sorted(maps.Keys(st.Names)) {
		if n := st.Names[host]; n.Err != "" {
			out = append(out, fmt.Sprintf("warning: ignoreip: host name %s does not resolve (%s): it ignores no address until it does, unless the daemon saved its addresses from an earlier lookup\n", host, n.Err))
		}
	}
	return out
}
