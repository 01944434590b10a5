// Package enforcetest measures enforcement targets the same way for every
// kind, so that their figures compare: the latency of one more ban over
// an existing list, and the cost of a burst written from empty.
package enforcetest

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/enforce"
	"github.com/mailjail/mailjail/internal/store"
)

// At is the clock of every state these helpers make.
var At = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

// Bans returns n distinct bans, one in eight an IPv6 /64 and the rest
// single IPv4 addresses, each lasting one hour from At (one in 100
// permanent), numbered from first.
func Bans(first, n int) []store.Ban {
	out := make([]store.Ban, 0, n)
	for i := first; i < first+n; i++ {
		var p netip.Prefix
		if i%8 == 7 {
			a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)})
			p = netip.PrefixFrom(a, 64)
		} else {
			p = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32)
		}
		b := store.Ban{ID: int64(i + 1), Jail: "bench", Prefix: p, Since: At, Until: At.Add(time.Hour), Reason: "bench"}
		if i%100 == 99 {
			b.Until = time.Time{}
		}
		out = append(out, b)
	}
	return out
}

// Sync1 measures t's Sync of one more ban over base bans it already
// holds, each iteration a new ban (the list grows by b.N), and reports
// the p50 and p99 of those syncs in milliseconds.
func Sync1(b *testing.B, t enforce.Target, base int) {
	b.Helper()
	ctx := context.Background()
	bans := Bans(0, base)
	if err := t.Sync(ctx, enforce.State{Bans: bans, At: At}); err != nil {
		b.Fatalf("first sync of %d bans: %v", base, err)
	}
	samples := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		bans = append(bans, Bans(base+i, 1)...)
		start := time.Now()
		if err := t.Sync(ctx, enforce.State{Bans: bans, At: At}); err != nil {
			b.Fatalf("sync %d: %v", i, err)
		}
		samples = append(samples, time.Since(start))
	}
	b.StopTimer()
	ReportLatency(b, samples)
}

// Burst measures a Sync of n bans into a target made empty by
// newTarget for each iteration (its making is not timed).
func Burst(b *testing.B, newTarget func() enforce.Target, n int) {
	b.Helper()
	bans := Bans(0, n)
	for range b.N {
		b.StopTimer()
		t := newTarget()
		b.StartTimer()
		if err := t.Sync(context.Background(), enforce.State{Bans: bans, At: At}); err != nil {
			b.Fatalf("sync of %d bans: %v", n, err)
		}
	}
	b.ReportMetric(float64(n), "bans/op")
}

// ReportLatency reports the p50 and p99 (nearest rank) of samples in
// milliseconds, as "p50-ms" and "p99-ms".
func ReportLatency(b *testing.B, samples []time.Duration) {
	b.Helper()
	if len(samples) == 0 {
		return
	}
	p50, p99 := Percentile(samples, 50), Percentile(samples, 99)
	b.ReportMetric(ms(p50), "p50-ms")
	b.ReportMetric(ms(p99), "p99-ms")
}

// Percentile is the nearest-rank pth percentile of samples.
func Percentile(samples []time.Duration, p int) time.Duration {
	if len(samples) == 0 {
		return 0
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	rank := (p*len(s) + 99) / 100
	return s[max(rank, 1)-1]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
