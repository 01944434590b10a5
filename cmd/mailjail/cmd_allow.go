package main

import (
	"cmp"
	"errors"
	"io"
	"slices"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/control"
	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/rules"
)

// allowOutput is the --json schema of `allow list`.
type allowOutput struct {
	Allow []control.AllowEntry `json:"allow"`
}

// allowChangeOutput is the --json schema of `allow add` and `allow del`.
type allowChangeOutput struct {
	OK    bool                 `json:"ok"`
	Error string               `json:"error,omitempty"`
	Allow []control.AllowEntry `json:"allow"`
}

func allowCommand() *cli.Command {
	return &cli.Command{
		Name:      "allow",
		Usage:     "the rate allow list: senders and domains never rate limited nor suspended",
		ArgsUsage: "add|del|list",
		Description: `An allowed login or (authenticated) sender, or any of an allowed
domain, is never rate limited nor suspended by any jail. The list is
global.allow_senders of the configuration plus the entries kept in the
database, which these commands change; the daemon follows at once.
The allow list is about accounts; ignoreip is about client addresses.

Examples:
   mailjail allow add ceo@example.org --reason "sends the newsletter"
   mailjail allow add example.net
   mailjail allow del ceo@example.org
   mailjail allow list --json`,
		Subcommands: []*cli.Command{allowAddCommand(), allowDelCommand(), allowListCommand()},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return exitf(control.ExitUsage, "allow needs add, del or list")
			}
			return exitf(control.ExitUsage, "allow takes add, del or list, not %q", c.Args().First())
		},
	}
}

func allowAddCommand() *cli.Command {
	return &cli.Command{
		Name:      "add",
		Usage:     "put senders or domains on the database's allow list",
		ArgsUsage: "SENDER|DOMAIN...",
		Description: `Adds each entry: a sender (user@domain, its domain in lower case) or a
domain ("example.org" or "@example.org"). Every entry is checked first:
one invalid entry changes nothing (exit 2). An entry already on the
list is reported and the exit code is 1; the others are added.
Works through the daemon's socket, or directly when no daemon runs.

JSON: {"ok", "error"?, "allow": [{"entry", "origin", "added", "reason"}]},
the entries added.

Examples:
   mailjail allow add ceo@example.org --reason "sends the newsletter"
   mailjail allow add @example.net partner.example`,
		Flags: []cli.Flag{&cli.StringFlag{Name: "reason", Usage: "why (shown by allow list)"}, jsonFlag},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return exitf(control.ExitUsage, "allow add needs at least one sender or domain")
			}
			req := control.Request{Entries: c.Args().Slice(), Reason: c.String("reason")}
			return doChange(c, control.OpAllowAdd, req, allowChangeJSON, func(w io.Writer, resp *control.Response) {
				for _, a := range resp.Allow {
					textf(w, "allowed %s\n", a.Entry)
				}
			})
		},
	}
}

func allowDelCommand() *cli.Command {
	return &cli.Command{
		Name:      "del",
		Usage:     "take senders or domains off the database's allow list",
		ArgsUsage: "SENDER|DOMAIN...",
		Description: `Removes each entry from the database's allow list. An entry that is not
there is reported and the exit code is 1 (one in global.allow_senders
is named as such: only the configuration can drop it); the others are
removed.
Works through the daemon's socket, or directly when no daemon runs.

JSON: {"ok", "error"?, "allow": [{"entry", "origin", "added", "reason"}]},
the entries removed ("added" null, "reason" "").

Examples:
   mailjail allow del ceo@example.org
   mailjail allow del example.net --json`,
		Flags: []cli.Flag{jsonFlag},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return exitf(control.ExitUsage, "allow del needs at least one sender or domain")
			}
			return doChange(c, control.OpAllowDel, control.Request{Entries: c.Args().Slice()}, allowChangeJSON, func(w io.Writer, resp *control.Response) {
				for _, a := range resp.Allow {
					textf(w, "removed %s from the allow list\n", a.Entry)
				}
			})
		},
	}
}

func allowListCommand() *cli.Command {
	return &cli.Command{
		Name:  "list",
		Usage: "print the allow list, configured and database entries",
		Description: `Prints every entry with its origin: "config" (global.allow_senders,
changed by editing the configuration) or "database" (allow add, with
when and why). Reads the database directly, so it works whether the
daemon runs or not. Exit 0 also when the list is empty.

JSON: {"allow": [{"entry", "origin" ("config" or "database"), "added"
(null for config), "reason"}]}, sorted by entry

Examples:
   mailjail allow list
   mailjail allow list --json | jq -r '.allow[] | select(.origin == "database") | .entry'`,
		Flags: []cli.Flag{jsonFlag},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			cfg, err := loadConfig(c)
			if err != nil {
				return err
			}
			var db []store.Allowed
			st, err := openRead(cfg)
			if err != nil && !errors.Is(err, errNoDatabase) {
				return err
			}
			if st != nil {
				defer st.Close()
				if db, err = st.AllowList(); err != nil {
					return &exitError{code: control.ExitUnreachable, err: err}
				}
			}
			out := allowOutput{Allow: allowEntries(cfg, db)}
			if c.Bool("json") {
				return printJSON(c.App.Writer, out)
			}
			printAllow(c.App.Writer, out)
			return nil
		},
	}
}

// allowEntries is the whole allow list: configured entries, as the
// engine reads them, and the database's, sorted by entry.
func allowEntries(cfg *config.Config, db []store.Allowed) []control.AllowEntry {
	out := control.AllowViews(db)
	for _, s := range cfg.Global.AllowSenders {
		if n, err := rules.NormalizeAllowEntry(s); err == nil {
			s = n
		}
		out = append(out, control.AllowEntry{Entry: s, Origin: control.OriginConfig})
	}
	slices.SortFunc(out, func(a, b control.AllowEntry) int {
		return cmp.Or(cmp.Compare(a.Entry, b.Entry), cmp.Compare(a.Origin, b.Origin))
	})
	return out
}

func printAllow(w io.Writer, out allowOutput) {
	if len(out.Allow) == 0 {
		textf(w, "the allow list is empty\n")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	textf(tw, "ENTRY\tORIGIN\tADDED\tREASON\n")
	for _, a := range out.Allow {
		added := "-"
		if a.Added != nil {
			added = fmtTime(*a.Added)
		}
		textf(tw, "%s\t%s\t%s\t%s\n", a.Entry, a.Origin, added, a.Reason)
	}
	tw.Flush()
}

func allowChangeJSON(resp *control.Response) any {
	return allowChangeOutput{OK: resp.OK, Error: resp.Error, Allow: nonNil(resp.Allow)}
}
