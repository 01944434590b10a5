package enforce_test

import (
	"path/filepath"
	"strconv"
	"testing"

	"github.com/mailjail/mailjail/internal/enforce"
	"github.com/mailjail/mailjail/internal/enforce/enforcetest"
)

// The rspamd map's figures, measured as every other target's.
func BenchmarkMapSync1(b *testing.B) {
	enforcetest.Sync1(b, enforce.NewMapTarget(filepath.Join(b.TempDir(), "ip.map")), 1000)
}

func BenchmarkMapBurst10k(b *testing.B) {
	dir := b.TempDir()
	i := 0
	enforcetest.Burst(b, func() enforce.Target {
		i++
		return enforce.NewMapTarget(filepath.Join(dir, strconv.Itoa(i)+".map"))
	}, 10000)
}

func BenchmarkMapEnforced(b *testing.B) {
	enforcetest.Enforced(b, enforce.NewMapTarget(filepath.Join(b.TempDir(), "ip.map")), 1000)
}

func BenchmarkMapBurstEnforced10k(b *testing.B) {
	dir := b.TempDir()
	i := 0
	enforcetest.BurstEnforced(b, func() enforce.Target {
		i++
		return enforce.NewMapTarget(filepath.Join(dir, strconv.Itoa(i)+".map"))
	}, 10000, 100)
}
