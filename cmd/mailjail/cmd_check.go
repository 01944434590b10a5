package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

func checkCommand() *cli.Command {
	return &cli.Command{
		Name:  "check",
		Usage: "validate the configuration and its filters",
		Description: `Parses the configuration, compiles every filter and checks every value.
Each problem is printed as FILE:LINE: KEY: PROBLEM and the exit code is 2;
a valid configuration prints a summary and exits 0.

Examples:
   mailjail check
   mailjail check --config /etc/mailjail/mailjail.toml.new && mv ...`,
		Flags: []cli.Flag{&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "configuration `FILE` to check"}},
		Action: func(c *cli.Context) error {
			cfg, err := loadConfig(c)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "%s: ok\n", cfg.Source)
			for _, j := range cfg.Jails {
				state := "enabled"
				if !j.Enabled {
					state = "disabled"
				}
				fmt.Fprintf(c.App.Writer, "jail %s (%s): filter=%s logpath=%v maxretry=%d findtime=%s bantime=%s\n",
					j.Name, state, j.Filter, j.LogPath, j.MaxRetry, j.FindTime, j.BanTime)
			}
			return nil
		},
	}
}
