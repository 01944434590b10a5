package nftset

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// need skips t for a missing peer, or fails it under MAILJAIL_E2E=1
// (CI), where every peer must be there.
func need(t testing.TB, what string) {
	t.Helper()
	if os.Getenv("MAILJAIL_E2E") == "1" {
		t.Fatalf("MAILJAIL_E2E=1 but %s", what)
	}
	t.Skipf("skipped: %s (apt-get install nftables iproute2; run as root)", what)
}

var nsSeq atomic.Int64

// netns creates a network namespace for t, deleted when t ends, and
// returns its name and an fd on it for Config.NetNS.
func netns(t testing.TB) (string, int) {
	t.Helper()
	if os.Geteuid() != 0 {
		need(t, "network namespaces need root")
	}
	for _, bin := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(bin); err != nil {
			need(t, bin+" is not installed")
		}
	}
	name := fmt.Sprintf("mj-test-%d-%d", os.Getpid(), nsSeq.Add(1))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		need(t, fmt.Sprintf("ip netns add: %v: %s", err, out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	f, err := os.Open("/run/netns/" + name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return name, int(f.Fd())
}

// nft runs nft in the namespace and returns its output.
func nft(t testing.TB, ns string, args ...string) string {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, "nft"}, args...)...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("nft %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// listed is one element of a set as nft -j shows it.
type listed struct {
	First, Last netip.Addr
	Permanent   bool
	Expires     time.Duration // remaining, whole seconds (nft 1.0.6)
}

// listSet reads set's elements back through nft -j.
func listSet(t testing.TB, ns, table, set string) []listed {
	t.Helper()
	var doc struct {
		Nftables []struct {
			Set *struct {
				Elem []json.RawMessage `json:"elem"`
			} `json:"set"`
		} `json:"nftables"`
	}
	out := nft(t, ns, "-j", "list", "set", "inet", table, set)
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("nft -j: %v: %s", err, out)
	}
	var got []listed
	for _, n := range doc.Nftables {
		if n.Set == nil {
			continue
		}
		for _, raw := range n.Set.Elem {
			got = append(got, parseElem(t, raw))
		}
	}
	return got
}

// parseElem reads an element: "ADDR", {"prefix":...}, {"range":[...]}
// or any of them wrapped in {"elem":{"val":...,"timeout":s,"expires":s}}.
func parseElem(t testing.TB, raw json.RawMessage) listed {
	t.Helper()
	var wrapped struct {
		Elem *struct {
			Val     json.RawMessage `json:"val"`
			Timeout int64           `json:"timeout"`
			Expires int64           `json:"expires"`
		} `json:"elem"`
	}
	if err := json.Unmarshal(raw, &wrapped); err == nil && wrapped.Elem != nil {
		l := parseElem(t, wrapped.Elem.Val)
		l.Permanent = wrapped.Elem.Timeout == 0
		l.Expires = time.Duration(wrapped.Elem.Expires) * time.Second
		return l
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		a := netip.MustParseAddr(s)
		return listed{First: a, Last: a, Permanent: true}
	}
	var v struct {
		Prefix *struct {
			Addr string `json:"addr"`
			Len  int    `json:"len"`
		} `json:"prefix"`
		Range []string `json:"range"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("element %s: %v", raw, err)
	}
	switch {
	case v.Prefix != nil:
		p := netip.PrefixFrom(netip.MustParseAddr(v.Prefix.Addr), v.Prefix.Len)
		return listed{First: p.Addr(), Last: lastOf(p), Permanent: true}
	case len(v.Range) == 2:
		return listed{First: netip.MustParseAddr(v.Range[0]), Last: netip.MustParseAddr(v.Range[1]), Permanent: true}
	}
	t.Fatalf("element %s: unknown form", raw)
	return listed{}
}
