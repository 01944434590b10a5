package bucket

import (
	"math/rand/v2"
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

// BenchmarkWindow1MEvents adds 1,000,000 events over 100,000 keys (ten
// each, in random key order, 7.2 ms apart: two hours in all, so the
// window of one hour slides) and reports the time per event and the live
// heap per key at the end. "messages" weighs each event 1 with Keep 20
// (Kolab's 10 messages × 2), "recipients" weighs 1 to 4 with Keep 500.
func BenchmarkWindow1MEvents(b *testing.B) {
	const events, keys = 1_000_000, 100_000
	buf := make([]byte, 0, 16)
	names := make([]string, keys)
	for i := range names {
		names[i] = ipKey(buf, i)
	}
	order := make([]int32, events)
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range order {
		order[i] = int32(i % keys)
	}
	rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	for _, tc := range []struct {
		name string
		keep float64
		maxN int
	}{{"messages", 20, 1}, {"recipients", 500, 4}} {
		b.Run(tc.name, func(b *testing.B) {
			var bytesPerKey, nsPerEvent float64
			for b.Loop() {
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				w, err := NewWindow(WindowConfig{Window: time.Hour, Keep: tc.keep, MaxEntries: keys})
				if err != nil {
					b.Fatal(err)
				}
				now := epoch
				start := time.Now()
				for i, k := range order {
					now = now.Add(7200 * time.Microsecond)
					w.Add(names[k], now, float64(1+i%tc.maxN))
				}
				nsPerEvent = float64(time.Since(start).Nanoseconds()) / events
				runtime.GC()
				runtime.ReadMemStats(&after)
				if w.Len() != keys {
					b.Fatalf("len %d stats %+v", w.Len(), w.Stats())
				}
				bytesPerKey = float64(after.HeapAlloc-before.HeapAlloc) / keys
				runtime.KeepAlive(w)
			}
			b.ReportMetric(nsPerEvent, "ns/event")
			b.ReportMetric(bytesPerKey, "bytes/key")
		})
	}
}
