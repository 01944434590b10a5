package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The nftables target end to end: the daemon runs in a network namespace
// the test creates, with a veth pair to it (198.18.61.1 outside, .2
// inside) and a TCP listener inside; the client is the test, outside.
const (
	nftOutside = "198.18.61.1"
	nftInside  = "198.18.61.2"
)

// nftNet is a namespace with a listener reachable over a veth pair.
type nftNet struct {
	ns   string
	port int
}

var nftSeq atomic.Int64

// newNftNet creates the namespace, the veth pair and the listener,
// all removed when t ends.
func newNftNet(t *testing.T) *nftNet {
	t.Helper()
	requireE2E(t)
	for _, bin := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is not installed (e2e/setup.sh installs nftables and iproute2): %v", bin, err)
		}
	}
	n := nftSeq.Add(1)
	ns := fmt.Sprintf("mj-e2e-%d-%d", os.Getpid(), n)
	out, in := fmt.Sprintf("mjo%d-%d", os.Getpid()%100000, n), fmt.Sprintf("mji%d-%d", os.Getpid()%100000, n)
	run := func(argv ...string) {
		t.Helper()
		if b, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(argv, " "), err, b)
		}
	}
	run("ip", "netns", "add", ns)
	t.Cleanup(func() {
		// Deleting the namespace deletes the veth end in it, and so the pair.
		if b, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns, err, b)
		}
	})
	run("ip", "link", "add", out, "type", "veth", "peer", "name", in)
	run("ip", "link", "set", in, "netns", ns)
	run("ip", "addr", "add", nftOutside+"/30", "dev", out)
	run("ip", "link", "set", out, "up")
	run("ip", "-n", ns, "addr", "add", nftInside+"/30", "dev", in)
	run("ip", "-n", ns, "link", "set", in, "up")
	run("ip", "-n", ns, "link", "set", "lo", "up")

	ln := listenIn(t, ns, nftInside+":0")
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return &nftNet{ns: ns, port: ln.Addr().(*net.TCPAddr).Port}
}

// listenIn opens a TCP listener inside namespace ns: the socket belongs
// to the namespace of the thread that made it, so this goroutine's
// thread enters ns for the call and comes back.
func listenIn(t *testing.T, ns, addr string) net.Listener {
	t.Helper()
	target, err := os.Open("/run/netns/" + ns)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	runtime.LockOSThread()
	home, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer home.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("setns %s: %v", ns, err)
	}
	ln, lerr := net.Listen("tcp", addr)
	if err := unix.Setns(int(home.Fd()), unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: Go ends it with this goroutine
		// rather than reuse a thread in the wrong namespace.
		t.Fatalf("setns back: %v", err)
	}
	runtime.UnlockOSThread()
	if lerr != nil {
		t.Fatalf("listening in %s: %v", ns, lerr)
	}
	return ln
}

// connects reports whether a TCP connection from outside gets through
// within timeout; a refused one would be a failed set-up, not a drop.
func (n *nftNet) connects(t *testing.T, timeout time.Duration) bool {
	t.Helper()
	d := net.Dialer{Timeout: timeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(nftOutside)}}
	c, err := d.Dial("tcp", net.JoinHostPort(nftInside, strconv.Itoa(n.port)))
	if err == nil {
		c.Close()
		return true
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("dial %s:%d: %v, want success or a timeout (a drop)", nftInside, n.port, err)
	}
	return false
}

// nft runs nft inside the namespace.
func (n *nftNet) nft(t *testing.T, args ...string) string {
	t.Helper()
	b, err := exec.Command("ip", append([]string{"netns", "exec", n.ns, "nft"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("nft %s: %v: %s", strings.Join(args, " "), err, b)
	}
	return string(b)
}

// nftElem is one element of banned_v4.
type nftElem struct {
	Addr    string
	Expires time.Duration // zero: permanent
}

// elements are banned_v4's elements, nil when the set does not exist.
func (n *nftNet) elements(t *testing.T) (map[string]nftElem, bool) {
	t.Helper()
	b, err := exec.Command("ip", "netns", "exec", n.ns, "nft", "-j", "list", "set", "inet", "mailjail", "banned_v4").Output()
	if err != nil {
		return nil, false
	}
	var doc struct {
		Nftables []struct {
			Set *struct {
				Elem []json.RawMessage `json:"elem"`
			} `json:"set"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("nft -j: %v: %s", err, b)
	}
	out := map[string]nftElem{}
	for _, s := range doc.Nftables {
		if s.Set == nil {
			continue
		}
		for _, raw := range s.Set.Elem {
			var e nftElem
			var w struct {
				Elem *struct {
					Val     json.RawMessage `json:"val"`
					Expires int64           `json:"expires"`
				} `json:"elem"`
			}
			if json.Unmarshal(raw, &w) == nil && w.Elem != nil {
				raw, e.Expires = w.Elem.Val, time.Duration(w.Elem.Expires)*time.Second
			}
			// Single addresses only in these tests: anything else
			// (a prefix, a range) keeps its JSON, and fails a comparison.
			if json.Unmarshal(raw, &e.Addr) != nil {
				e.Addr = string(raw)
			}
			out[e.Addr] = e
		}
	}
	return out, true
}

// nftDaemonConfig is a daemon whose bans go to the nftables target only,
// dropping the listener's port.
func nftDaemonConfig(t *testing.T, n *nftNet) (dir, cfgPath string) {
	t.Helper()
	dir = daemonDir(t)
	cfg := newDaemonConfig(dir)
	cfg.Targets = []string{"nftables"}
	cfg.Extra = fmt.Sprintf("[nftables]\nports = [%d]\n", n.port)
	return dir, writeConfig(t, dir, cfg)
}

// mj runs the CLI in the namespace too: it talks to the daemon over the
// unix socket (a path, seen from every namespace), and should it find no
// daemon it writes the namespace's table, never the host's.
func (n *nftNet) mj(t *testing.T, cfgPath string, args ...string) []byte {
	t.Helper()
	cmd := mjCommand("ip", append([]string{"netns", "exec", n.ns, mailjailBinary(t), "--config", cfgPath}, args...)...)
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("mailjail %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return b
}

func (n *nftNet) start(t *testing.T, dir, cfgPath string, run int) *daemon {
	t.Helper()
	return startDaemonWith(t, dir, cfgPath, run, []string{"ip", "netns", "exec", n.ns})
}

func TestNftablesDropsABannedClientUntilUnban(t *testing.T) {
	n := newNftNet(t)
	dir, cfgPath := nftDaemonConfig(t, n)
	d := n.start(t, dir, cfgPath, 1)
	defer d.stop()
	if !n.connects(t, 2*time.Second) {
		t.Fatal("the client cannot connect before any ban")
	}

	banned := time.Now()
	n.mj(t, cfgPath, "ban", nftOutside, "--for", "10m", "--reason", "e2e nftables")
	if n.connects(t, time.Second) {
		t.Fatalf("%s still connects after ban returned:\n%s", nftOutside, n.nft(t, "list", "ruleset"))
	}
	els, _ := n.elements(t)
	e, ok := els[nftOutside]
	if !ok {
		t.Fatalf("banned_v4 holds %v, want %s", els, nftOutside)
	}
	if want := 10*time.Minute - time.Since(banned); e.Expires < want-2*time.Second || e.Expires > want+2*time.Second {
		t.Errorf("element expires in %v, want %v ± 2 s", e.Expires, want.Round(time.Second))
	}
	t.Logf("banned: dial timed out; element %s expires in %v", nftOutside, e.Expires)

	n.mj(t, cfgPath, "unban", nftOutside)
	if els, _ := n.elements(t); len(els) != 0 {
		t.Errorf("banned_v4 holds %v after unban returned", els)
	}
	if !n.connects(t, 2*time.Second) {
		t.Fatal("the client cannot connect after unban")
	}
}

func TestNftablesTableRestoredAfterFlushRuleset(t *testing.T) {
	n := newNftNet(t)
	dir, cfgPath := nftDaemonConfig(t, n)
	d := n.start(t, dir, cfgPath, 1)
	defer d.stop()
	n.mj(t, cfgPath, "ban", nftOutside, "--permanent")
	want := n.nft(t, "list", "table", "inet", "mailjail")
	if n.connects(t, time.Second) {
		t.Fatal("the banned client connects")
	}

	n.nft(t, "flush", "ruleset")
	flushed := time.Now()
	if !n.connects(t, 2*time.Second) {
		t.Fatal("the client cannot connect with the ruleset flushed: is something else dropping it?")
	}
	waitFor(func() bool {
		b, err := exec.Command("ip", "netns", "exec", n.ns, "nft", "list", "table", "inet", "mailjail").Output()
		return err == nil && strings.Contains(string(b), nftOutside)
	}, 10*time.Second)
	if got := n.nft(t, "list", "table", "inet", "mailjail"); got != want {
		t.Fatalf("table after the flush:\n%s\nwant:\n%s", got, want)
	}
	t.Logf("table, sets, chain and element back %v after nft flush ruleset", time.Since(flushed).Round(time.Millisecond))
	if n.connects(t, time.Second) {
		t.Fatal("the banned client connects after the repair")
	}
}

func TestNftablesEqualsTheDatabaseAfterKillDuringBurst(t *testing.T) {
	n := newNftNet(t)
	dir, cfgPath := nftDaemonConfig(t, n)
	d := n.start(t, dir, cfgPath, 1)

	// 2,000 addresses, none adjacent (so each is its own element), in
	// 40 commands of 50, 8 at a time; the daemon is killed after 10.
	var addrs []string
	base := netip.MustParseAddr("198.18.64.0")
	for i := range 2000 {
		b := base.As4()
		v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) + uint32(2*i)
		addrs = append(addrs, netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}).String())
	}
	bin := mailjailBinary(t)
	done := banBurstAndKill(d, addrs, func(chunk []string) *exec.Cmd {
		return mjCommand("ip", append([]string{"netns", "exec", n.ns, bin, "--config", cfgPath, "ban", "--for", "1h"}, chunk...)...)
	})
	t.Logf("%d ban commands of 50 succeeded around the kill", done)

	d2 := n.start(t, dir, cfgPath, 2)
	defer d2.stop()
	listed, _ := awaitSameKeys(t, "after the restart the set",
		func() map[string]bool { return n.listBans(t, cfgPath) },
		func() map[string]nftElem { h, _ := n.elements(t); return h }, 15*time.Second)
	t.Logf("after kill -9 and restart: the set equals mailjail list (%d bans)", len(listed))
}

// listBans are the addresses `mailjail list --json` shows.
func (n *nftNet) listBans(t *testing.T, cfgPath string) map[string]bool {
	t.Helper()
	var out struct {
		Bans []struct {
			Addr string `json:"addr"`
		} `json:"bans"`
	}
	b := n.mj(t, cfgPath, "list", "--json")
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("mailjail list --json: %v: %s", err, b)
	}
	m := map[string]bool{}
	for _, x := range out.Bans {
		m[strings.TrimSuffix(x.Addr, "/32")] = true
	}
	return m
}
