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

	"github.com/mailjail/mailjail/internal/daemon"
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
	Buckets     map[string]int `json:"buckets,omitempty"`
	Seconds     float64        `json:"seconds"`
	LinesPerSec float64        `json:"lines_per_second"`
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
candidate lines are matched. Exit 1 when nothing matched.

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
				return exitf(daemon.ExitUsage, "test-filter takes FILTER and LOGFILE")
			}
			name, path := c.Args().Get(0), c.Args().Get(1)
			f, err := resolveFilter(c, name)
			if err != nil {
				return err
			}
			fh, err := os.Open(path)
			if err != nil {
				return exitf(daemon.ExitUnreachable, "%v", err)
			}
			defer fh.Close()
			out := testFilterOutput{Filter: f.Name, File: path, Addresses: map[string]int{}, Buckets: map[string]int{}}
			start := time.Now()
			var print func(line []byte, matched bool)
			if c.Bool("print-matches") || c.Bool("print-misses") {
				w := bufio.NewWriter(c.App.Writer)
				defer w.Flush()
				print = func(line []byte, matched bool) {
					if matched && c.Bool("print-matches") || !matched && c.Bool("print-misses") {
						w.Write(line)
						w.WriteByte('\n')
					}
				}
			}
			if err := scanFilter(fh, f, print, &out); err != nil {
				return exitf(daemon.ExitUnreachable, "read %s: %v", path, err)
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
				printTestFilter(c.App.Writer, out)
			}
			if out.Matched == 0 {
				return exitf(daemon.ExitNotFound, "no line matched")
			}
			return nil
		},
	}
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
		if _, k, ok := rules.ParseTime(line, time.Local, ref); ok {
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
	fmt.Fprintf(w, "Filter: %s\nFile:   %s\n\n", out.Filter, out.File)
	fmt.Fprintf(w, "Lines: %d, matched: %d, missed: %d\n", out.Lines, out.Matched, out.Missed)
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
		fmt.Fprintln(w, "\nEvents per address:")
		for _, a := range addrs {
			fmt.Fprintf(w, "  %6d  %s\n", a.v, a.k)
		}
	}
	if len(out.Buckets) > 0 {
		var bs []string
		for k, v := range out.Buckets {
			bs = append(bs, fmt.Sprintf("%s=%d", k, v))
		}
		sort.Strings(bs)
		fmt.Fprintf(w, "\nBuckets: %s\n", strings.Join(bs, " "))
	}
	fmt.Fprintf(w, "\nTime: %.3fs, %.0f lines/s\n", out.Seconds, out.LinesPerSec)
}

// resolveFilter finds FILTER: built-in, [filter.NAME], a jail's filter,
// or a regular expression with <HOST>.
func resolveFilter(c *cli.Context, name string) (*rules.Filter, error) {
	if strings.Contains(name, "<HOST>") {
		f, err := rules.CompileFilter("regex", rules.FilterSpec{FailRegex: []string{name}})
		if err != nil {
			return nil, exitf(daemon.ExitUsage, "%v", err)
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
		return nil, exitf(daemon.ExitUsage, "filter %q: %v (a regex must contain <HOST>)", name, err)
	}
	return f, nil
}
