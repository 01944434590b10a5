package engine_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailjail/mailjail/bench/loggen"
	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/core"
	"github.com/mailjail/mailjail/internal/engine"
	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/rules"
)

const benchLog = "/var/log/rspamd/rspamd.log"

// benchEngine is an engine with the default rspamd-ratelimit jail on a
// fresh database (durable: synchronous=FULL, as the daemon runs it).
func benchEngine(b *testing.B, durable bool) *engine.Engine {
	b.Helper()
	cfg, err := config.Parse(strings.NewReader(`
[global]
timezone = "UTC"
[jail.rspamd-ratelimit]
filter = "rspamd-ratelimit"
logpath = ["`+benchLog+`"]
maxretry = 10
findtime = "10m"
bantime = "1h"
`), "bench.toml")
	if err != nil {
		b.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	st, err := store.Open(filepath.Join(b.TempDir(), "bench.db"), store.Options{Durable: durable})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	e, err := engine.New(cfg, st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	return e
}

// batches cuts a generated log into batches of n watcher lines, as the
// follower delivers them.
func batches(b *testing.B, o loggen.Options, n int) [][]core.Line {
	b.Helper()
	var buf bytes.Buffer
	if _, err := loggen.Generate(&buf, o); err != nil {
		b.Fatal(err)
	}
	var out [][]core.Line
	var cur []core.Line
	var off int64
	for line := range bytes.SplitSeq(bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), []byte{'\n'}) {
		off += int64(len(line)) + 1
		at, _, _ := rules.ParseTime(line, time.UTC, time.Time{})
		cur = append(cur, core.Line{Path: benchLog, Text: line, Pos: core.Position{Path: benchLog, Offset: off}, Read: at})
		if len(cur) == n {
			out = append(out, cur)
			cur = nil
		}
	}
	if len(out) == 0 {
		b.Fatal("log shorter than a batch")
	}
	return out
}

// eventBatch is n event summary lines from n distinct addresses (a
// botnet: every line a strike, no ban), different ones for each round.
func eventBatch(n int, round int) []core.Line {
	const tmpl = `2026-11-25 00:10:00 #4772(rspamd_proxy) <2dc0b2>; proxy; rspamd_task_write_log: id: <20261125033439.004799@vm>, qid: <5346CBA274>, ip: %s, from: <carol@example.net>, (default: F (soft reject): [0.00/15.00] [ASN_FAIL(0.00){6.5.18.198.asn.rspamd.com:query timed out;}]), len: 242, time: 101.481ms, dns req: 1, digest: <1c1c80e355d3ba8ad4200cbcb3e17881>, rcpts: <bob@example.org>, mime_rcpts: <bob@example.org>, forced: soft reject "Ratelimit "ip" exceeded"; score=nan (set by ratelimit)`
	out := make([]core.Line, n)
	at := time.Date(2026, 11, 25, 0, 10, 0, 0, time.UTC)
	for i := range out {
		out[i] = core.Line{Path: benchLog, Text: fmt.Appendf(nil, tmpl, loggen.ClientAddr(round*n+i, 0.2, 1)),
			Pos: core.Position{Path: benchLog, Offset: int64(i)}, Read: at}
	}
	return out
}

// BenchmarkStageCommit is the daemon's per-batch work: Stage a batch of
// 4096 lines (filter, policy, strikes, bans) and Commit it in one
// transaction. "mixed" is generated rspamd log (1% events: ~40 event
// lines a batch, most from bursting attackers that get banned); "events"
// is a batch of 512 strikes from distinct addresses.
// Durable is the daemon's synchronous=FULL, fast replay's OFF.
func BenchmarkStageCommit(b *testing.B) {
	o := loggen.Defaults()
	o.Lines = 4096 * 24
	mixed := batches(b, o, 4096)
	ctx := context.Background()
	for _, durable := range []bool{true, false} {
		b.Run(fmt.Sprintf("mixed/durable=%v", durable), func(b *testing.B) {
			e := benchEngine(b, durable)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				batch := mixed[i%len(mixed)]
				now := batch[len(batch)-1].Read
				if i >= len(mixed) { // replayed rounds: keep the clock moving
					now = now.Add(time.Duration(i/len(mixed)) * 2 * time.Hour)
				}
				e.Stage(batch, now)
				if _, err := e.Commit(ctx); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*4096), "ns/line")
			b.ReportMetric(float64(e.Stats().Strikes)/float64(b.N), "strikes/op")
		})
		b.Run(fmt.Sprintf("events/durable=%v", durable), func(b *testing.B) {
			e := benchEngine(b, durable)
			const n = 512
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				b.StopTimer()
				batch := eventBatch(n, i%256) // new addresses each round, up to 1M
				b.StartTimer()
				e.Stage(batch, batch[0].Read.Add(time.Duration(i)*time.Millisecond))
				if _, err := e.Commit(ctx); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(e.Stats().Strikes), "ns/strike")
		})
	}
}
