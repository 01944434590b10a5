package daemon

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/internal/testutil"
)

// The purger stops between two transactions when the daemon stops, and
// the purger of the next start removes the rest.
func TestPurgerStopsAndResumesAfterRestart(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "m.db"), store.Options{Durable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	if err := st.Update(context.Background(), func(tx *store.Tx) error {
		for i := range 1000 {
			a := netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
			if err := tx.AddStrike(store.Strike{Jail: "rl", Addr: a, At: now.Add(-40*24*time.Hour + time.Duration(i)*time.Second)}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	stored := func() int64 {
		c, err := st.CountsByJail()
		if err != nil {
			t.Fatal(err)
		}
		return c["rl"].Strikes
	}
	r := store.Retention{Now: now, Age: 30 * 24 * time.Hour, FindTime: map[string]time.Duration{"rl": 10 * time.Minute}, MaxMatches: 1}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	clock := testutil.NewFakeClock(now)

	ctx, stop := context.WithCancel(context.Background())
	batches := 0
	p := newPurger(st, log, clock, store.PurgeOptions{Batch: 100, OnBatch: func(what string, _ int64) {
		if what == "strikes" {
			if batches++; batches == 3 {
				stop() // the daemon stops during the purge
			}
		}
	}})
	done := make(chan struct{})
	go func() { p.run(ctx); close(done) }()
	p.request(r)
	<-done
	if n := stored(); n != 700 {
		t.Fatalf("%d strikes left after stopping in the 3rd batch, want 700", n)
	}
	if last := p.lastPurge(); !last.At.IsZero() {
		t.Errorf("a stopped purge is recorded as done: %+v", last)
	}

	ctx, stop = context.WithCancel(context.Background())
	defer stop()
	p = newPurger(st, log, clock, store.PurgeOptions{Batch: 100})
	done = make(chan struct{})
	go func() { p.run(ctx); close(done) }()
	p.request(r)
	if !testutil.WaitFor(10*time.Second, func() bool { return !p.lastPurge().At.IsZero() }) {
		t.Fatal("the purge after the restart did not end")
	}
	if n, last := stored(), p.lastPurge(); n != 0 || last.Removed != 700 || last.Err != "" {
		t.Errorf("after the restart's purge: %d strikes left, last purge %+v", n, last)
	}
	stop()
	<-done
}

// A request while one waits replaces it: the purger never queues more
// than the newest.
func TestPurgeRequestKeepsTheNewest(t *testing.T) {
	p := newPurger(nil, nil, nil, store.PurgeOptions{})
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for i := range 3 {
		p.request(store.Retention{Now: t0.Add(time.Duration(i) * time.Minute)})
	}
	if r := <-p.req; !r.Now.Equal(t0.Add(2 * time.Minute)) {
		t.Errorf("request taken = %s, want the newest", r.Now)
	}
	select {
	case r := <-p.req:
		t.Errorf("a second request waits: %s", r.Now)
	default:
	}
}
