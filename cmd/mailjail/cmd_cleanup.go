package main

import (
	"context"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/mailjail/mailjail/internal/control"
	"github.com/mailjail/mailjail/internal/daemon"
	"github.com/mailjail/mailjail/internal/enforce"
)

// cleanupCommand empties every target the configuration uses, with the
// daemon stopped: the package's purge runs it, so that no ban outlives
// mailjail (the map files, the Postfix table, the nftables set and this
// host's Redis fields all keep their bans while the service is merely
// stopped). It syncs each target to an empty state through the same
// target code the daemon uses, so each removes only what it owns: the
// rspamd-redis target deletes only this host's fields of a shared hash.
func cleanupCommand() *cli.Command {
	return &cli.Command{
		Name:  "cleanup",
		Usage: "empty every enforcement target (stop the daemon first; the package's purge runs it)",
		Description: `Lifts every ban and suspension from the targets without touching the
database: the map files are rewritten empty, the Postfix table emptied,
the nftables set flushed, this host's fields removed from the Redis
hashes. A running daemon would put them back at its next sync.`,
		Action: func(c *cli.Context) error {
			cfg, err := loadConfig(c)
			if err != nil {
				return err
			}
			targets, err := daemon.Targets(cfg)
			if err != nil {
				return exitf(control.ExitUsage, "cleanup: %w", err)
			}
			ctx, cancel := context.WithTimeout(c.Context, 30*time.Second)
			defer cancel()
			failed := 0
			for _, t := range targets {
				if err := t.Sync(ctx, enforce.State{At: time.Now()}); err != nil {
					fmt.Fprintf(c.App.ErrWriter, "mailjail: cleanup %s: %s\n", t.Name(), safeLines(err.Error()))
					failed++
					continue
				}
				fmt.Fprintf(c.App.Writer, "emptied %s\n", t.Name())
			}
			if failed > 0 {
				return exitf(control.ExitUnreachable, "cleanup: %d of %d targets not emptied", failed, len(targets))
			}
			return nil
		},
	}
}
