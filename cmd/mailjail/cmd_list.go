package main

import (
	"errors"
	"io"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/mailjail/mailjail/internal/control"
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
whether the daemon runs or not. Exit 0 also when nothing is banned; when
the database does not exist yet, the text says so (JSON: an empty list).

JSON: {"bans": [{"addr", "jail", "since", "until" (null if permanent),
"permanent", "strikes", "reason"}]}

Examples:
   mailjail list
   mailjail list --jail rspamd-ratelimit --json | jq -r '.bans[].addr'`,
		Flags: []cli.Flag{&cli.StringFlag{Name: "jail", Usage: "only bans of `JAIL`"}, jsonFlag},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			cfg, err := loadConfig(c)
			if err != nil {
				return err
			}
			out := listOutput{Bans: []control.Ban{}}
			st, err := openRead(cfg)
			noDB := errors.Is(err, errNoDatabase)
			if err != nil && !noDB {
				return err
			}
			if st != nil {
				defer st.Close()
				bans, err := st.ActiveBans()
				if err != nil {
					return &exitError{code: control.ExitUnreachable, err: err}
				}
				for _, b := range bans {
					if j := c.String("jail"); j == "" || b.Jail == j {
						out.Bans = append(out.Bans, control.BanView(b))
					}
				}
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, out)
			}
			printList(c.App.Writer, out, noDB, cfg.Global.Database)
			return nil
		},
	}
}

// printList writes the bans as a table. An empty list is an answer, not
// an error (exit 0), also before the database exists; that case is said
// so that a wrong --config or database path is noticed.
func printList(w io.Writer, out listOutput, noDB bool, db string) {
	switch {
	case noDB:
		textf(w, "no active bans: no database yet at %s (the daemon's first start or the first ban creates it)\n", db)
		return
	case len(out.Bans) == 0:
		textf(w, "no active bans\n")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	textf(tw, "ADDRESS\tJAIL\tSINCE\tUNTIL\tSTRIKES\tREASON\n")
	for _, b := range out.Bans {
		textf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", b.Addr, b.Jail, fmtTime(b.Since), fmtUntil(b.Until), b.Strikes, b.Reason)
	}
	tw.Flush()
}
