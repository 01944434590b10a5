package main

import (
	"errors"
	"io"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/control"
	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/notify"
	"github.com/mailjail/mailjail/rules"
)

// showAccountOutput is the --json schema of `show ACCOUNT`.
type showAccountOutput struct {
	Account   string               `json:"account"`
	Suspended bool                 `json:"suspended"`
	Active    []control.Suspension `json:"active"`
	History   []control.Suspension `json:"history"`
	Strikes   []accountStrikeView  `json:"strikes"`
	// Sources count the strikes still stored per client address.
	Sources   []control.Source `json:"sources"`
	Rate      []rateView       `json:"rate_events"`
	FirstSeen *time.Time       `json:"first_seen"` // null: never seen in a log
	Allowed   bool             `json:"allowed"`
	// Release is the command that lifts the suspension, "" when there is
	// none.
	Release string `json:"release"`
}

type accountStrikeView struct {
	Jail   string    `json:"jail"`
	At     time.Time `json:"at"`
	Client string    `json:"client"` // "" when the log line named none
	Bucket string    `json:"bucket"`
	Line   string    `json:"line"`
}

// showAccount is `show` of what is not an address: an account. notAddr
// says why key is no address, for a key that is no account either.
func showAccount(c *cli.Context, key string, notAddr error) error {
	account, err := rules.NormalizeAccount(key)
	if err != nil {
		return exitf(control.ExitUsage, "%q is neither an address (%v) nor an account (%v)", key, notAddr, err)
	}
	cfg, err := loadConfig(c)
	if err != nil {
		return err
	}
	out := showAccountOutput{Account: account, Active: []control.Suspension{}, History: []control.Suspension{},
		Strikes: []accountStrikeView{}, Sources: []control.Source{}, Rate: []rateView{}}
	st, err := openRead(cfg)
	if err != nil && !errors.Is(err, errNoDatabase) {
		return err
	}
	var db []store.Allowed
	if st != nil {
		defer st.Close()
		if db, err = showAccountInto(st, &out); err != nil {
			return &exitError{code: control.ExitUnreachable, err: err}
		}
	}
	if out.Allowed, err = allowed(cfg, db, account); err != nil {
		return &exitError{code: control.ExitUsage, err: err}
	}
	out.Suspended = len(out.Active) > 0
	if out.Suspended {
		out.Release = notify.ReleaseCommand(account)
	}
	if c.Bool("json") {
		if err := printJSON(c.App.Writer, out); err != nil {
			return err
		}
	} else {
		printShowAccount(c.App.Writer, out)
	}
	if !out.Suspended && len(out.History) == 0 && len(out.Strikes) == 0 && len(out.Rate) == 0 && out.FirstSeen == nil && !out.Allowed {
		return exitf(control.ExitNotFound, "nothing known about %s", account)
	}
	return nil
}

// showAccountInto fills out from the database and returns the
// database's allow list.
func showAccountInto(st *store.Store, out *showAccountOutput) ([]store.Allowed, error) {
	hist, err := st.SuspensionHistory(out.Account, 50)
	if err != nil {
		return nil, err
	}
	for _, s := range hist {
		v := control.SuspensionView(s)
		if s.Lifted.IsZero() {
			out.Active = append(out.Active, v)
		} else {
			out.History = append(out.History, v)
		}
	}
	strikes, err := st.RecentAccountStrikes(out.Account, 20)
	if err != nil {
		return nil, err
	}
	for _, s := range strikes {
		v := accountStrikeView{Jail: s.Jail, At: s.At.UTC(), Bucket: s.Bucket, Line: s.Line}
		if s.Client.IsValid() {
			v.Client = s.Client.String()
		}
		out.Strikes = append(out.Strikes, v)
	}
	srcs, err := st.AccountSources(out.Account, time.Unix(0, 0))
	if err != nil {
		return nil, err
	}
	out.Sources = control.SourceViews(srcs)
	if out.Rate, err = rateViews(st, out.Account); err != nil {
		return nil, err
	}
	first, ok, err := st.AccountFirstSeen(out.Account)
	if err != nil {
		return nil, err
	}
	if ok {
		first = first.UTC()
		out.FirstSeen = &first
	}
	return st.AllowList()
}

// allowed reports whether the allow list (the configuration's and the
// database's, as the engine builds it) holds account.
func allowed(cfg *config.Config, db []store.Allowed, account string) (bool, error) {
	entries := append([]string(nil), cfg.Global.AllowSenders...)
	for _, a := range db {
		entries = append(entries, a.Entry)
	}
	l, err := rules.NewAllowList(entries)
	if err != nil {
		return false, err
	}
	return l.Contains(account), nil
}

// printShowAccount writes out as text. Strike lines come from logs and
// reasons from operators, so every field goes through textf; reasons are
// quoted.
func printShowAccount(w io.Writer, out showAccountOutput) {
	state := "not suspended"
	if out.Suspended {
		state = "suspended"
	}
	if out.Allowed {
		state += ", on the allow list"
	}
	textf(w, "%s: %s\n", out.Account, state)
	if out.FirstSeen != nil {
		textf(w, "  first seen %s\n", fmtTime(*out.FirstSeen))
	}
	for _, s := range out.Active {
		enforced := ""
		if !s.Enforced {
			enforced = " (recorded only: the jail has suspend = false)"
		}
		textf(w, "  active   jail=%s since=%s until=%s strikes=%d reason=%s%s\n", s.Jail, fmtTime(s.Since), fmtSuspendedUntil(s.Until), s.Strikes, strconv.Quote(s.Reason), enforced)
		if len(s.Sources) > 0 {
			textf(w, "           sources: %s\n", fmtSources(s.Sources))
		}
	}
	if out.Release != "" {
		textf(w, "  release with: %s\n", out.Release)
	}
	for _, s := range out.History {
		textf(w, "  history  jail=%s since=%s until=%s lifted=%s by=%s reason=%s\n", s.Jail, fmtTime(s.Since), fmtSuspendedUntil(s.Until), fmtTime(*s.Lifted), s.LiftedBy, strconv.Quote(s.Reason))
	}
	if len(out.Sources) > 0 {
		textf(w, "  sources  %s\n", fmtSources(out.Sources))
	}
	for _, s := range out.Strikes {
		client := s.Client
		if client == "" {
			client = "-"
		}
		textf(w, "  strike   jail=%s at=%s client=%s bucket=%s\n           %s\n", s.Jail, fmtTime(s.At), client, s.Bucket, s.Line)
	}
	printRate(w, out.Rate)
}
