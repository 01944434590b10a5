package nftset

import (
	"os/exec"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/enforce"
	"github.com/mailjail/mailjail/internal/enforce/enforcetest"
)

// The nftables target's figures, measured as every other target's, in a
// network namespace of the benchmark's own (skipped without root).

func BenchmarkSync1(b *testing.B) {
	_, fd := netns(b)
	enforcetest.Sync1(b, New(Config{NetNS: fd}), 1000)
}

func BenchmarkBurst10k(b *testing.B) {
	ns, fd := netns(b)
	var last *Set
	enforcetest.Burst(b, func() enforce.Target {
		// From empty: what an earlier iteration wrote is gone.
		if out, err := exec.Command("ip", "netns", "exec", ns, "nft", "flush", "ruleset").CombinedOutput(); err != nil {
			b.Fatalf("nft flush ruleset: %v: %s", err, out)
		}
		last = New(Config{NetNS: fd})
		return last
	}, 10000)
	b.ReportMetric(1, "batches/op")
	b.ReportMetric(float64(last.wrote.msgs), "netlink-msgs/op")
	b.ReportMetric(float64(last.Entries()), "intervals/op")
}

func BenchmarkEnforced(b *testing.B) {
	_, fd := netns(b)
	enforcetest.Enforced(b, New(Config{NetNS: fd}), 1000)
}

func BenchmarkBurstEnforced10k(b *testing.B) {
	ns, fd := netns(b)
	enforcetest.BurstEnforced(b, func() enforce.Target {
		if out, err := exec.Command("ip", "netns", "exec", ns, "nft", "flush", "ruleset").CombinedOutput(); err != nil {
			b.Fatalf("nft flush ruleset: %v: %s", err, out)
		}
		return New(Config{NetNS: fd})
	}, 10000, 100)
}

// BenchmarkDrifted10k is the reconciler's check every second, with 10,000
// bans held: "full-ms" when the ruleset generation moved (once after each
// Sync, or when another program committed), "gen-ms" when it did not.
func BenchmarkDrifted10k(b *testing.B) {
	_, fd := netns(b)
	s := New(Config{NetNS: fd})
	if err := s.Sync(b.Context(), enforce.State{Bans: enforcetest.Bans(0, 10000), At: enforcetest.At}); err != nil {
		b.Fatal(err)
	}
	var full, gen time.Duration
	for range b.N {
		s.mu.Lock()
		s.fullCheck = true
		s.mu.Unlock()
		start := time.Now()
		if s.Drifted() {
			b.Fatal("drifted")
		}
		mid := time.Now()
		if s.Drifted() {
			b.Fatal("drifted")
		}
		full, gen = full+mid.Sub(start), gen+time.Since(mid)
	}
	b.ReportMetric(float64(full)/float64(b.N)/1e6, "full-ms")
	b.ReportMetric(float64(gen)/float64(b.N)/1e6, "gen-ms")
}
