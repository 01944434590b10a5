// Command mem measures the memory rules.Policy (the per-jail strike
// windows the daemon keeps) needs for many distinct client addresses
// holding strikes inside findtime, and whether it stays flat while time
// passes and addresses come and go.
//
// Phase 1 gives -addrs distinct addresses (20% IPv6) -strikes strikes each
// (fewer than maxretry, so none is banned), spread over the window as a
// steady stream would leave them, and reports RSS (VmRSS) and Go heap in use before and after, and bytes per
// tracked address. Phase 2 runs -rounds rounds of one minute each, as the
// daemon prunes once a minute: each strikes -addrs/10 new addresses and
// prunes, so after findtime the oldest tenth leaves each minute and about
// -addrs addresses stay tracked while the set keeps changing; RSS every
// few rounds shows whether memory grows with time. Addresses are computed,
// not stored, so the baseline is the bare process.
//
//	go run ./bench/mem                       # 1,000,000 addresses, 30 minutes
//	go run ./bench/mem -addrs 100000 -rounds 12
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/mailjail/mailjail/bench/loggen"
	"github.com/mailjail/mailjail/rules"
)

func main() {
	addrs := flag.Int("addrs", 1000000, "distinct client addresses holding strikes")
	strikes := flag.Int("strikes", 3, "strikes per address (below maxretry)")
	rounds := flag.Int("rounds", 30, "one-minute rounds of address churn")
	flag.Parse()
	if err := run(*addrs, *strikes, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "mem:", err)
		os.Exit(1)
	}
}

func run(n, strikes, rounds int) error {
	cfg := rules.PolicyConfig{MaxRetry: 10, FindTime: 10 * time.Minute, BanTime: time.Hour, Escalation: rules.Escalation{Increment: true, Factor: 1, MaxTime: 7 * 24 * time.Hour},
		Lookback: 30 * 24 * time.Hour}
	if strikes >= cfg.MaxRetry || strikes < 1 || n < 2 {
		return fmt.Errorf("need 1 ≤ -strikes < %d and -addrs ≥ 2", cfg.MaxRetry)
	}
	addr := func(i int) netip.Addr { return loggen.ClientAddr(i, 0.2, 7) }
	rss0, heap0, err := measure()
	if err != nil {
		return err
	}
	p := rules.NewPolicy[rules.AddrKey](cfg)
	t0 := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	start := time.Now()
	for s := range strikes {
		for i := range n {
			// spread over the last 9 minutes, as a steady stream left them
			a := addr(i)
			at := t0.Add(-9*time.Minute + time.Duration(i)*9*time.Minute/time.Duration(n) + time.Duration(s)*time.Second)
			if d := p.Strike(rules.KeyOf(a), at, t0.Add(time.Minute)); !d.Counted || d.Ban {
				return fmt.Errorf("strike %s: %+v", a, d)
			}
		}
	}
	took := time.Since(start)
	rss1, heap1, err := measure()
	if err != nil {
		return err
	}
	fmt.Printf("Machine: %d CPUs, %s, %s\n\n", runtime.NumCPU(), cpuModel(), runtime.Version())
	fmt.Printf("rules.Policy, maxretry 10, findtime 10m: %d distinct addresses (20%% IPv6), %d strikes each, recorded in %s (%.0f ns/strike)\n\n",
		p.Tracked(), strikes, took.Round(time.Millisecond), float64(took.Nanoseconds())/float64(strikes*n))
	fmt.Println("| | RSS | Go heap in use |")
	fmt.Println("| --- | ---: | ---: |")
	fmt.Printf("| before | %s | %s |\n", mb(rss0), mb(heap0))
	fmt.Printf("| with %d tracked addresses | %s | %s |\n", p.Tracked(), mb(rss1), mb(heap1))
	fmt.Printf("| per tracked address | %d B | %d B |\n\n", (rss1-rss0)/int64(p.Tracked()), (heap1-heap0)/int64(p.Tracked()))

	fmt.Printf("Churn: each round is one minute later, strikes %d new addresses and prunes:\n", n/10)
	fmt.Println()
	fmt.Println("| round | clock | tracked | RSS | Go heap in use |")
	fmt.Println("| ---: | --- | ---: | ---: | ---: |")
	next, step := n, n/10
	for r := 1; r <= rounds; r++ {
		now := t0.Add(time.Duration(r) * time.Minute)
		for s := range strikes {
			for i := range step {
				at := now.Add(time.Duration(s*step+i) * time.Minute / time.Duration(strikes*step))
				p.Strike(rules.KeyOf(addr(next+i)), at, at)
			}
		}
		next += step
		p.Prune(now.Add(time.Minute))
		if r%5 != 0 && r != 1 && r != rounds {
			continue
		}
		rss, heap, err := measure()
		if err != nil {
			return err
		}
		fmt.Printf("| %d | +%s | %d | %s | %s |\n", r, now.Add(time.Minute).Sub(t0), p.Tracked(), mb(rss), mb(heap))
	}
	runtime.KeepAlive(p)
	return nil
}

// measure collects garbage, returns memory to the OS and reads VmRSS and
// the Go heap in use.
func measure() (rss, heap int64, err error) {
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0, fmt.Errorf("read RSS: %w", err)
	}
	for line := range bytes.Lines(b) {
		if f := bytes.Fields(line); len(f) >= 2 && string(f[0]) == "VmRSS:" {
			kb, err := strconv.ParseInt(string(f[1]), 10, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("parse VmRSS: %w", err)
			}
			return kb << 10, int64(m.HeapInuse), nil
		}
	}
	return 0, 0, fmt.Errorf("no VmRSS in /proc/self/status")
}

func mb(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/1e6) }

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := bytes.Cut(sc.Bytes(), []byte(":")); ok && string(bytes.TrimSpace(k)) == "model name" {
			return string(bytes.TrimSpace(v))
		}
	}
	return "unknown CPU"
}
