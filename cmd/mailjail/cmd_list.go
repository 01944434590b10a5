package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/control"
	"github.com/mailjail/mailjail/internal/store"
)

// listOutput is the --json schema of `list`.
type listOutput struct {
	Bans []control.Ban `json:"bans"`
}

// listAccountsOutput is the --json schema of `list --accounts`.
type listAccountsOutput struct {
	Suspensions []control.Suspension `json:"suspensions"`
}

func listCommand() *cli.Command {
	return &cli.Command{
		Name:  "list",
		Usage: "list active bans (or, with --accounts, suspensions; with --would-ban, a log-only jail's would-be bans)",
		Description: `Prints every active ban: address or prefix, jail, since, until (or
permanent), strikes and reason. Reads the database directly, so it works
whether the daemon runs or not. Exit 0 also when nothing is banned; when
the database does not exist yet, the text says so (JSON: an empty list).

With --would-ban it prints instead what jails with mode = "log-only"
would have banned: their active would-be bans, which no target holds
(the plain list leaves them out).

With --accounts it prints the active suspensions of accounts instead:
account, jail, since, until (or until released), whether the account
map holds it ("no" for a jail with suspend = false, which only records
it), strikes, reason and the client addresses its strikes came from.

JSON: {"bans": [{"addr", "jail", "since", "until" (null if permanent),
"permanent", "strikes", "reason", "log_only"}]} (with --would-ban the
same, every "log_only" true); with --accounts {"suspensions":
[{"account", "jail", "since", "until" (null: until released),
"permanent", "enforced", "strikes", "reason", "sources": [{"addr",
"count"}]}]}

Examples:
   mailjail list
   mailjail list --jail rspamd-ratelimit --json | jq -r '.bans[].addr'
   mailjail list --accounts
   mailjail list --would-ban --jail rspamd-ratelimit-try`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "jail", Usage: "only bans (suspensions) of `JAIL`"},
			&cli.BoolFlag{Name: "accounts", Usage: "list suspended accounts instead of banned addresses"},
			&cli.BoolFlag{Name: "would-ban", Usage: "list the would-be bans of log-only jails instead"},
			jsonFlag,
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			cfg, err := loadConfig(c)
			if err != nil {
				return err
			}
			if c.Bool("accounts") {
				if c.Bool("would-ban") {
					return exitf(control.ExitUsage, "--accounts and --would-ban list different things: give one")
				}
				return listAccounts(c, cfg)
			}
			// A would-be ban is in one list or the other, never both.
			wouldBan := c.Bool("would-ban")
			bans, noDB, err := listActive(c, cfg, (*store.Store).ActiveBans, func(b store.Ban) string { return b.Jail }, control.BanView)
			if err != nil {
				return err
			}
			out := listOutput{Bans: slices.DeleteFunc(bans, func(b control.Ban) bool { return b.LogOnly != wouldBan })}
			if c.Bool("json") {
				return printJSON(c.App.Writer, out)
			}
			what := "active bans"
			if wouldBan {
				what = "would-be bans"
			}
			printList(c.App.Writer, out, noDB, cfg.Global.Database, what)
			return nil
		},
	}
}

// listActive reads active rows (bans, suspensions) with read, keeps those
// of --jail and converts them with view. noDB: there is no database yet,
// which is no error (nothing is active).
func listActive[T, V any](c *cli.Context, cfg *config.Config, read func(*store.Store) ([]T, error), jailOf func(T) string, view func(T) V) (out []V, noDB bool, err error) {
	out = []V{}
	st, err := openRead(cfg)
	if errors.Is(err, errNoDatabase) {
		return out, true, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer st.Close()
	rows, err := read(st)
	if err != nil {
		return nil, false, &exitError{code: control.ExitUnreachable, err: err}
	}
	for _, r := range rows {
		if j := c.String("jail"); j == "" || jailOf(r) == j {
			out = append(out, view(r))
		}
	}
	return out, false, nil
}

// listAccounts is `list --accounts`.
func listAccounts(c *cli.Context, cfg *config.Config) error {
	ss, noDB, err := listActive(c, cfg, (*store.Store).ActiveSuspensions, func(s store.Suspension) string { return s.Jail }, control.SuspensionView)
	if err != nil {
		return err
	}
	out := listAccountsOutput{Suspensions: ss}
	if c.Bool("json") {
		return printJSON(c.App.Writer, out)
	}
	w := c.App.Writer
	switch {
	case noDB:
		textf(w, "no suspended accounts: no database yet at %s (the daemon's first start or the first change creates it)\n", cfg.Global.Database)
		return nil
	case len(out.Suspensions) == 0:
		textf(w, "no suspended accounts\n")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	textf(tw, "ACCOUNT\tJAIL\tSINCE\tUNTIL\tENFORCED\tSTRIKES\tREASON\tSOURCES\n")
	for _, s := range out.Suspensions {
		enforced := "yes"
		if !s.Enforced {
			enforced = "no"
		}
		textf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", s.Account, s.Jail, fmtTime(s.Since), fmtSuspendedUntil(s.Until), enforced, s.Strikes, s.Reason, fmtSources(s.Sources))
	}
	tw.Flush()
	return nil
}

// fmtSources writes an account's sources as "ADDR (N), ADDR (N)", or "-".
func fmtSources(srcs []control.Source) string {
	if len(srcs) == 0 {
		return "-"
	}
	parts := make([]string, len(srcs))
	for i, s := range srcs {
		parts[i] = fmt.Sprintf("%s (%d)", s.Addr, s.Count)
	}
	return strings.Join(parts, ", ")
}

// printList writes the bans as a table. An empty list is an answer, not
// an error (exit 0), also before the database exists; that case is said
// so that a wrong --config or database path is noticed.
func printList(w io.Writer, out listOutput, noDB bool, db, what string) {
	switch {
	case noDB:
		textf(w, "no %s: no database yet at %s (the daemon's first start or the first ban creates it)\n", what, db)
		return
	case len(out.Bans) == 0:
		textf(w, "no %s\n", what)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	textf(tw, "ADDRESS\tJAIL\tSINCE\tUNTIL\tSTRIKES\tREASON\n")
	for _, b := range out.Bans {
		textf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", b.Addr, b.Jail, fmtTime(b.Since), fmtUntil(b.Until), b.Strikes, b.Reason)
	}
	tw.Flush()
}
