package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/mailjail/mailjail/internal/control"
	"github.com/mailjail/mailjail/internal/manpage"
)

// manCommand prints the man pages, generated from this binary's own
// commands and configuration reference; the package build (make deb)
// writes them with it, so they always describe the binary they ship with.
func manCommand() *cli.Command {
	return &cli.Command{
		Name:      "man",
		Usage:     "print the man page mailjail(1) or mailjail.toml(5) in roff",
		ArgsUsage: "1|5",
		Hidden:    true,
		Action: func(c *cli.Context) error {
			switch c.Args().First() {
			case "1", "mailjail":
				s, err := manpage.Command(c.App)
				if err != nil {
					return err
				}
				fmt.Fprint(c.App.Writer, s)
			case "5", "mailjail.toml":
				fmt.Fprint(c.App.Writer, manpage.Config())
			default:
				return exitf(control.ExitUsage, "man takes 1 (mailjail) or 5 (mailjail.toml)")
			}
			return nil
		},
	}
}
