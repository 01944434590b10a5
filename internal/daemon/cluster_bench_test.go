package daemon

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/control"
	"github.com/mailjail/mailjail/internal/enforce/enforcetest"
	"github.com/mailjail/mailjail/internal/redisconn/redistest"
	"github.com/mailjail/mailjail/internal/testutil"
)

// BenchmarkClusterPropagation measures a ban made on node a (through its
// control socket, as `mailjail ban` does) until node b's map holds it,
// beside the same ban until a's own map holds it (the peer, in the same
// run):
// a's commit and Redis script, publish/subscribe, b's mirror commit and
// its map rewrite. Reported as p50/p99 over b.N bans; bench/cluster.sh
// runs it longer. What bounds it on loopback is the two SQLite commits
// (synchronous = FULL: an fsync each) and b's atomic map rewrite, not
// Redis.
func BenchmarkClusterPropagation(b *testing.B) {
	srv := redistest.Start(b)
	cfgA, _ := clusterNodeConfig(b, "a", srv.Addr)
	cfgB, _ := clusterNodeConfig(b, "b", srv.Addr)
	synced := make(chan time.Time, 64)
	runDaemonWith(b, cfgA, Options{})
	runDaemonWith(b, cfgB, Options{OnMap: func(t time.Time) {
		select {
		case synced <- t:
		default:
		}
	}})
	waitServing(b, cfgA)
	waitServing(b, cfgB)
	samples, local := make([]time.Duration, 0, b.N), make([]time.Duration, 0, b.N)
	i := 0
	for b.Loop() {
		i++
		addr := fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
		for len(synced) > 0 {
			<-synced
		}
		start := time.Now()
		callOp(b, cfgA, control.OpBan, control.Request{Addrs: []string{addr}, For: "1h"})
		// The ban is in a's own map when the call returns: the peer.
		local = append(local, time.Since(start))
		for !slices.Contains(mapAddrs(b, cfgB), addr) {
			select {
			case <-synced:
			case <-time.After(testutil.Scale(15 * time.Second)):
				b.Fatalf("%s not in b's map after 15s", addr)
			}
		}
		samples = append(samples, time.Since(start))
	}
	enforcetest.ReportLatency(b, samples)
	b.ReportMetric(float64(enforcetest.Percentile(local, 50))/float64(time.Millisecond), "local-p50-ms")
	b.ReportMetric(float64(enforcetest.Percentile(local, 99))/float64(time.Millisecond), "local-p99-ms")
}
