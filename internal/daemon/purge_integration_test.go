package daemon

import (
	"context"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/internal/testutil"
)

// A minute of the daemon's clock after its start, its loop asks for a
// purge: history older than dbpurgeage goes, the rest stays, and status
// tells the purge.
func TestDaemonPurgesOldHistory(t *testing.T) {
	dir := shortDir(t)
	cfg := testConfig(t, dir, "")
	if err := os.WriteFile(cfg.Jails[0].LogPath[0], nil, 0o644); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	st, err := store.Open(cfg.Global.Database, store.Options{Durable: true})
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddr("192.0.2.7")
	err = st.Update(context.Background(), func(tx *store.Tx) error {
		for _, at := range []time.Time{now.Add(-40 * 24 * time.Hour), now.Add(-24 * time.Hour)} {
			if err := tx.AddStrike(store.Strike{Jail: "rl", Addr: a, At: at, Bucket: "ip", Line: "l"}); err != nil {
				return err
			}
		}
		return nil
	})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	clock := testutil.NewFakeClock(now)
	runDaemonWith(t, cfg, Options{Clock: clock})
	waitServing(t, cfg)
	testutil.Eventually(t, 15*time.Second, "a purge", func() bool {
		clock.Advance(time.Minute)
		return status(t, cfg).LastPurge != nil
	})
	// (Advancing the clock may have asked for a second purge, which
	// found nothing left: the rows left tell.)
	s := status(t, cfg)
	if p := s.LastPurge; p.Error != "" || s.Jails[0].StrikesStored != 1 {
		t.Errorf("last purge %+v, %d strikes stored; want the old one removed, the young one kept", p, s.Jails[0].StrikesStored)
	}
}
