package e2e

import (
	"os/exec"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// awaitSameKeys waits until a target holds exactly the bans the database lists (after a
// kill -9 and a restart, say): listed reads `mailjail list`, held reads the target, each
// keyed by address. It fails naming what is missing and what is extra, and returns both
// readings.
func awaitSameKeys[V any](t *testing.T, what string, listed func() map[string]bool, held func() map[string]V, timeout time.Duration) (map[string]bool, map[string]V) {
	t.Helper()
	var l map[string]bool
	var h map[string]V
	same := func() bool {
		if len(l) != len(h) {
			return false
		}
		for a := range l {
			if _, in := h[a]; !in {
				return false
			}
		}
		return true
	}
	if waitFor(func() bool { l, h = listed(), held(); return same() }, timeout) {
		return l, h
	}
	var missing, extra []string
	for a := range l {
		if _, in := h[a]; !in {
			missing = append(missing, a)
		}
	}
	for a := range h {
		if !l[a] {
			extra = append(extra, a)
		}
	}
	t.Fatalf("%s holds %d entries, the database %d bans; missing %d (%.5v), extra %d (%.5v)",
		what, len(h), len(l), len(missing), missing, len(extra), extra)
	return l, h
}

// banBurstAndKill bans addrs through the CLI in commands of 50, 8 at a time, and kills the
// daemon with SIGKILL once 10 commands have succeeded (or after the last one). cmd makes the
// command for one chunk. Commands cut off by the kill may fail, or find no daemon and change
// the database themselves: the database says what was banned. It returns how many commands
// succeeded.
func banBurstAndKill(d *daemon, addrs []string, cmd func(chunk []string) *exec.Cmd) int64 {
	var done atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	killed := false
	for chunk := range slices.Chunk(addrs, 50) {
		if killed {
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if cmd(chunk).Run() == nil {
				done.Add(1)
			}
		})
		if done.Load() >= 10 {
			d.kill()
			killed = true
		}
	}
	if !killed {
		d.kill()
	}
	wg.Wait()
	return done.Load()
}
