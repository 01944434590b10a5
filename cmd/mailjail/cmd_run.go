package main

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/mailjail/mailjail/internal/control"
	"github.com/mailjail/mailjail/internal/daemon"
)

func runCommand() *cli.Command {
	return &cli.Command{
		Name:  "run",
		Usage: "run the daemon in the foreground (what the systemd unit starts)",
		Description: `Follows every enabled jail's logpath, counts strikes, bans through the
rspamd map and lifts bans when they end. Logs go to stderr (journald
friendly). With Type=notify, systemd learns READY=1 once the map is
written and the logs are followed. SIGHUP rereads the configuration
(see mailjail reload). SIGTERM or SIGINT stop it cleanly;
after a crash or kill -9 the next start resumes from the database.

On the very first start it reads logs from their end (use --from-start to
judge what they already hold). The first time it writes the map, entries
already in it are kept as permanent manual bans.

Examples:
   mailjail run
   mailjail --config /etc/mailjail/mailjail.toml run --from-start`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "from-start", Usage: "on the first start, read existing log content instead of starting at the end"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			cfg, err := loadConfig(c)
			if err != nil {
				return err
			}
			log := newLogger(c.App.ErrWriter, cfg.Global.LogLevel, cfg.Global.LogFormat)
			for _, w := range cfg.Warnings() {
				log.Warn("configuration: " + w.Error())
			}
			ctx, stop := signal.NotifyContext(c.Context, syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			// SIGHUP rereads the configuration (as mailjail reload does).
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			reload := make(chan struct{}, 1)
			go func() {
				for range hup {
					select {
					case reload <- struct{}{}:
					default: // one is already asked for
					}
				}
			}()
			err = daemon.Run(ctx, cfg, log, daemon.Options{Version: versionString(), FromStart: c.Bool("from-start"), Reload: reload})
			if err != nil {
				return &exitError{code: control.ExitUnreachable, err: err}
			}
			return nil
		},
	}
}
