package main

import (
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/mailjail/mailjail/internal/control"
	"github.com/mailjail/mailjail/internal/daemon"
)

// listOutput is the --json schema of `list`.
type listOutput struct {
	Bans []control.Ban `json:"bans"`
}

func listCommand() *cli.Command {
	return &cli.Command{
		Name:  "list",
		Usage: "list active bans",
		Description: `Prints every active ban: address or prefix, jail, since, until (or
permanent), strikes and reason. Reads the database directly, so it works
whether the daemon runs or not.

JSON: {"bans": [{"addr", "jail", "since", "until" (null if permanent),
"permanent", "strikes", "reason"}]}

Examples:
   mailjail list
   mailjail list --jail rspamd-ratelimit --json | jq -r '.bans[].addr'`,
		Flags: []cli.Flag{&cli.StringFlag{Name: "jail", Usage: "only bans of `JAIL`"}, jsonFlag},
		Action: func(c *cli.Context) error {
			cfg, err := loadConfig(c)
			if err != nil {
				return err
			}
			out := listOutput{Bans: []control.Ban{}}
			st, err := openRead(cfg)
			if err != nil && !errors.Is(err, errNoDatabase) {
				return err
			}
			if st != nil {
				defer st.Close()
				bans, err := st.ActiveBans()
				if err != nil {
					return &exitError{code: daemon.ExitUnreachable, err: err}
				}
				for _, b := range bans {
					if j := c.String("jail"); j == "" || b.Jail == j {
						out.Bans = append(out.Bans, daemon.BanView(b))
					}
				}
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, out)
			}
			if len(out.Bans) == 0 {
				fmt.Fprintln(c.App.Writer, "no active bans")
				return nil
			}
			tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ADDRESS\tJAIL\tSINCE\tUNTIL\tSTRIKES\tREASON")
			for _, b := range out.Bans {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", b.Addr, b.Jail, fmtTime(b.Since), fmtUntil(b.Until), b.Strikes, b.Reason)
			}
			return tw.Flush()
		},
	}
}
