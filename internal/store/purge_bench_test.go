package store_test

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/core"
	"github.com/mailjail/mailjail/internal/store"
)

// benchLine is an rspamd summary line as the strikes of bench/retention
// carry (about 500 bytes).
var benchLine = `2026-11-25 03:34:39 #4772(rspamd_proxy) <2dc0b2>; proxy; rspamd_task_write_log: id: <20261125033439.004799@vm>, qid: <5346CBA274>, ip: 198.18.5.6, from: <carol@example.net>, (default: F (soft reject): [0.00/15.00] [ASN_FAIL(0.00){6.5.18.198.asn.rspamd.com:query timed out;}]), len: 242, time: 101.481ms, dns req: 1, digest: <1c1c80e355d3ba8ad4200cbcb3e17881>, rcpts: <bob@example.org>, mime_rcpts: <bob@example.org>, forced: soft reject "Ratelimit "ip" exceeded"; score=nan (set by ratelimit)`

var benchNow = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

// addBenchStrikes stores n strikes of addrs addresses (strike i of
// address i mod addrs) from at on, a second apart, in one transaction.
func addBenchStrikes(b *testing.B, st *store.Store, n, addrs int, at time.Time) {
	b.Helper()
	err := st.Update(context.Background(), func(tx *store.Tx) error {
		for i := range n {
			a := netip.AddrFrom4([4]byte{198, 18, byte(i % addrs >> 8), byte(i % addrs)})
			if err := tx.AddStrike(store.Strike{Jail: "rspamd-ratelimit", Addr: a, At: at.Add(time.Duration(i) * time.Second), Bucket: "ip", Line: benchLine}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

// BenchmarkStrikeBytes is bench/retention's size figure, small: 10
// strikes an address, the lines beyond dbmaxmatches (1) cleared as the
// daemon's purge clears them. bytes/strike is what the strikes add to
// the file of an empty database, per strike.
func BenchmarkStrikeBytes(b *testing.B) {
	ctx := context.Background()
	var perStrike float64
	for b.Loop() {
		path := filepath.Join(b.TempDir(), "m.db")
		st, err := store.Open(path, store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		empty, err := fileSize(st, path)
		if err != nil {
			b.Fatal(err)
		}
		const strikes = 1000
		addBenchStrikes(b, st, strikes, strikes/10, benchNow.Add(-24*time.Hour))
		if _, err := st.Purge(ctx, store.Retention{Now: benchNow, Age: 30 * 24 * time.Hour, MaxMatches: 1}, store.PurgeOptions{}); err != nil {
			b.Fatal(err)
		}
		full, err := fileSize(st, path)
		if err != nil {
			b.Fatal(err)
		}
		perStrike = float64(full-empty) / strikes
		st.Close()
	}
	b.ReportMetric(perStrike, "bytes/strike")
}

// fileSize is the database's size with its write-ahead log copied in.
func fileSize(st *store.Store, path string) (int64, error) {
	if err := st.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		return 0, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// BenchmarkCommitWhilePurging is bench/retention's latency figure, small:
// the daemon's durable commit of one strike and its read position, with
// no purge and while another goroutine stores old strikes and purges
// them, batch after batch. p50 and p99 are of the commits.
func BenchmarkCommitWhilePurging(b *testing.B) {
	for _, purging := range []bool{false, true} {
		name := "purge=none"
		if purging {
			name = "purge=running"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			st, err := store.Open(filepath.Join(b.TempDir(), "m.db"), store.Options{Durable: true})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			var wg sync.WaitGroup
			stop := make(chan struct{})
			if purging {
				wg.Go(func() {
					for {
						select {
						case <-stop:
							return
						default:
						}
						addBenchStrikes(b, st, 2000, 200, benchNow.Add(-60*24*time.Hour))
						// The daemon's rest (daemon.Rest) after each transaction.
						rest := func(_ context.Context, took time.Duration) { time.Sleep(took) }
						if _, err := st.Purge(ctx, store.Retention{Now: benchNow, Age: 30 * 24 * time.Hour, MaxMatches: 1}, store.PurgeOptions{Pause: rest}); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			var took []time.Duration
			n := 0
			for b.Loop() {
				n++
				t := time.Now()
				err := st.Update(ctx, func(tx *store.Tx) error {
					if err := tx.AddStrike(store.Strike{Jail: "rspamd-ratelimit", Addr: netip.AddrFrom4([4]byte{192, 0, 2, byte(n)}), At: benchNow.Add(time.Duration(n)), Line: benchLine}); err != nil {
						return err
					}
					return tx.SavePosition(core.Position{Path: "/var/log/rspamd/rspamd.log", Offset: int64(n)}, benchNow)
				})
				took = append(took, time.Since(t))
				if err != nil {
					b.Fatal(err)
				}
			}
			close(stop)
			wg.Wait()
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(took[len(took)*99/100].Microseconds()), "p99-µs")
		})
	}
}
