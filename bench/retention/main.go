// Command retention measures mailjail's database retention (issue 16):
// the size of a database holding -strikes strikes of -addrs addresses
// (rspamd ratelimit summary lines, a -v6 share IPv6), bytes per strike
// once the lines beyond dbmaxmatches are cleared, the size after a purge
// of the -old share (older than dbpurgeage), and the latency of the
// daemon's commit (one strike and a read position, durable, as the loop
// commits a batch) without a purge and while that purge runs, in the
// same run.
//
//	go run ./bench/retention                                 # 10M strikes, 1M addresses
//	go run ./bench/retention -strikes 200000 -addrs 20000   # a quick one
package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailjail/mailjail/bench/loggen"
	"github.com/mailjail/mailjail/internal/core"
	"github.com/mailjail/mailjail/internal/daemon"
	"github.com/mailjail/mailjail/internal/store"
)

func main() {
	strikes := flag.Int("strikes", 10_000_000, "strikes stored")
	addrs := flag.Int("addrs", 1_000_000, "distinct addresses")
	v6 := flag.Float64("v6", 0.2, "share of IPv6 addresses")
	old := flag.Float64("old", 0.9, "share of strikes older than dbpurgeage")
	maxMatches := flag.Int("dbmaxmatches", 1, "lines kept per address and jail")
	batch := flag.Int("batch", store.DefaultPurgeBatch, "rows per purge transaction")
	every := flag.Duration("every", 10*time.Millisecond, "time between two latency probes")
	idle := flag.Int("idle", 500, "latency probes without a purge")
	dir := flag.String("dir", "bench/out/retention", "directory of the database (emptied)")
	rest := flag.Bool("rest", true, "rest after each purge transaction as long as it took, as the daemon does (daemon.Rest)")
	allLines := flag.Bool("all-lines", false, "store every strike's line and let the first purge clear them (a one-off catch-up, slow at 10M); default: only the newest -dbmaxmatches per address keep theirs, as the daemon's purge every minute leaves them")
	flag.Parse()
	keepLines = *maxMatches
	if *rest {
		pause = daemon.Rest
	}
	if *allLines {
		keepLines = -1
	}
	if err := run(*dir, *strikes, *addrs, *v6, *old, *maxMatches, *batch, *every, *idle); err != nil {
		fmt.Fprintln(os.Stderr, "retention:", err)
		os.Exit(1)
	}
}

// now is the benchmark's present; strikes lie in the 60 days before it.
var now = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

const (
	jail     = "rspamd-ratelimit"
	purgeAge = 30 * 24 * time.Hour
	findTime = 10 * time.Minute
)

func run(dir string, strikes, addrs int, v6, old float64, maxMatches, batch int, every time.Duration, idle int) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	path := filepath.Join(dir, "mailjail.db")
	t := time.Now()
	if err := build(path, strikes, addrs, v6, old); err != nil {
		return err
	}
	fmt.Printf("Built %d strikes of %d addresses (%.0f%% IPv6, %.0f%% older than dbpurgeage) in %s\n\n",
		strikes, addrs, 100*v6, 100*old, time.Since(t).Round(time.Second))
	st, err := store.Open(path, store.Options{Durable: true})
	if err != nil {
		return err
	}
	defer st.Close()
	ctx := context.Background()
	size0, err := fileSize(st, path)
	if err != nil {
		return err
	}
	fmt.Printf("| state | strikes | file | bytes per strike |\n| --- | ---: | ---: | ---: |\n")
	if keepLines < 0 {
		row("every line kept", strikes, size0)
	} else {
		row(fmt.Sprintf("as built: the %d newest strikes of an address keep their line", keepLines), strikes, size0)
	}
	// The daemon clears lines beyond dbmaxmatches every minute: with
	// every line stored, a purge that keeps everything else clears them.
	var tst store.PurgeStats
	var trimTook time.Duration
	if keepLines < 0 {
		t = time.Now()
		keepAll := store.Retention{Now: now, Age: 100 * purgeAge, MaxMatches: maxMatches, FindTime: map[string]time.Duration{jail: findTime}}
		if tst, err = st.Purge(ctx, keepAll, store.PurgeOptions{Batch: batch}); err != nil {
			return err
		}
		trimTook = time.Since(t)
		size1, err := fileSize(st, path)
		if err != nil {
			return err
		}
		row(fmt.Sprintf("lines of the %d newest per address kept (dbmaxmatches)", maxMatches), strikes, size1)
	}

	lat := newProbe(st, every)
	lat.run(ctx, idle)
	base := lat.take()
	var batches []time.Duration
	var mu sync.Mutex
	last := time.Now()
	opt := store.PurgeOptions{Batch: batch, Pause: pause, OnBatch: func(string, int64) {
		mu.Lock()
		batches = append(batches, time.Since(last))
		last = time.Now()
		mu.Unlock()
	}}
	var stop atomic.Bool
	var probing sync.WaitGroup
	probing.Go(func() {
		for !stop.Load() {
			lat.probe(ctx)
		}
	})
	t = time.Now()
	last = t
	pst, err := st.Purge(ctx, store.Retention{Now: now, Age: purgeAge, MaxMatches: maxMatches, FindTime: map[string]time.Duration{jail: findTime}}, opt)
	took := time.Since(t)
	stop.Store(true)
	probing.Wait()
	if err != nil {
		return err
	}
	during := lat.take()
	kept := strikes - int(pst.Removed["strikes"])
	size2, err := fileSize(st, path)
	if err != nil {
		return err
	}
	row("after the purge of strikes older than dbpurgeage", kept, size2)
	if keepLines < 0 {
		fmt.Printf("\nClearing lines: %d cleared in %s (%d transactions).", tst.LinesCleared, trimTook.Round(time.Millisecond), tst.Batches)
	}
	fmt.Printf("\nPurge: %d strikes removed, %d pages given back, in %s, %d transactions of at most %d rows.\n",
		pst.Removed["strikes"], pst.PagesFreed, took.Round(time.Millisecond), pst.Batches, batch)
	slices.Sort(batches)
	fmt.Printf("Purge transaction (from the end of the previous one, with its rest and the wait for the connection): p50 %s, p99 %s, max %s\n\n", pct(batches, 50), pct(batches, 99), pct(batches, 100))
	fmt.Printf("| commit of one strike + position (durable) | probes | p50 | p99 | max |\n| --- | ---: | ---: | ---: | ---: |\n")
	for _, r := range []struct {
		name string
		d    []time.Duration
	}{{"no purge", base}, {"while the purge runs", during}} {
		fmt.Printf("| %s | %d | %s | %s | %s |\n", r.name, len(r.d), pct(r.d, 50), pct(r.d, 99), pct(r.d, 100))
	}
	fmt.Printf("\nRatio (purge ÷ no purge): p50 %.2f×, p99 %.2f×\n",
		float64(pct(during, 50))/float64(pct(base, 50)), float64(pct(during, 99))/float64(pct(base, 99)))
	return nil
}

func row(what string, strikes int, size int64) {
	fmt.Printf("| %s | %d | %.1f MB | %.1f |\n", what, strikes, float64(size)/1e6, float64(size)/float64(max(strikes, 1)))
}

// pause is the daemon's rest after each purge transaction (nil: none).
var pause func(context.Context, time.Duration)

// keepLines is how many of an address's newest strikes build gives
// their line (-1: all).
var keepLines int

// build stores the strikes through the store, 10,000 a transaction,
// without fsync: strike i is of address i mod addrs, in time order.
func build(path string, strikes, addrs int, v6, old float64) error {
	st, err := store.Open(path, store.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	nOld := int(float64(strikes) * old)
	// Old strikes fill the 30 days before dbpurgeage, the others the 30
	// days after.
	oldStep := (purgeAge - time.Hour) / time.Duration(max(nOld, 1))
	youngStep := (purgeAge - 2*time.Hour) / time.Duration(max(strikes-nOld, 1))
	at := func(i int) time.Time {
		if i < nOld {
			return now.Add(-2*purgeAge + time.Duration(i)*oldStep)
		}
		return now.Add(-purgeAge + time.Hour + time.Duration(i-nOld)*youngStep)
	}
	const tx = 10000
	for i := 0; i < strikes; i += tx {
		err := st.Update(context.Background(), func(t *store.Tx) error {
			for k := i; k < min(i+tx, strikes); k++ {
				a := loggen.ClientAddr(k%addrs, v6, 1)
				l := ""
				if keepLines < 0 || k >= strikes-keepLines*addrs {
					l = line(k, a, at(k))
				}
				if err := t.AddStrike(store.Strike{Jail: jail, Addr: a, At: at(k), Bucket: "ip", Line: l}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// line is an rspamd 3.4 proxy summary of a ratelimited message, as
// testdata/rspamd-3.4-proxy.log has them (515 bytes for IPv4).
func line(i int, a netip.Addr, at time.Time) string {
	return fmt.Sprintf(`%s #%d(rspamd_proxy) <%06x>; proxy; rspamd_task_write_log: id: <%s.%06d@mx%d.example.net>, qid: <%010X>, ip: %s, from: <user%d@example.com>, (default: F (soft reject): [0.00/15.00] [ASN_FAIL(0.00){%s.asn.rspamd.com:query timed out;}]), len: %d, time: %d.%03dms, dns req: 1, digest: <%016x%016x>, rcpts: <bob@example.org>, mime_rcpts: <bob@example.org>, forced: soft reject "Ratelimit "ip" exceeded"; score=nan (set by ratelimit)`,
		at.Format("2006-01-02 15:04:05"), 1000+i%9000, i*2654435761&0xffffff, at.Format("20060102150405"), i%1000000, i%7, i*40503,
		a, i%5000, a, 200+i%4000, 50+i%200, i%1000, uint64(i)*0x9e3779b97f4a7c15, uint64(i)*0xbf58476d1ce4e5b9)
}

// probe times the daemon's commit of one batch: a strike and its read
// position, durable.
type probe struct {
	st    *store.Store
	every time.Duration
	n     int
	mu    sync.Mutex
	d     []time.Duration
}

func newProbe(st *store.Store, every time.Duration) *probe { return &probe{st: st, every: every} }

func (p *probe) run(ctx context.Context, n int) {
	for range n {
		p.probe(ctx)
	}
}

func (p *probe) probe(ctx context.Context) {
	time.Sleep(p.every)
	p.n++
	a := netip.AddrFrom4([4]byte{192, 0, 2, byte(p.n)})
	t := time.Now()
	err := p.st.Update(ctx, func(tx *store.Tx) error {
		if err := tx.AddStrike(store.Strike{Jail: jail, Addr: a, At: now.Add(-time.Duration(p.n) * time.Millisecond), Bucket: "ip", Line: line(p.n, a, now)}); err != nil {
			return err
		}
		return tx.SavePosition(core.Position{Path: "/var/log/rspamd/rspamd.log", Offset: int64(p.n)}, now)
	})
	d := time.Since(t)
	if err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		os.Exit(1)
	}
	p.mu.Lock()
	p.d = append(p.d, d)
	p.mu.Unlock()
}

// take returns the probes so far, sorted, and forgets them.
func (p *probe) take() []time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.d
	p.d = nil
	slices.Sort(d)
	return d
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[min(len(d)-1, len(d)*p/100)].Round(10 * time.Microsecond)
}

// fileSize is the database's size once its write-ahead log is copied
// into it and emptied.
func fileSize(st *store.Store, path string) (int64, error) {
	if err := st.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		return 0, err
	}
	var n int64
	for _, f := range []string{path, path + "-wal"} {
		fi, err := os.Stat(f)
		if err == nil {
			n += fi.Size()
		} else if !os.IsNotExist(err) {
			return 0, err
		}
	}
	return n, nil
}
