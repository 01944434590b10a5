// Command gen writes deterministic, realistic rspamd proxy or Postfix logs
// for mailjail's benchmarks; see package bench/loggen for what the logs
// hold.
//
//	go run ./bench/gen -lines 1000000 -events 0.01 -clients 5000 -v6 0.2 -hostile 0.02 -seed 1 -kind rspamd -out rspamd.log
//
// The same flags always produce the same bytes. A summary goes to stderr.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/mailjail/mailjail/bench/loggen"
)

func main() {
	o := loggen.Defaults()
	var out, start string
	flag.IntVar(&o.Lines, "lines", o.Lines, "number of lines to write")
	flag.Float64Var(&o.Events, "events", o.Events, "share of lines that are ratelimit events")
	flag.IntVar(&o.Clients, "clients", o.Clients, "distinct client addresses")
	flag.Float64Var(&o.V6, "v6", o.V6, "share of clients with an IPv6 address")
	flag.IntVar(&o.Attackers, "attackers", o.Attackers, "clients that attack in bursts (the first ones of the pool)")
	flag.Float64Var(&o.Burst, "burst", o.Burst, "share of events that come from attack bursts")
	flag.Float64Var(&o.Hostile, "hostile", o.Hostile, "share of messages with injected Message-ID/from/rcpts text")
	flag.Float64Var(&o.UserShare, "user", o.UserShare, "share of rspamd events in the \"user\" bucket")
	flag.Float64Var(&o.Rate, "rate", o.Rate, "messages per second of log time")
	flag.Uint64Var(&o.Seed, "seed", o.Seed, "PRNG seed")
	flag.StringVar(&o.Kind, "kind", o.Kind, "rspamd or postfix")
	flag.StringVar(&start, "start", "2026-11-25T00:00:00Z", "time of the first line (RFC 3339)")
	flag.StringVar(&out, "out", "-", "output file (- for stdout)")
	flag.Parse()
	t, err := time.Parse(time.RFC3339, start)
	if err != nil {
		fatal(fmt.Errorf("-start: %w", err))
	}
	o.Start = t.UTC()
	var w io.Writer = os.Stdout
	var f *os.File
	if out != "-" {
		if f, err = os.Create(out); err != nil {
			fatal(fmt.Errorf("create output: %w", err))
		}
		w = f
	}
	st, err := loggen.Generate(w, o)
	if err != nil {
		fatal(err)
	}
	if f != nil {
		if err := f.Close(); err != nil {
			fatal(fmt.Errorf("close %s: %w", out, err))
		}
	}
	fmt.Fprintf(os.Stderr, "gen: %s: %d lines, %d messages, %d event lines from %d clients, %d hostile messages, %s .. %s\n",
		o.Kind, st.Lines, st.Messages, st.Events, len(st.EventClients), st.Hostile,
		st.First.Format(time.DateTime), st.Last.Format(time.DateTime))
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "gen:", err)
	os.Exit(1)
}
