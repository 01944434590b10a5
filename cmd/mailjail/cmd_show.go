package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/mailjail/mailjail/internal/allowlist"
	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/control"
	"github.com/mailjail/mailjail/internal/daemon"
	"github.com/mailjail/mailjail/internal/engine"
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
	// Remaining is how long the address stays banned (by the active or
	// covering ban that ends last); null when it is not banned.
	Remaining *remainingView `json:"remaining"`
	// Next is the ban each jail that could ban the address would give it
	// next, escalated by its earlier bans.
	Next []nextView `json:"next"`
}

type remainingView struct {
	Permanent bool       `json:"permanent"`
	Until     *time.Time `json:"until"` // null: permanent
	Seconds   int64      `json:"seconds"`
}

type nextView struct {
	Jail      string `json:"jail"`
	Offense   int    `json:"offense"`
	Permanent bool   `json:"permanent"`
	// Seconds is the length without the random part (0 when permanent);
	// up to RndTimeSeconds more is added to it (bantime_rndtime).
	Seconds        int64 `json:"seconds"`
	RndTimeSeconds int64 `json:"rndtime_seconds"`
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
the limits a rate jail saw it exceed; for an address, how long it stays
banned and the ban each jail that could ban it would give it next,
escalated by its earlier bans (without the random part of
bantime_rndtime: "+ up to" that much).

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
"urgent", "detail"}], "remaining": {"permanent", "until", "seconds"}
(null: not banned), "next": [{"jail", "offense", "permanent", "seconds",
"rndtime_seconds"}]}
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
			out := showOutput{Addr: rules.FormatPrefix(p), Active: []control.Ban{}, Covering: []control.Ban{}, History: []control.Ban{}, Strikes: []strikeView{}, Rate: []rateView{},
				Next: []nextView{}}
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
			// A log-only jail's would-be ban is listed, but bans nothing.
			enforced := slices.DeleteFunc(slices.Concat(out.Active, out.Covering), func(b control.Ban) bool { return b.LogOnly })
			out.Banned = len(enforced) > 0
			now := time.Now()
			out.Remaining = remaining(enforced, now)
			if p.IsSingleIP() {
				if err := nextInto(c.Context, cfg, st, p.Addr(), now, &out); err != nil {
					return &exitError{code: control.ExitUnreachable, err: err}
				}
			}
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

// remaining is how long the bans keep the address out at now: until the
// one that ends last; nil without a ban.
func remaining(bans []control.Ban, now time.Time) *remainingView {
	var r *remainingView
	for _, b := range bans {
		switch {
		case b.Until == nil:
			return &remainingView{Permanent: true}
		case r == nil || b.Until.After(*r.Until):
			u := b.Until.UTC()
			r = &remainingView{Until: &u, Seconds: max(0, int64(u.Sub(now)/time.Second))}
		}
	}
	return r
}

// nextInto fills out.Next: the next ban of a in each jail, from its
// history in st (nil: no database yet), none in a jail whose ignoreip
// holds it (its files and host names resolved as a ban without the
// daemon resolves them).
func nextInto(ctx context.Context, cfg *config.Config, st *store.Store, a netip.Addr, now time.Time, out *showOutput) error {
	res, err := daemon.ResolveIgnore(ctx, cfg, st, allowlist.Options{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	next, err := engine.NextBans(cfg, st, res, a, now)
	if err != nil {
		return err
	}
	for _, n := range next {
		out.Next = append(out.Next, nextView{Jail: n.Jail, Offense: n.Offense, Permanent: n.Permanent,
			Seconds: int64(n.Duration / time.Second), RndTimeSeconds: int64(n.RndTime / time.Second)})
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
	if r := out.Remaining; r != nil {
		left := "permanent"
		if !r.Permanent {
			left = config.FormatDuration(time.Duration(r.Seconds)*time.Second) + " left, until " + fmtTime(*r.Until)
		}
		textf(w, "  remaining %s\n", left)
	}
	for _, b := range out.Active {
		what := "active"
		if b.LogOnly {
			what = "would-ban"
		}
		textf(w, "  %-8s jail=%s since=%s until=%s strikes=%d reason=%s\n", what, b.Jail, fmtTime(b.Since), fmtUntil(b.Until), b.Strikes, strconv.Quote(b.Reason))
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
	for _, n := range out.Next {
		length := "permanent"
		if !n.Permanent {
			length = config.FormatDuration(time.Duration(n.Seconds) * time.Second)
		}
		if n.RndTimeSeconds > 0 {
			length += " + up to " + config.FormatDuration(time.Duration(n.RndTimeSeconds)*time.Second)
		}
		textf(w, "  next     jail=%s offense=%d length=%s\n", n.Jail, n.Offense, length)
	}
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
