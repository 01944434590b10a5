package main

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/internal/storetest"
	"github.com/mailjail/mailjail/internal/testutil"
)

// kill -9 at random points while a writer appends events without pause,
// restart, again and again: when the last daemon has caught up, the strikes
// stored equal the events written. Each event has its own client address,
// so a lost or doubly counted event is named. The events written while the
// daemon was down are in the count too (read on restart, not skipped).
func TestKill9MidStreamCountsEveryEventOnce(t *testing.T) {
	const (
		kills     = 5
		burst     = 40                    // events per write burst
		burstTick = 10 * time.Millisecond // so about 4,000 events a second
	)
	// No bans: a banned address's further events are not counted.
	e := newEnv(t, func(_ *env, c *testutil.Config) { c.Jails[0].MaxRetry = 1000000 })

	d := e.startDaemon()
	db := openStoreRO(t, e.db)

	// The writer: bursts of events at full speed, one write(2) per line.
	var written atomic.Int64
	stop := make(chan struct{})
	writerDone := make(chan error, 1)
	go func() {
		f, err := os.OpenFile(e.log, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			writerDone <- err
			return
		}
		defer f.Close()
		tick := time.NewTicker(burstTick)
		defer tick.Stop()
		for i := int64(0); ; {
			for range burst {
				if _, err := f.WriteString(restartEvent(i)); err != nil {
					writerDone <- err
					return
				}
				i++
				written.Store(i)
			}
			select {
			case <-stop:
				writerDone <- nil
				return
			case <-tick.C:
			}
		}
	}()
	stopWriter := func() {
		select {
		case <-stop:
			return
		default:
		}
		close(stop)
		if err := <-writerDone; err != nil {
			t.Fatalf("writer: %v", err)
		}
	}
	t.Cleanup(func() {
		select {
		case <-stop:
		default:
			close(stop)
			<-writerDone
		}
	})

	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 5))
	t.Logf("kill delays from seed %d", seed)
	var killedAt []string
	for k := range kills {
		// Each run makes progress first, then dies at a random moment:
		// in a batch, between batches, while the writer is ahead.
		before := storedStrikes(t, db)
		e.waitFor("the daemon to count new events", func() bool { return storedStrikes(t, db) > before })
		wait := time.Duration(rng.Int64N(int64(400 * time.Millisecond)))
		if k == 0 {
			wait = 0 // right after the first strikes of a run
		}
		timer := time.NewTimer(wait)
		<-timer.C
		e.kill9(d)
		killedAt = append(killedAt, fmt.Sprintf("%d/%d", storedStrikes(t, db), written.Load()))
		d = e.startDaemon()
	}
	stopWriter()
	total := written.Load()

	// Poll the database (cheap), then ask status: a CLI process per poll
	// would compete with the daemon catching up.
	var got int64
	testutil.WaitFor(20*time.Second, func() bool { return storedStrikes(t, db) >= total })
	if got = statusStrikes(e); got != total {
		t.Fatalf("%d events written, %d strikes stored (status)\n%s\nkilled at stored/written %v\ndaemon log:\n%s",
			total, got, strikeDiff(t, db, total), killedAt, e.daemonLog())
	}
	// Caught up; nothing may be counted again afterwards.
	var n int64
	if !testutil.HoldsFor(time.Second, func() bool { n = storedStrikes(t, db); return n == total }) {
		t.Fatalf("%d events written, %d strikes stored after catching up\n%s", total, n, strikeDiff(t, db, total))
	}
	if diff := strikeDiff(t, db, total); diff != "" {
		t.Fatalf("%d strikes stored for %d events, but not one per event:\n%s", total, total, diff)
	}
	t.Logf("%d kill -9 and restarts (stored/written at each kill: %v): %d events written, %d strikes stored", kills, killedAt, total, got)
}

func restartEvent(i int64) string {
	a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
	return testutil.RspamdRatelimit{IP: a.String(), ID: fmt.Sprintf("m%d@x", i), Task: uint32(i + 0x100000)}.Line()
}

// statusStrikes is the jail's strikes_stored as `mailjail status --json` reports it.
func statusStrikes(e *env) int64 {
	e.t.Helper()
	var s struct {
		Jails []struct {
			Name          string `json:"name"`
			StrikesStored int64  `json:"strikes_stored"`
		} `json:"jails"`
	}
	e.mustJSON(&s, "status")
	for _, j := range s.Jails {
		if j.Name == "rspamd-ratelimit" {
			return j.StrikesStored
		}
	}
	e.t.Fatalf("status has no jail rspamd-ratelimit: %+v", s)
	return 0
}

// openStoreRO opens the database read-only beside the daemons (WAL: readers
// do not block the writer, and survive its kill -9).
func openStoreRO(t *testing.T, path string) *store.Store {
	t.Helper()
	st, err := store.Open(path, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func storedStrikes(t *testing.T, st *store.Store) int64 {
	t.Helper()
	c, err := st.CountsByJail()
	if err != nil {
		t.Fatal(err)
	}
	return c["rspamd-ratelimit"].Strikes
}

// strikeDiff lists the events 0..written-1 not stored exactly once.
func strikeDiff(t *testing.T, st *store.Store, written int64) string {
	t.Helper()
	diff, err := storetest.CountDiff(st, written, func(i int64) netip.Addr {
		return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
	})
	if err != nil {
		t.Fatal(err)
	}
	return diff
}
