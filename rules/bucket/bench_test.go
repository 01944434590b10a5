package bucket

import (
	"runtime"
	"strconv"
	"testing"
	"time"
)

// ipKey formats i as a dotted IPv4 address string, the typical key.
func ipKey(buf []byte, i int) string {
	buf = buf[:0]
	buf = strconv.AppendInt(buf, int64(10+i>>24&0xff), 10)
	buf = append(buf, '.')
	buf = strconv.AppendInt(buf, int64(i>>16&0xff), 10)
	buf = append(buf, '.')
	buf = strconv.AppendInt(buf, int64(i>>8&0xff), 10)
	buf = append(buf, '.')
	buf = strconv.AppendInt(buf, int64(i&0xff), 10)
	return string(buf)
}

// BenchmarkTableUpdate measures updates of existing keys: 10k clients
// in a table bounded at 100k, one event each in turn, a millisecond apart.
func BenchmarkTableUpdate(b *testing.B) {
	tb := mustTable(b, Config{Limit: Limit{Rate: Rate{Count: 30, Per: time.Hour}, Burst: 100}})
	keys := make([]string, 10000)
	buf := make([]byte, 0, 16)
	for i := range keys {
		keys[i] = ipKey(buf, i)
	}
	now := epoch
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		now = now.Add(time.Millisecond)
		tb.Update(keys[i%len(keys)], now, 1)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
}

// BenchmarkTable1MKeys pushes 1,000,000 distinct keys through a table
// bounded at 100,000 with a limit that lets keys drain between reuses of
// their slot, and reports the live heap per retained key (entries, index
// map and key bytes) and the insert rate including eviction.
func BenchmarkTable1MKeys(b *testing.B) {
	const distinct, bound = 1_000_000, 100_000
	var bytesPerKey, insertsPerSec float64
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)

		tb := mustTable(b, Config{Limit: Limit{Rate: Rate{Count: 1, Per: time.Second}, Burst: 10}, MaxEntries: bound})
		buf := make([]byte, 0, 16)
		now := epoch
		start := time.Now()
		for i := 0; i < distinct; i++ {
			now = now.Add(10 * time.Microsecond) // a slot is reused after 1s: drained
			tb.Update(ipKey(buf, i), now, 1)
		}
		insertsPerSec = distinct / time.Since(start).Seconds()

		runtime.GC()
		runtime.ReadMemStats(&after)
		if tb.Len() != bound || tb.Stats().Evicted != distinct-bound {
			b.Fatalf("len %d stats %+v", tb.Len(), tb.Stats())
		}
		bytesPerKey = float64(after.HeapAlloc-before.HeapAlloc) / float64(tb.Len())
		runtime.KeepAlive(tb)
	}
	b.ReportMetric(bytesPerKey, "bytes/key")
	b.ReportMetric(insertsPerSec, "inserts/s")
}
