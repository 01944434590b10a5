package main

import (
	"fmt"
	"runtime"

	"github.com/urfave/cli/v2"
)

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version",
		Flags: []cli.Flag{jsonFlag},
		Action: func(c *cli.Context) error {
			if c.Bool("json") {
				return printJSON(c.App.Writer, map[string]string{"version": versionString(), "go": runtime.Version()})
			}
			fmt.Fprintf(c.App.Writer, "mailjail %s (%s)\n", versionString(), runtime.Version())
			return nil
		},
	}
}
