package main

import (
	"errors"
	"io"
	"net/netip"
	"strconv"
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
		Usage:     "show everything known about one address or account",
		ArgsUsage: "ADDR|CIDR|ACCOUNT",
		Description: `Prints the address's active bans, the banned ranges that cover it, its
ban history, its recent strikes with the log lines that caused them, and
the limits a rate jail saw it exceed.

Anything that is not an address or CIDR is an account (a SASL login, or
a sender a rate jail counts), normalised as the jails write it: its
active and past suspensions (with "mailjail release ACCOUNT" while it
is suspended), its recent strikes with the client and the log line of
each, the client addresses they came from, the limits a rate jail saw
it exceed, when mailjail first saw it and whether the allow list holds
it.

Exit 1 when nothing is known. Log lines are printed with their control
characters escaped (\x1b, \a, \r); --json has them exact.

JSON for an address: {"addr", "banned", "active": [ban], "covering":
[ban], "history": [ban], "strikes": [{"jail", "at", "bucket", "line"}],
"rate_events": [{"jail", "at", "what", "level", "burst", "rate",
"urgent", "detail"}]}
JSON for an account: {"account", "suspended", "active": [suspension],
"history": [suspension], "strikes": [{"jail", "at", "client", "bucket",
"line"}], "sources": [{"addr", "count"}], "rate_events": [...],
"first_seen" (null: never seen), "allowed", "release" ("" when not
suspended)}

Examples:
   mailjail show 198.51.100.23
   mailjail show 2001:db8::42 --json
   mailjail show alice@example.com`,
		Flags: []cli.Flag{jsonFlag},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return exitf(control.ExitUsage, "show takes one address or account")
			}
			key := c.Args().First()
			p, perr := rules.ParsePrefix(key)
			if perr != nil {
				return showAccount(c, key, perr)
			}
			cfg, err := loadConfig(c)
			if err != nil {
				return err
			}
			out := showOutput{Addr: rules.FormatPrefix(p), Active: []control.Ban{}, Covering: []control.Ban{}, History: []control.Ban{}, Strikes: []strikeView{}, Rate: []rateView{}}
			st, err := openRead(cfg)
			if err != nil && !errors.Is(err, errNoDatabase) {
				return err
			}
			if st != nil {
				defer st.Close()
				if err := showInto(st, p, &out); err != nil {
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
// rate events of it as a rate key.
func showInto(st *store.Store, p netip.Prefix, out *showOutput) error {
	var err error
	if out.Rate, err = rateViews(st, out.Addr); err != nil {
		return err
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

// rateViews are the newest rate events of key.
func rateViews(st *store.Store, key string) ([]rateView, error) {
	evs, err := st.RateEvents(key, 20)
	if err != nil {
		return nil, err
	}
	out := []rateView{}
	for _, e := range evs {
		out = append(out, rateView{Jail: e.Jail, At: e.At.UTC(), What: e.What, Level: e.Level, Burst: e.Burst, Rate: e.Rate, Urgent: e.Urgent, Detail: e.Detail})
	}
	return out, nil
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
		textf(w, "  strike   jail=%s at=%s bucket=%s\n", s.Jail, fmtTime(s.At), s.Bucket)
		if s.Line != "" { // cleared beyond dbmaxmatches
			textf(w, "           %s\n", s.Line)
		}
	}
	printRate(w, out.Rate)
}

func printRate(w io.Writer, rate []rateView) {
	for _, r := range rate {
		urgent := ""
		if r.Urgent {
			urgent = " URGENT"
		}
		textf(w, "  rate     jail=%s at=%s %s %.1f over burst %g (rate %s)%s: %s\n", r.Jail, fmtTime(r.At), r.What, r.Level, r.Burst, r.Rate, urgent, r.Detail)
	}
}
