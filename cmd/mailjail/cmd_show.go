package main

import (
	"errors"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/mailjail/mailjail/internal/control"
	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/rules"
)

// showOutput is the --json schema of `show`.
type showOutput struct {
	Addr   string        `json:"addr"`
	Banned bool          `json:"banned"`
	Active []control.Ban `json:"active"`
	// Covering are the active bans of wider ranges that hold the address
	// (the /64 an IPv6 client was banned with): rspamd rejects it too.
	Covering []control.Ban `json:"covering"`
	History  []control.Ban `json:"history"`
	Strikes  []strikeView  `json:"strikes"`
	Rate     []rateView    `json:"rate_events"`
}

type rateView struct {
	Jail   string    `json:"jail"`
	At     time.Time `json:"at"`
	What   string    `json:"what"`
	Level  float64   `json:"level"`
	Burst  float64   `json:"burst"`
	Rate   string    `json:"rate"`
	Urgent bool      `json:"urgent"`
	Detail string    `json:"detail"`
}

type strikeView struct {
	Jail   string    `json:"jail"`
	At     time.Time `json:"at"`
	Bucket string    `json:"bucket"`
	Line   string    `json:"line"`
}

func showCommand() *cli.Command {
	return &cli.Command{
		Name:      "show",
		Usage:     "show everything known about one address (or rate key)",
		ArgsUsage: "ADDR|CIDR|KEY",
		Description: `Prints the address's active bans, its ban history, its recent strikes
with the log lines that caused them, and the limits a rate jail saw it
exceed. KEY (a SASL user name or sender address) shows a rate jail's
events for it. Exit 1 when nothing is known. Log lines are printed with
their control characters escaped (\x1b, \a, \r); --json has them exact.

JSON: {"addr", "banned", "active": [ban], "history": [ban],
"strikes": [{"jail", "at", "bucket", "line"}], "rate_events": [{"jail",
"at", "what", "level", "burst", "rate", "urgent", "detail"}]}

Examples:
   mailjail show 198.51.100.23
   mailjail show 2001:db8::42 --json
   mailjail show alice@example.com`,
		Flags: []cli.Flag{jsonFlag},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return exitf(control.ExitUsage, "show takes one address")
			}
			key := c.Args().First()
			p, perr := rules.ParsePrefix(key)
			if perr != nil && !strings.Contains(key, "@") {
				return exitf(control.ExitUsage, "%v (a rate key is an address with @)", perr)
			}
			cfg, err := loadConfig(c)
			if err != nil {
				return err
			}
			out := showOutput{Addr: key, Active: []control.Ban{}, Covering: []control.Ban{}, History: []control.Ban{}, Strikes: []strikeView{}, Rate: []rateView{}}
			if perr == nil {
				out.Addr = rules.FormatPrefix(p)
			}
			st, err := openRead(cfg)
			if err != nil && !errors.Is(err, errNoDatabase) {
				return err
			}
			if st != nil {
				defer st.Close()
				if err := showInto(st, p, perr == nil, &out); err != nil {
					return &exitError{code: control.ExitUnreachable, err: err}
				}
			}
			out.Banned = len(out.Active) > 0 || len(out.Covering) > 0
			if c.Bool("json") {
				if err := printJSON(c.App.Writer, out); err != nil {
					return err
				}
			} else {
				printShow(c.App.Writer, out)
			}
			if !out.Banned && len(out.History) == 0 && len(out.Strikes) == 0 && len(out.Rate) == 0 {
				return exitf(control.ExitNotFound, "nothing known about %s", out.Addr)
			}
			return nil
		},
	}
}

// showInto fills out from the database: bans and strikes of an address,
// rate events of the key.
func showInto(st *store.Store, p netip.Prefix, isAddr bool, out *showOutput) error {
	evs, err := st.RateEvents(out.Addr, 20)
	if err != nil {
		return err
	}
	for _, e := range evs {
		out.Rate = append(out.Rate, rateView{Jail: e.Jail, At: e.At.UTC(), What: e.What, Level: e.Level, Burst: e.Burst, Rate: e.Rate, Urgent: e.Urgent, Detail: e.Detail})
	}
	if !isAddr {
		return nil
	}
	hist, err := st.BanHistory(p, 50)
	if err != nil {
		return err
	}
	for _, b := range hist {
		v := control.BanView(b)
		if b.Lifted.IsZero() {
			out.Active = append(out.Active, v)
		} else {
			out.History = append(out.History, v)
		}
	}
	active, err := st.ActiveBans()
	if err != nil {
		return err
	}
	for _, b := range active {
		if b.Prefix != p && b.Prefix.Bits() < p.Bits() && b.Prefix.Contains(p.Addr()) {
			out.Covering = append(out.Covering, control.BanView(b))
		}
	}
	if !p.IsSingleIP() {
		return nil
	}
	strikes, err := st.RecentStrikes(p.Addr(), 20)
	if err != nil {
		return err
	}
	for _, s := range strikes {
		out.Strikes = append(out.Strikes, strikeView{Jail: s.Jail, At: s.At.UTC(), Bucket: s.Bucket, Line: s.Line})
	}
	return nil
}

// printShow writes out as text. Strike lines, rate keys and details come
// from log lines, so every field goes through textf; reasons are quoted.
func printShow(w io.Writer, out showOutput) {
	state := "not banned"
	if out.Banned {
		state = "banned"
	}
	textf(w, "%s: %s\n", out.Addr, state)
	for _, b := range out.Active {
		textf(w, "  active   jail=%s since=%s until=%s strikes=%d reason=%s\n", b.Jail, fmtTime(b.Since), fmtUntil(b.Until), b.Strikes, strconv.Quote(b.Reason))
	}
	for _, b := range out.Covering {
		textf(w, "  covered  by=%s jail=%s since=%s until=%s reason=%s (mailjail unban --covering %s lifts it)\n", b.Addr, b.Jail, fmtTime(b.Since), fmtUntil(b.Until), strconv.Quote(b.Reason), out.Addr)
	}
	for _, b := range out.History {
		textf(w, "  history  jail=%s since=%s until=%s lifted=%s by=%s reason=%s\n", b.Jail, fmtTime(b.Since), fmtUntil(b.Until), fmtTime(*b.Lifted), b.LiftedBy, strconv.Quote(b.Reason))
	}
	for _, s := range out.Strikes {
		textf(w, "  strike   jail=%s at=%s bucket=%s\n           %s\n", s.Jail, fmtTime(s.At), s.Bucket, s.Line)
	}
	for _, r := range out.Rate {
		urgent := ""
		if r.Urgent {
			urgent = " URGENT"
		}
		textf(w, "  rate     jail=%s at=%s %s %.1f over burst %g (rate %s)%s: %s\n", r.Jail, fmtTime(r.At), r.What, r.Level, r.Burst, r.Rate, urgent, r.Detail)
	}
}
