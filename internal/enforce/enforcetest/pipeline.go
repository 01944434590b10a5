package enforcetest

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/enforce"
	"github.com/mailjail/mailjail/internal/engine"
	"github.com/mailjail/mailjail/internal/store"
)

// Enforced measures what an operator sees: the time from a committed
// ban's Apply to a started enforcer's target holding it, over base bans
// already held, for b.N bans one after another; p50 and p99 in ms.
func Enforced(b *testing.B, t enforce.Target, base int) {
	b.Helper()
	w := &watched{Target: t, synced: make(chan int, 1)}
	src := &source{bans: Bans(0, base)}
	e := enforce.New([]enforce.Target{w}, src, nil, enforce.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ctx := context.Background()
	if err := e.SyncAll(ctx); err != nil {
		b.Fatalf("first sync of %d bans: %v", base, err)
	}
	e.Start()
	defer e.Stop()
	samples := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		ban := Bans(base+i, 1)
		src.add(ban)
		drain(w.synced)
		start := time.Now()
		if err := e.Apply(ctx, engine.Change{Bans: ban, At: At}); err != nil {
			b.Fatal(err)
		}
		for n := 0; n < base+i+1; {
			n = <-w.synced
		}
		samples = append(samples, time.Since(start))
	}
	b.StopTimer()
	ReportLatency(b, samples)
}

// BurstEnforced commits n bans in batches of batch (as a botnet run
// arrives, one log batch after another) to a started enforcer, and
// measures the time until its target holds them all and the syncs it
// took ("syncs/op": the writes, batches, pipelines or reloads).
func BurstEnforced(b *testing.B, newTarget func() enforce.Target, n, batch int) {
	b.Helper()
	all := Bans(0, n)
	var syncs int
	for range b.N {
		b.StopTimer()
		w := &watched{Target: newTarget(), synced: make(chan int, 1)}
		src := &source{}
		e := enforce.New([]enforce.Target{w}, src, nil, enforce.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
		e.Start()
		b.StartTimer()
		for i := 0; i < n; i += batch {
			part := all[i:min(i+batch, n)]
			src.add(part)
			if err := e.Apply(context.Background(), engine.Change{Bans: part, At: At}); err != nil {
				b.Fatal(err)
			}
		}
		for got := 0; got < n; {
			got = <-w.synced
		}
		b.StopTimer()
		syncs += w.count()
		e.Stop()
	}
	b.ReportMetric(float64(syncs)/float64(b.N), "syncs/op")
}

// source is the enforcer's view of the database: the bans committed.
type source struct {
	mu   sync.Mutex
	bans []store.Ban
}

func (s *source) add(bans []store.Ban) {
	s.mu.Lock()
	s.bans = append(s.bans, bans...)
	s.mu.Unlock()
}

func (s *source) ActiveBans() []store.Ban {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.bans)
}

func (s *source) ActiveSuspensions() []store.Suspension { return nil }

// watched reports the number of bans each successful sync wrote.
type watched struct {
	enforce.Target
	synced chan int
	mu     sync.Mutex
	syncs  int
}

func (w *watched) Sync(ctx context.Context, s enforce.State) error {
	if err := w.Target.Sync(ctx, s); err != nil {
		return err
	}
	w.mu.Lock()
	w.syncs++
	w.mu.Unlock()
	drain(w.synced)
	w.synced <- len(s.Bans)
	return nil
}

func (w *watched) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.syncs
}

// drain empties a one-slot channel, so that the next value is fresh.
func drain(c chan int) {
	select {
	case <-c:
	default:
	}
}
