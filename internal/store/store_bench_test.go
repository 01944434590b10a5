package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/store"
)

// BenchmarkAddStrikeBatch commits batches of strikes in one transaction,
// as the engine does for each batch of log lines: size 1 is the latency
// of a lone strike (a commit, with fsync when durable), 1000 the
// throughput of a busy batch. ns/strike is per strike.
func BenchmarkAddStrikeBatch(b *testing.B) {
	line := `#4772(rspamd_proxy) <2dc0b2>; proxy; rspamd_task_write_log: id: <20261125033439.004799@vm>, qid: <5346CBA274>, ip: 198.18.5.6, from: <carol@example.net>, (default: F (soft reject): [0.00/15.00] [ASN_FAIL(0.00){6.5.18.198.asn.rspamd.com:query timed out;}]), len: 242, time: 101.481ms, dns req: 1, digest: <1c1c80e355d3ba8ad4200cbcb3e17881>, rcpts: <bob@example.org>, mime_rcpts: <bob@example.org>, forced: soft reject "Ratelimit "ip" exceeded"; score=nan (set by ratelimit)`
	ctx := context.Background()
	for _, durable := range []bool{true, false} {
		for _, size := range []int{1, 1000} {
			b.Run(fmt.Sprintf("size=%d/durable=%v", size, durable), func(b *testing.B) {
				st, err := store.Open(filepath.Join(b.TempDir(), "bench.db"), store.Options{Durable: durable})
				if err != nil {
					b.Fatal(err)
				}
				defer st.Close()
				t0 := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
				b.ReportAllocs()
				n := 0
				for b.Loop() {
					err := st.Update(ctx, func(tx *store.Tx) error {
						for range size {
							a := netip.AddrFrom4([4]byte{198, 18, byte(n >> 8), byte(n)})
							if err := tx.AddStrike(store.Strike{Jail: "rspamd-ratelimit", Addr: a, At: t0.Add(time.Duration(n) * time.Millisecond), Bucket: "ip", Line: line}); err != nil {
								return err
							}
							n++
						}
						return nil
					})
					if err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/strike")
			})
		}
	}
}

// BenchmarkAddStrikePrepared is the proposal for Tx.AddStrike (see
// bench/README.md): the same 1000-strike transaction through one prepared
// statement instead of tx.Exec with the SQL text, which makes SQLite
// compile the statement again for every strike. It writes the same table
// of a database created by store.Open.
func BenchmarkAddStrikePrepared(b *testing.B) {
	path := filepath.Join(b.TempDir(), "bench.db")
	st, err := store.Open(path, store.Options{Durable: false})
	if err != nil {
		b.Fatal(err)
	}
	st.Close()
	db, err := sql.Open("sqlite3", "file:"+path+"?_journal_mode=WAL&_synchronous=OFF&_txlock=immediate")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	line := `#4772(rspamd_proxy) <2dc0b2>; proxy; rspamd_task_write_log: id: <20261125033439.004799@vm>, qid: <5346CBA274>, ip: 198.18.5.6, from: <carol@example.net>, (default: F (soft reject): [0.00/15.00] [ASN_FAIL(0.00){6.5.18.198.asn.rspamd.com:query timed out;}]), len: 242, time: 101.481ms, dns req: 1, digest: <1c1c80e355d3ba8ad4200cbcb3e17881>, rcpts: <bob@example.org>, mime_rcpts: <bob@example.org>, forced: soft reject "Ratelimit "ip" exceeded"; score=nan (set by ratelimit)`
	// The compact layout: a jail's number, the address's bytes, n = 0.
	stmt, err := db.Prepare(`INSERT INTO strikes (jail, addr, at, n, bucket, line) VALUES (?, ?, ?, 0, ?, ?)`)
	if err != nil {
		b.Fatal(err)
	}
	defer stmt.Close()
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		tx, err := db.Begin()
		if err != nil {
			b.Fatal(err)
		}
		ts := tx.Stmt(stmt)
		for range 1000 {
			a := netip.AddrFrom4([4]byte{198, 18, byte(n >> 8), byte(n)})
			if _, err := ts.Exec(1, a.AsSlice(), int64(n), "ip", line); err != nil {
				b.Fatal(err)
			}
			n++
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/strike")
}
