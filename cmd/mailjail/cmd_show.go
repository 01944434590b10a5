package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/mailjail/mailjail/internal/control"
	"github.com/mailjail/mailjail/internal/daemon"
	"github.com/mailjail/mailjail/rules"
)

// showOutput is the --json schema of `show`.
type showOutput struct {
	Addr    string        `json:"addr"`
	Banned  bool          `json:"banned"`
	Active  []control.Ban `json:"active"`
	History []control.Ban `json:"history"`
	Strikes []strikeView  `json:"strikes"`
}

type strikeView struct {
	Jail   string    `json:"jail"`
	At     time.Time `json:"at"`
	Bucket string    `json:"bucket,omitempty"`
	Line   string    `json:"line"`
}

func showCommand() *cli.Command {
	return &cli.Command{
		Name:      "show",
		Usage:     "show everything known about one address",
		ArgsUsage: "ADDR|CIDR",
		Description: `Prints the address's active bans, its ban history and its recent strikes
with the log lines that caused them. Exit 1 when nothing is known.

JSON: {"addr", "banned", "active": [ban], "history": [ban],
"strikes": [{"jail", "at", "bucket", "line"}]}

Examples:
   mailjail show 198.51.100.23
   mailjail show 2001:db8::42 --json`,
		Flags: []cli.Flag{jsonFlag},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return exitf(daemon.ExitUsage, "show takes one address")
			}
			p, err := rules.ParsePrefix(c.Args().First())
			if err != nil {
				return exitf(daemon.ExitUsage, "%v", err)
			}
			cfg, err := loadConfig(c)
			if err != nil {
				return err
			}
			out := showOutput{Addr: rules.FormatPrefix(p), Active: []control.Ban{}, History: []control.Ban{}, Strikes: []strikeView{}}
			st, err := openRead(cfg)
			if err != nil && !errors.Is(err, errNoDatabase) {
				return err
			}
			if st != nil {
				defer st.Close()
				hist, err := st.BanHistory(p, 50)
				if err != nil {
					return &exitError{code: daemon.ExitUnreachable, err: err}
				}
				for _, b := range hist {
					v := daemon.BanView(b)
					if b.Lifted.IsZero() {
						out.Active = append(out.Active, v)
					} else {
						out.History = append(out.History, v)
					}
				}
				if p.IsSingleIP() {
					strikes, err := st.RecentStrikes(p.Addr(), 20)
					if err != nil {
						return &exitError{code: daemon.ExitUnreachable, err: err}
					}
					for _, s := range strikes {
						out.Strikes = append(out.Strikes, strikeView{Jail: s.Jail, At: s.At.UTC(), Bucket: s.Bucket, Line: s.Line})
					}
				}
			}
			out.Banned = len(out.Active) > 0
			if c.Bool("json") {
				if err := printJSON(c.App.Writer, out); err != nil {
					return err
				}
			} else {
				printShow(c, out)
			}
			if !out.Banned && len(out.History) == 0 && len(out.Strikes) == 0 {
				return exitf(daemon.ExitNotFound, "nothing known about %s", out.Addr)
			}
			return nil
		},
	}
}

func printShow(c *cli.Context, out showOutput) {
	w := c.App.Writer
	state := "not banned"
	if out.Banned {
		state = "banned"
	}
	fmt.Fprintf(w, "%s: %s\n", out.Addr, state)
	for _, b := range out.Active {
		fmt.Fprintf(w, "  active   jail=%s since=%s until=%s strikes=%d reason=%q\n", b.Jail, fmtTime(b.Since), fmtUntil(b.Until), b.Strikes, b.Reason)
	}
	for _, b := range out.History {
		fmt.Fprintf(w, "  history  jail=%s since=%s until=%s lifted=%s by=%s reason=%q\n", b.Jail, fmtTime(b.Since), fmtUntil(b.Until), fmtTime(*b.Lifted), b.LiftedBy, b.Reason)
	}
	for _, s := range out.Strikes {
		fmt.Fprintf(w, "  strike   jail=%s at=%s bucket=%s\n           %s\n", s.Jail, fmtTime(s.At), s.Bucket, s.Line)
	}
}
