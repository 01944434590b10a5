package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/mailjail/mailjail/internal/allowlist"
	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/control"
	"github.com/mailjail/mailjail/internal/core"
	"github.com/mailjail/mailjail/internal/daemon"
	"github.com/mailjail/mailjail/internal/enforce"
	"github.com/mailjail/mailjail/internal/engine"
	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/rules"
)

// replayOutput is the --json schema of `replay`.
type replayOutput struct {
	Files       []string            `json:"files"`
	Jails       []string            `json:"jails"`
	Lines       int                 `json:"lines"`
	Matches     uint64              `json:"matches"`
	Strikes     uint64              `json:"strikes"`
	Bans        []control.Ban       `json:"bans"`
	RateEvents  []control.RateEvent `json:"rate_events"`
	Addresses   int                 `json:"addresses_banned"`
	Seconds     float64             `json:"seconds"`
	LinesPerSec float64             `json:"lines_per_second"`
	// Breaker is the circuit breaker's trip, had the logs come in live
	// (null: it would not have tripped); Held counts the bans it held.
	Breaker *control.BreakerStatus `json:"breaker"`
}

func replayCommand() *cli.Command {
	return &cli.Command{
		Name:      "replay",
		Usage:     "dry-run the whole pipeline over old logs and print who would have been banned",
		ArgsUsage: "LOGFILE...",
		Description: `Runs the jails' filters, strike counting, bans (with escalation and
expiry) and map rendering over old logs, with the logs' own timestamps as
the clock, into a throw-away database and map in a temporary directory.
A log-only jail's bans are printed as would-ban. When the bans come far
faster than the circuit breaker allows, replay says when it would have
tripped and how many bans it would have held from the targets.
The real database and map are not touched. Use it to tune maxretry,
findtime and bantime before changing them. Give rotated files oldest
first. Every enabled jail (or only --jail) reads every file.

Examples:
   mailjail replay /var/log/rspamd/rspamd.log.1 /var/log/rspamd/rspamd.log
   mailjail replay --jail rspamd-ratelimit --json rspamd.log | jq '.bans | length'`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "jail", Usage: "replay only `JAIL`"},
			&cli.BoolFlag{Name: "keep", Usage: "keep the temporary directory (database and map) and print its path"},
			jsonFlag,
		},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return exitf(control.ExitUsage, "replay needs at least one log file")
			}
			cfg, err := loadConfig(c)
			if err != nil {
				return err
			}
			files := make([]string, 0, c.NArg())
			for _, f := range c.Args().Slice() {
				abs, err := filepath.Abs(f)
				if err != nil {
					return exitf(control.ExitUsage, "%v", err)
				}
				files = append(files, abs)
			}
			rcfg, err := replayConfig(cfg, c.String("jail"), files)
			if err != nil {
				return err
			}
			dir, err := os.MkdirTemp("", "mailjail-replay-")
			if err != nil {
				return exitf(control.ExitUnreachable, "%v", err)
			}
			if c.Bool("keep") {
				fmt.Fprintf(c.App.ErrWriter, "replay state kept in %s\n", dir)
			} else {
				defer os.RemoveAll(dir)
			}
			rcfg.Global.Database = filepath.Join(dir, "replay.db")
			rcfg.Global.MapFile = filepath.Join(dir, "ip.map")
			out, err := replay(c.Context, rcfg, files, newLogger(c.App.ErrWriter, "warn", config.LogText))
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, out)
			}
			w := c.App.Writer
			for _, b := range out.Bans {
				what := "ban"
				if b.LogOnly {
					what = "would-ban" // a log-only jail's
				}
				textf(w, "%s  %s %-39s jail=%s until=%s  %s\n", fmtTime(b.Since), what, b.Addr, b.Jail, fmtUntil(b.Until), b.Reason)
			}
			for _, ev := range out.RateEvents {
				urgent := ""
				if ev.Urgent {
					urgent = " URGENT"
				}
				textf(w, "%s  rate %s jail=%s %s %.1f over burst %g (rate %s)%s: %s\n", fmtTime(ev.At), ev.Key, ev.Jail, ev.What, ev.Level, ev.Burst, ev.Rate, urgent, ev.Detail)
			}
			if b := out.Breaker; b != nil {
				textf(w, "\nthe circuit breaker would have tripped at %s: %s; %d bans held from the targets until mailjail resume\n", fmtTime(b.Tripped), b.Reason, b.Held)
			}
			textf(w, "\n%d lines, %d matches, %d strikes, %d bans of %d addresses, %d rate events in %.3fs (%.0f lines/s)\n",
				out.Lines, out.Matches, out.Strikes, len(out.Bans), out.Addresses, len(out.RateEvents), out.Seconds, out.LinesPerSec)
			return nil
		},
	}
}

// replayConfig is cfg with only the chosen jails, each reading files.
func replayConfig(cfg *config.Config, jail string, files []string) (*config.Config, error) {
	r := *cfg
	r.Jails = nil
	for _, j := range cfg.EnabledJails() {
		if jail != "" && j.Name != jail {
			continue
		}
		jj := *j
		jj.LogPath = files
		r.Jails = append(r.Jails, &jj)
	}
	if len(r.Jails) == 0 {
		return nil, exitf(control.ExitUsage, "no enabled jail %q", jail)
	}
	return &r, nil
}

// replay feeds the files through an engine, one candidate line at a time
// with that line's time as the clock, so findtime windows, bans and their
// expiry happen as they would have.
func replay(ctx context.Context, cfg *config.Config, files []string, log *slog.Logger) (*replayOutput, error) {
	st, err := store.Open(cfg.Global.Database, store.Options{Durable: false})
	if err != nil {
		return nil, &exitError{code: control.ExitUnreachable, err: err}
	}
	defer st.Close()
	eng, err := engine.New(cfg, st, log)
	if err != nil {
		return nil, &exitError{code: control.ExitUsage, err: err}
	}
	if _, _, err := daemon.LoadIgnore(ctx, cfg, st, eng, allowlist.Options{Log: log}); err != nil {
		return nil, &exitError{code: control.ExitUnreachable, err: fmt.Errorf("load ignoreip: %w", err)}
	}
	r := &replayer{ctx: ctx, eng: eng, loc: cfg.Location(), banned: map[string]bool{},
		out: &replayOutput{Files: files, Bans: []control.Ban{}, RateEvents: []control.RateEvent{}},
		// The same path to enforcement as the daemon's, with the
		// replay's own map as the only target and no actions or alerts.
		enf:// Its bans are the replay's output, not log lines.
		enforce.New([]enforce.Target{enforce.NewMapTarget(cfg.Global.MapFile)}, eng, nil, enforce.Options{Log: slog.New(slog.DiscardHandler)}),
	}
	for _, j := range eng.Jails() {
		r.out.Jails = append(r.out.Jails, j.Cfg.Name)
	}
	start := time.Now()
	r.enf.Start()
	pf := commonPrefilter(eng.Jails())
	for _, path := range files {
		if err := r.file(path, pf); err != nil {
			r.enf.Stop()
			return nil, err
		}
	}
	r.commit(eng.Commit(ctx))
	// The map as it stands at the end of the logs (kept with --keep).
	if err := r.enf.Stop(); r.fail == nil {
		r.fail = err
	}
	if r.fail != nil {
		return nil, &exitError{code: control.ExitUnreachable, err: r.fail}
	}
	out := r.out
	s := eng.Stats()
	out.Matches, out.Strikes, out.Addresses = s.Matches, s.Strikes, len(r.banned)
	out.Seconds = time.Since(start).Seconds()
	if out.Seconds > 0 {
		out.LinesPerSec = float64(out.Lines) / out.Seconds
	}
	return out, nil
}

// replayer is one replay's state: the logs' clock and what it banned.
type replayer struct {
	ctx    context.Context
	eng    *engine.Engine
	enf    *enforce.Enforcer
	loc    *time.Location
	out    *replayOutput
	banned map[string]bool
	clock  time.Time // the latest log time seen
	staged int       // lines staged since the last commit
	fail   error
}

// file replays one file's candidate lines.
func (r *replayer) file(path string, pf rules.Prefilter) error {
	fh, err := os.Open(path)
	if err != nil {
		return exitf(control.ExitUnreachable, "%v", err)
	}
	defer fh.Close()
	lines, err := eachCandidate(fh, pf, func(text []byte) { r.line(path, text) })
	r.out.Lines += lines
	if err != nil {
		return exitf(control.ExitUnreachable, "read %s: %v", path, err)
	}
	return nil
}

func (r *replayer) line(path string, text []byte) {
	if r.fail != nil {
		return
	}
	ref := r.clock
	if ref.IsZero() {
		// Before the first dated line, a syslog date (no year) is
		// placed in the year before now.
		ref = time.Now()
	}
	if t, ok := r.timeOf(text, ref); ok && t.After(r.clock) {
		r.clock = t
	}
	if r.clock.IsZero() {
		r.clock = time.Now()
	}
	r.commit(r.eng.ExpireDue(r.ctx, r.clock))
	before := r.eng.Stats().Bans
	r.eng.Stage([]core.Line{{Path: path, Text: text, Read: r.clock}}, r.clock)
	r.staged++
	// A ban is committed at once, so later lines see it in force.
	if r.eng.Stats().Bans != before || r.staged >= 4096 {
		r.staged = 0
		r.commit(r.eng.Commit(r.ctx))
	}
}

// timeOf is a line's time: by the first jail whose filter has a
// datepattern that reads it, else by the built-in formats.
func (r *replayer) timeOf(text []byte, ref time.Time) (time.Time, bool) {
	for _, j := range r.eng.Jails() {
		if j.Filter != nil && j.Filter.HasDatePattern() {
			if t, _, ok := j.Filter.ParseTime(text, r.loc, ref); ok {
				return t, true
			}
		}
	}
	t, _, ok := rules.ParseTime(text, r.loc, ref)
	return t, ok
}

func (r *replayer) commit(ch engine.Change, err error) {
	if err != nil {
		r.fail = err
		return
	}
	r.enf.Apply(r.ctx, ch)
	if t := ch.Trip; t != nil {
		r.out.Breaker = &control.BreakerStatus{Tripped: t.Tripped.UTC(), Reason: t.Reason, FirstHeldID: t.HeldFrom}
	}
	for _, b := range ch.Bans {
		if engine.Held(b, ch.Held) {
			r.out.Breaker.Held++
		}
		v := control.BanView(b)
		r.out.Bans = append(r.out.Bans, v)
		r.banned[v.Addr] = true
	}
	for _, ev := range ch.Rate {
		r.out.RateEvents = append(r.out.RateEvents, control.RateEventView(ev))
	}
}

// commonPrefilter is the prefilter every jail's filter needs, when they
// share one; otherwise every line is a candidate.
func commonPrefilter(jails []*engine.Jail) rules.Prefilter {
	var pf rules.Prefilter
	for i, j := range jails {
		if j.Filter == nil {
			return rules.Prefilter{} // a rate jail reads every line
		}
		p := j.Filter.Prefilter()
		if i == 0 {
			pf = p
		} else if string(p.Lit) != string(pf.Lit) || p.AtEnd != pf.AtEnd || string(p.Task) != string(pf.Task) {
			return rules.Prefilter{}
		}
	}
	return pf
}

// eachCandidate reads r in large blocks and calls fn for each line that
// passes pf; it returns the number of lines read.
func eachCandidate(r io.Reader, pf rules.Prefilter, fn func([]byte)) (int, error) {
	buf := make([]byte, 1<<20)
	n, total := 0, 0
	for {
		m, err := r.Read(buf[n:])
		n += m
		if err == io.EOF && n > 0 && buf[n-1] != '\n' {
			buf = append(buf[:n], '\n')
			n++
		}
		lines, used := rules.Candidates(buf[:n], pf, fn)
		total += lines
		if used == 0 && n == len(buf) {
			buf = append(buf, make([]byte, len(buf))...)
		}
		n = copy(buf, buf[used:n])
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}
