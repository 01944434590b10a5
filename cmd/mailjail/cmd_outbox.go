package main

import (
	"context"
	"errors"
	"io"
	"os"
	"strconv"
	"text/tabwriter"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/control"
	"github.com/mailjail/mailjail/internal/core"
	"github.com/mailjail/mailjail/internal/daemon"
	"github.com/mailjail/mailjail/internal/outbox"
	"github.com/mailjail/mailjail/internal/store"
)

// outboxOutput is the --json schema of `outbox`.
type outboxOutput struct {
	Outbox []control.OutboxItem `json:"outbox"`
}

// outboxChangeOutput is the --json schema of `outbox retry` and `outbox
// drop`.
type outboxChangeOutput struct {
	OK     bool                 `json:"ok"`
	Error  string               `json:"error,omitempty"`
	Outbox []control.OutboxItem `json:"outbox"`
}

// outboxItemSchema is the JSON of one item, for the help texts.
const outboxItemSchema = `{"id", "kind" ("action", "webhook" or "alert"), "state"
("pending", "failed-retrying", "given-up", "done"), "urgent", "event",
"jail", "addr" (address, prefix or account), "attempts", "created", "next_attempt" (null once done or
given up), "last_error", "done" (null), "gave_up" (null)}`

func outboxCommand() *cli.Command {
	return &cli.Command{
		Name:      "outbox",
		Usage:     "list the actions and alerts waiting to be carried out; retry or drop one",
		ArgsUsage: "[retry ID | drop ID]",
		Description: `Lists the outbox: the ban and unban commands (ban_action,
unban_action), the webhook events and the alert mails that bans, unbans,
suspensions and releases queued, each with its id, kind, state, attempts, when it was queued,
when it is next attempted, the last error and what it is about (event,
address or account, jail). States: "pending" (not attempted yet, or an
alert held for the next digest), "failed-retrying" (failed, retried with
backoff), "given-up" (failed for 24 h; kept until retried or
dropped), "done" (delivered; shown with --all). At most the
newest 10,000 items.

Alerts are gathered into digests: the first goes out at once, those that
follow within alert.digest_interval (15m) go together once it has
passed; suspensions and permanent bans wait at most
alert.urgent_interval (1m). A pending alert may therefore wait for its
digest without any error.

Works through the daemon's socket, or directly on the database when no
daemon runs. Exit 0 also when the outbox is empty.

JSON: {"outbox": [` + outboxItemSchema + `]}

Examples:
   mailjail outbox
   mailjail outbox --all --json | jq '.outbox[] | select(.state == "given-up") | .id'
   mailjail outbox retry 42
   mailjail outbox drop 42`,
		Flags:       []cli.Flag{&cli.BoolFlag{Name: "all", Usage: "include the items already delivered"}, jsonFlag},
		Subcommands: []*cli.Command{outboxRetryCommand(), outboxDropCommand()},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return exitf(control.ExitUsage, "outbox takes retry ID or drop ID, not %q", c.Args().First())
			}
			cfg, err := loadConfig(c)
			if err != nil {
				return err
			}
			resp, err := outboxCall(c.Context, cfg, control.OpOutboxList, control.Request{All: c.Bool("all")})
			if err != nil {
				return err
			}
			if !resp.OK {
				return respond(resp)
			}
			out := outboxOutput{Outbox: nonNil(resp.Outbox)}
			if c.Bool("json") {
				return printJSON(c.App.Writer, out)
			}
			printOutbox(c.App.Writer, out.Outbox, c.Bool("all"))
			return nil
		},
	}
}

func outboxRetryCommand() *cli.Command {
	return &cli.Command{
		Name:      "retry",
		Usage:     "make an outbox item due now",
		ArgsUsage: "ID",
		Description: `Makes the item ID (see mailjail outbox) due now: a pending or failed
one is attempted at once instead of after its backoff, a given-up one is
pending again. An alert still goes with the next mail the digest lets go
(alert.digest_interval, alert.urgent_interval). A given-up item is past
its give-up age: if it fails again, it is given up again.
Through the daemon's socket, or, when no daemon runs, directly: then
what is due is attempted before the command returns (up to 30 s).
An unknown or delivered item: exit 1. An ID that is not a number: exit 2.

JSON: {"ok", "error"?, "outbox": [` + outboxItemSchema + `]}, the item
retried.

Examples:
   mailjail outbox retry 42
   mailjail outbox --json | jq -r '.outbox[] | select(.state == "given-up") | .id' | xargs -n1 mailjail outbox retry`,
		Flags: []cli.Flag{jsonFlag},
		Action: func(c *cli.Context) error {
			return outboxChange(c, control.OpOutboxRetry, func(w io.Writer, it control.OutboxItem) {
				textf(w, "item %d (%s) is due now\n", it.ID, outboxWhat(it))
			})
		},
	}
}

func outboxDropCommand() *cli.Command {
	return &cli.Command{
		Name:      "drop",
		Usage:     "delete an outbox item",
		ArgsUsage: "ID",
		Description: `Deletes the item ID (see mailjail outbox), whatever its state: its
command is never run, its alert never sent. An attempt under way at that
moment still finishes. Through the daemon's socket, or directly when no
daemon runs. An unknown item: exit 1. An ID that is not a number: exit 2.

JSON: {"ok", "error"?, "outbox": [` + outboxItemSchema + `]}, the item
dropped.

Examples:
   mailjail outbox drop 42
   mailjail outbox drop 42 --json`,
		Flags: []cli.Flag{jsonFlag},
		Action: func(c *cli.Context) error {
			return outboxChange(c, control.OpOutboxDrop, func(w io.Writer, it control.OutboxItem) {
				textf(w, "dropped item %d (%s)\n", it.ID, outboxWhat(it))
			})
		},
	}
}

// outboxChange runs retry or drop of the one item its argument names.
func outboxChange(c *cli.Context, op string, text func(io.Writer, control.OutboxItem)) error {
	if c.NArg() != 1 {
		return exitf(control.ExitUsage, "outbox %s needs one item id (mailjail outbox lists them)", c.Command.Name)
	}
	id, err := strconv.ParseInt(c.Args().First(), 10, 64)
	if err != nil || id <= 0 {
		return exitf(control.ExitUsage, "outbox %s: %q is not an item id (mailjail outbox lists them)", c.Command.Name, c.Args().First())
	}
	cfg, err := loadConfig(c)
	if err != nil {
		return err
	}
	resp, err := outboxCall(c.Context, cfg, op, control.Request{ID: id})
	if err != nil {
		return err
	}
	if c.Bool("json") {
		if err := printJSON(c.App.Writer, outboxChangeOutput{OK: resp.OK, Error: resp.Error, Outbox: nonNil(resp.Outbox)}); err != nil {
			return err
		}
	} else {
		for _, it := range resp.Outbox {
			text(c.App.Writer, it)
		}
	}
	return respond(resp)
}

// outboxCall asks the daemon, or without one works on the database: a
// list reads it, retry and drop change it under the daemon's lock.
func outboxCall(ctx context.Context, cfg *config.Config, op string, req control.Request) (*control.Response, error) {
	if resp, err := askDaemon(ctx, cfg, op, req); resp != nil || err != nil {
		return resp, err
	}
	log := newLogger(os.Stderr, "warn", config.LogText)
	if op == control.OpOutboxList {
		st, err := openRead(cfg)
		if errors.Is(err, errNoDatabase) {
			return &control.Response{OK: true}, nil
		}
		if err != nil {
			return nil, err
		}
		defer st.Close()
		resp := control.DoOutbox(ctx, outbox.New(st, outbox.Handlers{}, log, outbox.Options{}), op, req)
		return &resp, nil
	}
	clock := core.RealClock{}
	unlock, err := lockState(cfg, clock)
	if err != nil {
		return nil, err
	}
	defer unlock()
	st, err := store.Open(cfg.Global.Database, store.Options{Durable: true})
	if err != nil {
		return nil, &exitError{code: control.ExitUnreachable, err: err}
	}
	defer st.Close()
	ob := daemon.NewOutbox(cfg, st, log, clock)
	resp := control.DoOutbox(ctx, ob, op, req)
	if resp.OK && op == control.OpOutboxRetry {
		drainOutbox(ctx, ob)
	}
	return &resp, nil
}

// outboxWhat says what an item is about: "alert: ban 198.51.100.7 in
// jail rspamd-ratelimit".
func outboxWhat(it control.OutboxItem) string {
	s := it.Kind + ":"
	if it.Event != "" {
		s += " " + it.Event
	}
	if it.Addr != "" {
		s += " " + it.Addr
	}
	if it.Jail != "" {
		s += " in jail " + it.Jail
	}
	if it.Urgent {
		s += " (urgent)"
	}
	return s
}

// maxErrorText bounds the last error in the text table (JSON has it
// whole).
const maxErrorText = 80

func printOutbox(w io.Writer, items []control.OutboxItem, all bool) {
	if len(items) == 0 {
		if all {
			textf(w, "the outbox is empty\n")
		} else {
			textf(w, "nothing pending or given up in the outbox (--all shows what was delivered)\n")
		}
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	textf(tw, "ID\tSTATE\tATTEMPTS\tQUEUED\tNEXT\tWHAT\tLAST ERROR\n")
	for _, it := range items {
		next := "-"
		switch {
		case it.NextAttempt != nil:
			next = fmtTime(*it.NextAttempt)
		case it.Done != nil:
			next = "done " + fmtTime(*it.Done)
		case it.GaveUp != nil:
			next = "gave up " + fmtTime(*it.GaveUp)
		}
		lastErr := it.LastError
		if len(lastErr) > maxErrorText {
			cut := maxErrorText
			for cut > 0 && !utf8.RuneStart(lastErr[cut]) {
				cut--
			}
			lastErr = lastErr[:cut] + "…"
		}
		if lastErr == "" {
			lastErr = "-"
		}
		textf(tw, "%d\t%s\t%d\t%s\t%s\t%s\t%s\n", it.ID, it.State, it.Attempts, fmtTime(it.Created), next, outboxWhat(it), lastErr)
	}
	tw.Flush()
	if len(items) >= outbox.ListLimit {
		textf(w, "(the newest %d items)\n", outbox.ListLimit)
	}
}
