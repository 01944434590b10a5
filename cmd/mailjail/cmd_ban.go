package main

import (
	"io"

	"github.com/urfave/cli/v2"

	"github.com/mailjail/mailjail/internal/control"
)

// changeOutput is the --json schema of `ban` and `unban`.
type changeOutput struct {
	OK    bool          `json:"ok"`
	Error string        `json:"error,omitempty"`
	Bans  []control.Ban `json:"bans"`
}

func banCommand() *cli.Command {
	return &cli.Command{
		Name:      "ban",
		Usage:     "ban addresses or ranges by hand",
		ArgsUsage: "ADDR|CIDR...",
		Description: `Bans each address or CIDR: it is in the rspamd map when the command
returns. Without --for or --permanent the ban lasts the jail's bantime
(1h for the "manual" jail). An address in ignoreip, or a range that
contains one, is refused (exit 2); so is a range wider than
min_prefix_v4 (default /16) or min_prefix_v6 (default /32) unless
--force. Every address is checked first: one invalid address changes
nothing.
Works through the daemon's socket, or directly when no daemon runs.

Examples:
   mailjail ban 198.51.100.23
   mailjail ban 198.51.100.0/24 --permanent --reason "snowshoe range"
   mailjail ban 2001:db8::42 --for 1d --jail rspamd-ratelimit`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "jail", Usage: "record the ban in `JAIL` (default: manual)"},
			&cli.StringFlag{Name: "for", Usage: "ban length, e.g. 30m, 1d, 1w"},
			&cli.BoolFlag{Name: "permanent", Usage: "ban with no end"},
			&cli.StringFlag{Name: "reason", Usage: "why (shown by list and show)"},
			&cli.BoolFlag{Name: "force", Usage: "ban a range wider than min_prefix_v4/min_prefix_v6"},
			jsonFlag,
		},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return exitf(control.ExitUsage, "ban needs at least one address")
			}
			req := control.Request{Addrs: c.Args().Slice(), Jail: c.String("jail"), For: c.String("for"), Permanent: c.Bool("permanent"), Reason: c.String("reason"), Force: c.Bool("force")}
			return doChange(c, control.OpBan, req, banChangeJSON, printBanned)
		},
	}
}

func unbanCommand() *cli.Command {
	return &cli.Command{
		Name:      "unban",
		Usage:     "lift bans and clear strikes",
		ArgsUsage: "ADDR|CIDR... | --all",
		Description: `Lifts the bans of each address (in every jail, or only --jail) and clears
its strikes. The address is out of the rspamd map when the command
returns. An address that is not banned is reported and the exit code is 1;
when a banned range covers it (the /64 an IPv6 client was banned with),
the report names the range, and --covering lifts that range.
Works through the daemon's socket, or directly when no daemon runs.

Examples:
   mailjail unban 198.51.100.23
   mailjail unban --all --jail rspamd-ratelimit
   mailjail unban --covering 2001:db8:77::1`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "all", Usage: "lift every active ban (of --jail, if given)"},
			&cli.StringFlag{Name: "jail", Usage: "only bans of `JAIL`"},
			&cli.BoolFlag{Name: "covering", Usage: "also lift banned ranges that cover an address given"},
			jsonFlag,
		},
		Action: func(c *cli.Context) error {
			if (c.NArg() == 0) == !c.Bool("all") {
				return exitf(control.ExitUsage, "unban needs addresses or --all (not both)")
			}
			req := control.Request{Addrs: c.Args().Slice(), All: c.Bool("all"), Jail: c.String("jail"), Covering: c.Bool("covering")}
			return doChange(c, control.OpUnban, req, banChangeJSON, printUnbanned)
		},
	}
}

// doChange carries out req (a control.ChangeOps request) and prints the
// answer, also when it failed part-way: toJSON gives its --json value,
// text writes it for a terminal.
func doChange(c *cli.Context, op string, req control.Request, toJSON func(*control.Response) any, text func(io.Writer, *control.Response)) error {
	cfg, err := loadConfig(c)
	if err != nil {
		return err
	}
	resp, err := change(c.Context, cfg, op, req)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		if err := printJSON(c.App.Writer, toJSON(resp)); err != nil {
			return err
		}
	} else {
		text(c.App.Writer, resp)
	}
	return respond(resp)
}

func banChangeJSON(resp *control.Response) any {
	return changeOutput{OK: resp.OK, Error: resp.Error, Bans: nonNil(resp.Bans)}
}

func printBanned(w io.Writer, resp *control.Response) {
	for _, b := range resp.Bans {
		textf(w, "banned %s in jail %s until %s\n", b.Addr, b.Jail, fmtUntil(b.Until))
	}
}

func printUnbanned(w io.Writer, resp *control.Response) {
	for _, b := range resp.Bans {
		textf(w, "unbanned %s (jail %s)\n", b.Addr, b.Jail)
	}
}
