package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// clusterNode is one mailjail node of a cluster test, on the e2e redis-server.
type clusterNode struct {
	name, dir, cfgPath string
	d                  *daemon
}

// startClusterNode starts node name with key prefix prefix; rspamdsMaps makes it the node
// whose IP and account maps are the ones rspamd reads, the others write maps of their own.
func startClusterNode(t *testing.T, name, prefix string, rspamdsMaps bool, n int) *clusterNode {
	t.Helper()
	c := &clusterNode{name: name, dir: daemonDir(t)}
	cfg := newDaemonConfig(c.dir)
	cfg.BanTime = "1h"
	accounts := accountMapPath()
	if !rspamdsMaps {
		cfg.MapFile, accounts = filepath.Join(c.dir, "ip.map"), filepath.Join(c.dir, "accounts.map")
	}
	cfg.Extra = fmt.Sprintf("[redis]\naddress = \"127.0.0.1:6379\"\nkey_prefix = %s\n\n[cluster]\nnode = %s\nresync_interval = \"5s\"\n",
		strconv.Quote(prefix), strconv.Quote(name))
	toml := strings.Replace(cfg.TOML(), "[global]\n", "[global]\naccount_map_file = "+strconv.Quote(accounts)+"\n", 1)
	c.cfgPath = filepath.Join(c.dir, "mailjail.toml")
	if err := os.WriteFile(c.cfgPath, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	if rspamdsMaps {
		awaitAccountMapAlone(t, accounts)
	}
	c.d = startDaemon(t, c.dir, c.cfgPath, n)
	return c
}

// mj runs a mailjail command against the node.
func (c *clusterNode) mj(t *testing.T, args ...string) {
	t.Helper()
	out, err := mjCommand(mailjailBinary(t), append([]string{"--config", c.cfgPath}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("node %s: mailjail %v: %v\n%s", c.name, args, err, out)
	}
}

// TestClusterBanAndSuspensionRefusedThroughAnotherNode: three nodes share one redis-server
// (the e2e one, a key prefix of the test's own); node b writes the maps rspamd reads. A ban
// and a suspension made on node a are refused by rspamd through b's maps; the unban and the
// release made on node c let the client and the account mail again.
func TestClusterBanAndSuspensionRefusedThroughAnotherNode(t *testing.T) {
	requireE2E(t)
	prefix := fmt.Sprintf("mjcluster%d_", rand.Uint32())
	a := startClusterNode(t, "a", prefix, false, 1)
	b := startClusterNode(t, "b", prefix, true, 1)
	c := startClusterNode(t, "c", prefix, false, 1)
	defer func() {
		for _, n := range []*clusterNode{a, b, c} {
			n.d.stop()
		}
	}()

	const client, fresh = "198.18.61.10", "198.18.61.11"
	start := time.Now()
	a.mj(t, "ban", client, "--for", "1h")
	expectReply(t, client, 554, "Matched map: "+mapRuleName, 10*time.Second)
	t.Logf("ban on a refused through b's map after %v", time.Since(start).Round(time.Millisecond))
	c.mj(t, "unban", client)
	expectReply(t, client, 250, "", 10*time.Second)

	login := uniqueLogin("cluster", "example.org")
	keys := ratelimitKeys(t, []string{login}, []string{fresh})
	clearBuckets(t, keys, login, fresh)
	start = time.Now()
	a.mj(t, "suspend", login, "--for", "1h")
	expectAccountReply(t, keys, fresh, login, 554, "account suspended", 10*time.Second)
	t.Logf("suspension on a refused through b's account map after %v", time.Since(start).Round(time.Millisecond))
	c.mj(t, "release", login)
	expectAccountReply(t, keys, fresh, login, 250, "", 10*time.Second)
}
