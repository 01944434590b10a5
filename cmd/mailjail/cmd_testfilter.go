package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/mailjail/mailjail/internal/control"
	"github.com/mailjail/mailjail/rules"
)

// testFilterOutput is the --json schema of `test-filter`.
type testFilterOutput struct {
	Filter      string         `json:"filter"`
	File        string         `json:"file"`
	Lines       int            `json:"lines"`
	Matched     int            `json:"matched"`
	Missed      int            `json:"missed"`
	Addresses   map[string]int `json:"addresses"`
	Buckets     map[string]int `json:"buckets"`
	Seconds     float64        `json:"seconds"`
	LinesPerSec float64        `json:"lines_per_second"`
	// With --print-matches / --print-misses: the lines themselves, exact,
	// in file order; [] when there are none, absent without the flag.
	MatchedLines *[]string `json:"matched_lines,omitempty"`
	MissedLines  *[]string `json:"missed_lines,omitempty"`
}

func testFilterCommand() *cli.Command {
	return &cli.Command{
		Name:      "test-filter",
		Usage:     "run a filter over a log file and report what it matches (like fail2ban-regex)",
		ArgsUsage: "FILTER LOGFILE",
		Description: `FILTER is a built-in filter (rspamd-ratelimit, postfix-ratelimit), a
[filter.NAME] of the configuration, a jail's name (its filter), or a
regular expression with <HOST>. Prints lines read, matched and missed,
events per address (and per rspamd bucket), the time taken and lines/s.
Whole read buffers are searched for the filter's literal first, so only
candidate lines are matched. With --print-matches or --print-misses the
lines come first (control characters escaped) and the summary last.
Exit 1 when nothing matched, 2 when LOGFILE cannot be read.

JSON: {"filter", "file", "lines", "matched", "missed", "addresses":
{ADDR: n}, "buckets": {B: n}, "seconds", "lines_per_second"}, plus
"matched_lines": [LINE] with --print-matches and "missed_lines": [LINE]
with --print-misses (exact lines, in file order).

Examples:
   mailjail test-filter rspamd-ratelimit /var/log/rspamd/rspamd.log
   mailjail test-filter 'warning: [\w.-]+\[<HOST>\]: SASL \w+ authentication failed' /var/log/mail.log --print-matches`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "print-matches", Usage: "print each matching line"},
			&cli.BoolFlag{Name: "print-misses", Usage: "print each line that does not match"},
			jsonFlag,
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return exitf(control.ExitUsage, "test-filter takes FILTER and LOGFILE")
			}
			name, path := c.Args().Get(0), c.Args().Get(1)
			f, err := resolveFilter(c, name)
			if err != nil {
				return err
			}
			// A log file that cannot be read is bad input, as for grep:
			// exit 2, not 3 (which says the daemon or state is unreachable).
			fh, err := os.Open(path)
			if err != nil {
				return exitf(control.ExitUsage, "%v", err)
			}
			defer fh.Close()
			out := testFilterOutput{Filter: f.Name, File: path, Addresses: map[string]int{}, Buckets: map[string]int{}}
			lp := newLinePrinter(c, &out)
			start := time.Now()
			if err := scanFilter(fh, f, lp.printer(), &out); err != nil {
				return exitf(control.ExitUsage, "read %s: %v", path, err)
			}
			out.Seconds = time.Since(start).Seconds()
			out.Missed = out.Lines - out.Matched
			if out.Seconds > 0 {
				out.LinesPerSec = float64(out.Lines) / out.Seconds
			}
			if c.Bool("json") {
				if err := printJSON(c.App.Writer, out); err != nil {
					return err
				}
			} else {
				// The lines first, the summary last: it must not scroll away.
				if err := lp.flush(); err != nil {
					return err
				}
				printTestFilter(c.App.Writer, out)
			}
			if out.Matched == 0 {
				return exitf(control.ExitNotFound, "no line matched")
			}
			return nil
		},
	}
}

// linePrinter prints the lines --print-matches and --print-misses ask
// for: as text, each line escaped, to the terminal; with --json, the exact
// lines into the output.
type linePrinter struct {
	matches, misses bool
	w               *bufio.Writer // text; nil with --json
	out             *testFilterOutput
	printed         int
}

// newLinePrinter returns nil when no line is to be printed.
func newLinePrinter(c *cli.Context, out *testFilterOutput) *linePrinter {
	p := &linePrinter{matches: c.Bool("print-matches"), misses: c.Bool("print-misses"), out: out}
	switch {
	case !p.matches && !p.misses:
		return nil
	case !c.Bool("json"):
		p.w = bufio.NewWriter(c.App.Writer)
	case p.matches:
		out.MatchedLines = &[]string{}
	}
	if p.misses && c.Bool("json") {
		out.MissedLines = &[]string{}
	}
	return p
}

// printer is what scanFilter calls for each line (nil: none printed).
func (p *linePrinter) printer() func([]byte, bool) {
	if p == nil {
		return nil
	}
	return p.line
}

func (p *linePrinter) line(line []byte, matched bool) {
	if matched && !p.matches || !matched && !p.misses {
		return
	}
	p.printed++
	switch {
	case p.w != nil:
		p.w.WriteString(safeText(string(line)))
		p.w.WriteByte('\n')
	case matched:
		*p.out.MatchedLines = append(*p.out.MatchedLines, string(line))
	default:
		*p.out.MissedLines = append(*p.out.MissedLines, string(line))
	}
}

// flush writes the text lines out, and a blank line before the summary.
func (p *linePrinter) flush() error {
	if p == nil || p.w == nil {
		return nil
	}
	if p.printed > 0 {
		p.w.WriteByte('\n')
	}
	return p.w.Flush()
}

// scanFilter matches only the lines that contain the filter's literal
// (every line when misses are printed).
func scanFilter(r io.Reader, f *rules.Filter, print func([]byte, bool), out *testFilterOutput) error {
	pf := f.Prefilter()
	if print != nil {
		pf = rules.Prefilter{}
	}
	ref := time.Now()
	lines, err := eachCandidate(r, pf, func(line []byte) {
		msg := line
		// The date is cut even when it is not usable (an impossible
		// date): the filter sees what the daemon's would.
		if _, k, _ := f.ParseTime(line, time.Local, ref); k > 0 {
			msg = line[k:]
		}
		mt, ok := f.Match(msg)
		if ok {
			out.Matched++
			out.Addresses[mt.Addr.String()]++
			if mt.Bucket != "" {
				out.Buckets[mt.Bucket]++
			}
		}
		if print != nil {
			print(line, ok)
		}
	})
	out.Lines = lines
	return err
}

func printTestFilter(w io.Writer, out testFilterOutput) {
	textf(w, "Filter: %s\nFile:   %s\n\n", out.Filter, out.File)
	textf(w, "Lines: %d, matched: %d, missed: %d\n", out.Lines, out.Matched, out.Missed)
	type kv struct {
		k string
		v int
	}
	var addrs []kv
	for k, v := range out.Addresses {
		addrs = append(addrs, kv{k, v})
	}
	sort.Slice(addrs, func(i, j int) bool {
		return addrs[i].v > addrs[j].v || addrs[i].v == addrs[j].v && addrs[i].k < addrs[j].k
	})
	if len(addrs) > 0 {
		textf(w, "\nEvents per address:\n")
		for _, a := range addrs {
			textf(w, "  %6d  %s\n", a.v, a.k)
		}
	}
	if len(out.Buckets) > 0 {
		var bs []string
		for k, v := range out.Buckets {
			bs = append(bs, fmt.Sprintf("%s=%d", k, v))
		}
		sort.Strings(bs)
		textf(w, "\nBuckets: %s\n", strings.Join(bs, " "))
	}
	textf(w, "\nTime: %.3fs, %.0f lines/s\n", out.Seconds, out.LinesPerSec)
}

// resolveFilter finds FILTER: built-in, [filter.NAME], a jail's filter,
// or a regular expression with <HOST>.
func resolveFilter(c *cli.Context, name string) (*rules.Filter, error) {
	if strings.Contains(name, "<HOST>") {
		f, err := rules.CompileFilter("regex", rules.FilterSpec{FailRegex: []string{name}})
		if err != nil {
			return nil, exitf(control.ExitUsage, "%v", err)
		}
		return f, nil
	}
	if f, err := rules.BuiltinFilter(name); err == nil {
		return f, nil
	}
	cfg, err := loadConfig(c)
	if err != nil {
		return nil, err
	}
	if j := cfg.Jail(name); j != nil {
		name = j.Filter
	}
	f, err := cfg.CompileFilter(name)
	if err != nil {
		return nil, exitf(control.ExitUsage, "filter %q: %v (a regex must contain <HOST>)", name, err)
	}
	return f, nil
}
