package daemon

import (
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/control"
	"github.com/mailjail/mailjail/internal/redisconn/redistest"
	"github.com/mailjail/mailjail/internal/testutil"
)

// clusterNodeConfig is node's configuration in a cluster on redisAddr:
// one jail banning at the first event of its own log.
func clusterNodeConfig(t testing.TB, node, redisAddr string) (*config.Config, string) {
	t.Helper()
	return clusterNodeConfigWith(t, node, redisAddr, 1, "")
}

// clusterNodeConfigWith is clusterNodeConfig with the jail's maxretry
// and more [global] lines.
func clusterNodeConfigWith(t testing.TB, node, redisAddr string, maxretry int, global string) (*config.Config, string) {
	t.Helper()
	dir := shortDir(t)
	log := filepath.Join(dir, "r.log")
	appendLog(t, log, "")
	cluster := fmt.Sprintf("[redis]\naddress = %q\nkey_prefix = \"t_\"\ntimeout = \"500ms\"\n[cluster]\nnode = %q\nresync_interval = \"2s\"\n", redisAddr, node)
	return reloadConfig(t, dir, "ignoreself = false\n"+global+jailTOML("r", log, fmt.Sprintf("maxretry = %d\nbantime = \"1h\"", maxretry))+cluster), log
}

// startNodes runs a daemon of each configuration and waits until each
// answers.
func startNodes(t testing.TB, cfgs ...*config.Config) {
	t.Helper()
	for _, cfg := range cfgs {
		runDaemon(t, cfg)
	}
	for _, cfg := range cfgs {
		waitServing(t, cfg)
	}
}

// mapHas reports whether the map of cfg's daemon holds addr.
func mapHas(t testing.TB, cfg *config.Config, addr string) bool {
	t.Helper()
	return slices.Contains(mapAddrs(t, cfg), addr)
}

func callOp(t testing.TB, cfg *config.Config, op string, req control.Request) *control.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testutil.Scale(30*time.Second))
	defer cancel()
	resp, err := control.Call(ctx, cfg.Global.Socket, op, req)
	if err != nil || !resp.OK {
		t.Fatalf("%s: %v %+v", op, err, resp)
	}
	return resp
}

// Three nodes share one Redis: a ban made on one is in every node's map,
// an unban on another clears all three; while Redis is down each node
// keeps its bans and bans on its own, and once Redis is back (empty: it
// keeps nothing on disk) the bans made meanwhile reach the others and no
// map loses an entry.
func TestClusterSharesBansAndUnbans(t *testing.T) {
	srv := redistest.Start(t)
	_, port, _ := net.SplitHostPort(srv.Addr)
	names := []string{"a", "b", "c"}
	cfgs := map[string]*config.Config{}
	logs := map[string]string{}
	for _, n := range names {
		cfgs[n], logs[n] = clusterNodeConfig(t, n, srv.Addr)
		runDaemon(t, cfgs[n])
	}
	for _, n := range names {
		waitServing(t, cfgs[n])
	}
	inAll := func(addr string, want bool) func() bool {
		return func() bool {
			for _, n := range names {
				if slices.Contains(mapAddrs(t, cfgs[n]), addr) != want {
					return false
				}
			}
			return true
		}
	}
	start := time.Now()
	appendLog(t, logs["a"], eventLine("198.51.100.1"))
	testutil.Eventually(t, 15*time.Second, "a's ban in every map", inAll("198.51.100.1", true))
	t.Logf("ban on a to every map: %s", time.Since(start).Round(time.Millisecond))

	start = time.Now()
	callOp(t, cfgs["b"], control.OpUnban, control.Request{Addrs: []string{"198.51.100.1"}})
	testutil.Eventually(t, 15*time.Second, "b's unban in every map", inAll("198.51.100.1", false))
	t.Logf("unban on b to every map: %s", time.Since(start).Round(time.Millisecond))

	// A suspension made on a, in every account map; released on c.
	const user = "stolen@example.com"
	accountIn := func(want bool) func() bool {
		return func() bool {
			for _, n := range names {
				if strings.Contains(testutil.ReadFileOrEmpty(t, cfgs[n].Global.AccountMapFile), user) != want {
					return false
				}
			}
			return true
		}
	}
	callOp(t, cfgs["a"], control.OpSuspend, control.Request{Accounts: []string{user}, For: "1h"})
	testutil.Eventually(t, 15*time.Second, "a's suspension in every account map", accountIn(true))
	callOp(t, cfgs["c"], control.OpRelease, control.Request{Accounts: []string{user}})
	testutil.Eventually(t, 15*time.Second, "c's release in every account map", accountIn(false))

	// One ban in force before the outage, one made during it.
	appendLog(t, logs["c"], eventLine("198.51.100.3"))
	testutil.Eventually(t, 15*time.Second, "c's ban in every map", inAll("198.51.100.3", true))
	srv.Stop()
	testutil.Eventually(t, 15*time.Second, "a to see Redis down", func() bool {
		c := status(t, cfgs["a"]).Cluster
		return c != nil && !c.Connected
	})
	appendLog(t, logs["a"], eventLine("198.51.100.2"))
	testutil.Eventually(t, 15*time.Second, "a's ban during the outage in a's map", func() bool { return slices.Contains(mapAddrs(t, cfgs["a"]), "198.51.100.2") })
	if !inAll("198.51.100.3", true)() {
		t.Fatal("a map lost a ban while Redis was down")
	}
	redistest.Start(t, "--port", port)
	testutil.Eventually(t, 30*time.Second, "the outage's ban in every map", inAll("198.51.100.2", true))
	if !inAll("198.51.100.3", true)() {
		t.Fatal("a map lost a ban when Redis came back empty")
	}
	// Peers beat every 5 s; after the restart Redis knows those that
	// beat since.
	peers := func(s *control.ClusterStatus) string {
		var out []string
		for _, p := range s.Peers {
			out = append(out, p.Node)
		}
		return strings.Join(out, ",")
	}
	// A call that was waiting on the dead server may fail after the
	// first success: connected is the last exchange's outcome.
	testutil.Eventually(t, 30*time.Second, "b to see the three peers, connected", func() bool {
		s := status(t, cfgs["b"]).Cluster
		return s != nil && peers(s) == "a,b,c" && s.Connected
	})
	if s := status(t, cfgs["b"]).Cluster; s.Node != "b" || s.Received == 0 || s.LastResync == nil {
		t.Fatalf("b's cluster status %+v", s)
	}
	// One ban record per node of a's ban, mirrored with its origin.
	for _, n := range names {
		if got := activeBansOf(t, cfgs[n])["r"]; got != 2 {
			t.Errorf("node %s: %d active bans, want 2", n, got)
		}
	}
}

// Ten strikes spread over three nodes (4, 3, 3) ban the address once,
// cluster-wide: one node makes the ban, the others mirror it, and every
// map holds it.
func TestClusterStrikesCountTogether(t *testing.T) {
	srv := redistest.Start(t)
	names := []string{"a", "b", "c"}
	cfgs := map[string]*config.Config{}
	logs := map[string]string{}
	for _, n := range names {
		cfgs[n], logs[n] = clusterNodeConfigWith(t, n, srv.Addr, 10, "")
		runDaemon(t, cfgs[n])
	}
	for _, n := range names {
		waitServing(t, cfgs[n])
		testutil.Eventually(t, 15*time.Second, n+" to reach Redis", func() bool {
			c := status(t, cfgs[n]).Cluster
			return c != nil && c.Connected
		})
	}
	const addr = "198.51.100.10"
	for i, n := range []string{"a", "b", "c", "a", "b", "c", "a", "b", "c"} {
		appendLog(t, logs[n], eventLine(addr))
		// Each strike is counted before the next is written, so none
		// of the nine can be the tenth.
		testutil.Eventually(t, 15*time.Second, "strike counted", func() bool {
			total := 0
			for _, m := range names {
				total += int(jailStatus(status(t, cfgs[m]), "r").StrikesStored)
			}
			return total == i+1
		})
	}
	for _, n := range names {
		if got := mapAddrs(t, cfgs[n]); slices.Contains(got, addr) {
			t.Fatalf("banned after 9 strikes on %s", n)
		}
	}
	appendLog(t, logs["a"], eventLine(addr))
	testutil.Eventually(t, 15*time.Second, "the ban in every map", func() bool {
		for _, n := range names {
			if !slices.Contains(mapAddrs(t, cfgs[n]), addr) {
				return false
			}
		}
		return true
	})
	made := 0
	for _, n := range names {
		for _, b := range activeBans(t, cfgs[n]) {
			if b.Origin == "" {
				made++
			}
		}
	}
	if made != 1 {
		t.Fatalf("%d nodes made the ban, want 1", made)
	}
}

// proxy forwards TCP connections to a server until cut: then it closes
// them and refuses new ones, as a partition would, until healed on the
// same address.
type proxy struct {
	t      testing.TB
	addr   string
	target string
	mu     sync.Mutex
	ln     net.Listener
	conns  []net.Conn
}

func newProxy(t testing.TB, target string) *proxy {
	p := &proxy{t: t, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(redistest.FreePort(t))), target: target}
	p.heal()
	t.Cleanup(p.cut)
	return p
}

func (p *proxy) heal() {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go func() { io.Copy(s, c); s.Close() }()
			go func() { io.Copy(c, s); c.Close() }()
		}
	}()
}

func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// A node cut off from Redis keeps its bans, bans on its own, and once the
// partition heals catches up both ways: it gets the ban made elsewhere
// meanwhile, and the others get its own.
func TestClusterPartitionedNodeCatchesUp(t *testing.T) {
	srv := redistest.Start(t)
	px := newProxy(t, srv.Addr)
	cfgA, logA := clusterNodeConfig(t, "a", srv.Addr)
	cfgC, logC := clusterNodeConfig(t, "c", px.addr)
	startNodes(t, cfgA, cfgC)
	has := func(cfg *config.Config, addr string) bool { return mapHas(t, cfg, addr) }
	appendLog(t, logA, eventLine("198.51.100.20"))
	testutil.Eventually(t, 15*time.Second, "a's ban on c", func() bool { return has(cfgC, "198.51.100.20") })

	px.cut()
	testutil.Eventually(t, 15*time.Second, "c to see the partition", func() bool {
		s := status(t, cfgC).Cluster
		return s != nil && !s.Connected
	})
	appendLog(t, logA, eventLine("198.51.100.21"))
	appendLog(t, logC, eventLine("198.51.100.22"))
	testutil.Eventually(t, 15*time.Second, "each node's own ban", func() bool { return has(cfgA, "198.51.100.21") && has(cfgC, "198.51.100.22") })
	if !has(cfgC, "198.51.100.20") {
		t.Fatal("the partitioned node lost a ban")
	}
	if has(cfgC, "198.51.100.21") || has(cfgA, "198.51.100.22") {
		t.Fatal("a ban crossed the partition")
	}
	px.heal()
	testutil.Eventually(t, 30*time.Second, "both bans on both nodes", func() bool {
		return has(cfgA, "198.51.100.22") && has(cfgC, "198.51.100.21") && has(cfgC, "198.51.100.20")
	})
	// Each strike was counted once, on the node that read it.
	for _, cfg := range []*config.Config{cfgA, cfgC} {
		if got := jailStatus(status(t, cfg), "r").StrikesStored; got != map[*config.Config]int64{cfgA: 2, cfgC: 1}[cfg] {
			t.Errorf("%s: %d strikes stored", cfg.Cluster.Node, got)
		}
	}
}

// Bans a tripped circuit breaker holds on one node stay off the other
// nodes too (a broken filter must not lock clients out everywhere) until
// mailjail resume there shares them.
func TestClusterHeldBansNotSharedUntilResume(t *testing.T) {
	srv := redistest.Start(t)
	cfgA, logA := clusterNodeConfigWith(t, "a", srv.Addr, 1, "breaker_bans = 1\nbreaker_window = \"1h\"\n")
	cfgB, _ := clusterNodeConfig(t, "b", srv.Addr)
	startNodes(t, cfgA, cfgB)
	has := func(cfg *config.Config, addr string) bool { return mapHas(t, cfg, addr) }
	appendLog(t, logA, eventLine("198.51.100.30"))
	testutil.Eventually(t, 15*time.Second, "the first ban on b", func() bool { return has(cfgB, "198.51.100.30") })
	appendLog(t, logA, eventLine("198.51.100.31"))
	testutil.Eventually(t, 15*time.Second, "a's breaker to trip", func() bool { return status(t, cfgA).Breaker != nil })
	tripped := time.Now()
	if got := activeBansOf(t, cfgA)["r"]; got != 2 {
		t.Fatalf("a recorded %d bans, want 2", got)
	}
	// A manual ban is never held: once it reaches b, so would have the
	// held one published before it; and a resync of both has run since.
	callOp(t, cfgA, control.OpBan, control.Request{Addrs: []string{"198.51.100.32"}, For: "1h"})
	testutil.Eventually(t, 15*time.Second, "a's manual ban on b, and a resync of both since the trip", func() bool {
		resynced := func(cfg *config.Config) bool {
			c := status(t, cfg).Cluster
			return c != nil && c.LastResync != nil && c.LastResync.After(tripped)
		}
		return has(cfgB, "198.51.100.32") && resynced(cfgA) && resynced(cfgB)
	})
	if has(cfgB, "198.51.100.31") || has(cfgA, "198.51.100.31") {
		t.Fatal("a held ban reached a map")
	}
	callOp(t, cfgA, control.OpResume, control.Request{By: "test"})
	testutil.Eventually(t, 15*time.Second, "the resumed ban on b", func() bool { return has(cfgB, "198.51.100.31") })
}
