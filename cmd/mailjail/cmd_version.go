package main

import (
	"runtime"

	"github.com/urfave/cli/v2"
)

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version",
		Flags: []cli.Flag{jsonFlag},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, map[string]string{"version": versionString(), "go": runtime.Version()})
			}
			textf(c.App.Writer, "mailjail %s (%s)\n", versionString(), runtime.Version())
			return nil
		},
	}
}
