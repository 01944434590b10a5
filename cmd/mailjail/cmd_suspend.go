package main

import (
	"io"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/mailjail/mailjail/internal/control"
)

// suspensionOutput is the --json schema of `suspend` and `release`.
type suspensionOutput struct {
	OK          bool                 `json:"ok"`
	Error       string               `json:"error,omitempty"`
	Suspensions []control.Suspension `json:"suspensions"`
}

func suspendCommand() *cli.Command {
	return &cli.Command{
		Name:      "suspend",
		Usage:     "suspend accounts (SASL logins) by hand",
		ArgsUsage: "ACCOUNT...",
		Description: `Suspends each account: it is in the account map (global.account_map_file,
read by an rspamd multimap rule of type "user") when the command
returns, so its next message is rejected while other logins from the
same address pass. Without --for or --permanent the suspension lasts
24h. Accounts are normalised as the jails write them (surrounding <>
dropped, the domain in lower case); one that cannot be (whitespace,
control characters, , " # < > \ ', more than 256 bytes) is refused
(exit 2) and nothing changes. The suspension is recorded in the
"manual" jail; suspending a suspended account replaces its manual
suspension.
Works through the daemon's socket, or directly when no daemon runs.

JSON: {"ok", "error"?, "suspensions": [suspension]} with suspension =
{"account", "jail", "since", "until" (null: until released),
"permanent", "enforced", "strikes", "reason", "sources": [{"addr",
"count"}]}

Examples:
   mailjail suspend mallory@example.org
   mailjail suspend mallory@example.org --for 7d --reason "phished password"
   mailjail suspend '<Bot@Example.ORG>' --permanent`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "for", Usage: "suspension length, e.g. 30m, 1d, 1w (default 24h)"},
			&cli.BoolFlag{Name: "permanent", Usage: "suspend until released"},
			&cli.StringFlag{Name: "reason", Usage: "why (shown by list --accounts and show)"},
			jsonFlag,
		},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return exitf(control.ExitUsage, "suspend needs at least one account")
			}
			req := control.Request{Accounts: c.Args().Slice(), For: c.String("for"), Permanent: c.Bool("permanent"), Reason: c.String("reason")}
			return doChange(c, control.OpSuspend, req, suspensionJSON, func(w io.Writer, resp *control.Response) {
				for _, s := range resp.Suspensions {
					textf(w, "suspended %s in jail %s until %s\n", s.Account, s.Jail, fmtSuspendedUntil(s.Until))
				}
			})
		},
	}
}

func releaseCommand() *cli.Command {
	return &cli.Command{
		Name:      "release",
		Usage:     "lift the suspensions of accounts and clear their strikes",
		ArgsUsage: "ACCOUNT...",
		Description: `Lifts every suspension of each account (manual ones and those of every
account jail) and clears its strikes, so it starts from zero. It is
out of the account map when the command returns. An account that is
not suspended is reported and the exit code is 1; the others are
released all the same. The addresses banned as its sources stay banned:
unban them (mailjail show ACCOUNT lists them).
Works through the daemon's socket, or directly when no daemon runs.

JSON: {"ok", "error"?, "suspensions": [suspension]}, the suspensions
lifted, each with "lifted" and "lifted_by".

Examples:
   mailjail release mallory@example.org
   mailjail release alice@example.org bob@example.org --json`,
		Flags: []cli.Flag{jsonFlag},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return exitf(control.ExitUsage, "release needs at least one account")
			}
			return doChange(c, control.OpRelease, control.Request{Accounts: c.Args().Slice()}, suspensionJSON, func(w io.Writer, resp *control.Response) {
				for _, s := range resp.Suspensions {
					textf(w, "released %s (jail %s)\n", s.Account, s.Jail)
				}
			})
		},
	}
}

func suspensionJSON(resp *control.Response) any {
	return suspensionOutput{OK: resp.OK, Error: resp.Error, Suspensions: nonNil(resp.Suspensions)}
}

// fmtSuspendedUntil is a suspension's end for text output: "until
// released" reads better than "until permanent".
func fmtSuspendedUntil(u *time.Time) string {
	if u == nil {
		return "released"
	}
	return fmtTime(*u)
}
