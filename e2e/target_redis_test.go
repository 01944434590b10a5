package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// The rspamd-redis target end to end: the daemon writes the hashes
// mailjail_bans and mailjail_accounts on the e2e redis, and rspamd's
// multimap rules MAILJAIL_BANS_REDIS and MAILJAIL_ACCOUNTS_REDIS (the
// rspamd-redis block of setup.sh) read them; no map file is involved.
const (
	redisBansKey     = "mailjail_bans"
	redisAccountsKey = "mailjail_accounts"
	redisBanReply    = "banned by mailjail (redis)"
	redisSuspReply   = "account suspended (redis)"
)

// requireRedisRules fails the test unless rspamd's configuration has the
// rules that read the hashes (an older setup.sh lacks them).
func requireRedisRules(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile("/etc/rspamd/local.d/multimap.conf")
	if err != nil || !strings.Contains(string(b), "redis://"+redisBansKey) || !strings.Contains(string(b), "redis://"+redisAccountsKey) {
		t.Fatalf("rspamd has no multimap rules reading redis://%s and redis://%s (%v): run this branch's e2e/setup.sh", redisBansKey, redisAccountsKey, err)
	}
}

// redisSetup is one test's daemon configuration with targets =
// ["rspamd-redis"] and its own owner; prefix is its key_prefix.
type redisSetup struct {
	dir, cfgPath string
	bin          string
	owner        string
	bans         string // full keys
	accounts     string
	rdb          *redis.Client
}

func newRedisSetup(t *testing.T, prefix string) *redisSetup {
	t.Helper()
	dir := daemonDir(t)
	cfg := newDaemonConfig(dir)
	cfg.Targets = []string{"rspamd-redis"}
	cfg.BanTime = "1h"
	r := &redisSetup{dir: dir, bin: mailjailBinary(t), owner: fmt.Sprintf("e2e-%d", rand.Uint32()),
		bans: prefix + "bans", accounts: prefix + "accounts"}
	cfg.Extra = fmt.Sprintf("[redis]\naddress = %s\nkey_prefix = %s\n\n[rspamd_redis]\nowner = %s\n",
		strconv.Quote(redisHost+":"+redisPort), strconv.Quote(prefix), strconv.Quote(r.owner))
	r.cfgPath = writeConfig(t, dir, cfg)
	r.rdb = redis.NewClient(&redis.Options{Addr: redisHost + ":" + redisPort, DisableIdentity: true})
	// The hashes are this test's alone: start from nothing, leave nothing
	// (a leftover ban would refuse another test's client).
	r.rdb.Del(context.Background(), r.bans, r.accounts)
	t.Cleanup(func() {
		r.rdb.Del(context.Background(), r.bans, r.accounts)
		r.rdb.Close()
	})
	return r
}

func (r *redisSetup) mj(t *testing.T, args ...string) []byte {
	t.Helper()
	out, err := mjCommand(r.bin, append([]string{"--config", r.cfgPath}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("mailjail %v: %v\n%s", args, err, out)
	}
	return out
}

func (r *redisSetup) hash(t *testing.T, key string) map[string]string {
	t.Helper()
	m, err := r.rdb.HGetAll(context.Background(), key).Result()
	if err != nil {
		t.Fatalf("HGETALL %s: %v", key, err)
	}
	return m
}

// ownedBy checks that key's field f is there and is owned by this test's
// daemon.
func (r *redisSetup) ownedBy(t *testing.T, key, f string) {
	t.Helper()
	v, ok := r.hash(t, key)[f]
	if !ok || !strings.Contains(v, " owner="+r.owner+" ") {
		t.Fatalf("%s[%s] = %q (present %v), want a field owned by %s", key, f, v, ok, r.owner)
	}
}

// status is the part of `mailjail status --json` these tests read.
type redisStatus struct {
	Targets []struct {
		Name    string `json:"name"`
		Entries int    `json:"entries"`
		Repairs int    `json:"repairs"`
		Error   string `json:"last_error"`
	} `json:"targets"`
}

func (r *redisSetup) status(t *testing.T) redisStatus {
	t.Helper()
	var s redisStatus
	if b := r.mj(t, "status", "--json"); json.Unmarshal(b, &s) != nil {
		t.Fatalf("mailjail status --json: %s", b)
	}
	return s
}

// A ban through the rspamd-redis target alone is a field of the hash and
// rspamd refuses the client's next message (554); unban lets it mail
// again (250). The same for prefixes and for a suspended account.
func TestRedisTargetBansAndSuspendsThroughRspamd(t *testing.T) {
	requireE2E(t)
	requireRedisRules(t)
	const (
		client   = "198.18.73.21"
		inV4Net  = "198.18.74.9" // in 198.18.74.0/24
		inV6Net  = "2001:db8:74::9"
		v6Single = "2001:db8:75::5"
		fresh    = "198.18.73.22"
	)
	r := newRedisSetup(t, "mailjail_")
	d := startDaemon(t, r.dir, r.cfgPath, 1)
	defer d.stop()
	if s := r.status(t); len(s.Targets) != 1 || s.Targets[0].Name != "rspamd-redis:"+redisBansKey {
		t.Fatalf("status targets = %+v, want rspamd-redis:%s alone", s.Targets, redisBansKey)
	}

	expectReply(t, client, 250, "", 10*time.Second)
	r.mj(t, "ban", client, "198.18.74.0/24", "2001:db8:74::/64", v6Single, "--for", "10m", "--reason", "e2e redis")
	for _, f := range []string{client, "198.18.74.0/24", "2001:db8:74::/64", v6Single} {
		r.ownedBy(t, redisBansKey, f) // in the hash when ban returned
	}
	for _, a := range []string{client, inV4Net, inV6Net, v6Single} {
		n := expectReply(t, a, 554, redisBanReply, 10*time.Second)
		t.Logf("client %s: 554 %s after %d message(s)", a, redisBanReply, n)
	}
	if readMap(t, mapFilePath()).has(client) {
		t.Fatalf("%s is in the map file: the rspamd-map target is not in use", client)
	}
	if _, err := os.Stat(filepath.Join(r.dir, "ip.map")); err == nil {
		t.Fatal("a map file was written in the daemon's directory")
	}

	r.mj(t, "unban", client)
	if _, ok := r.hash(t, redisBansKey)[client]; ok {
		t.Fatalf("%s still in %s when unban returned", client, redisBansKey)
	}
	expectReply(t, client, 250, "", 10*time.Second)

	requireReleaseCommand(t, r.bin)
	login := uniqueLogin("redis", "example.org")
	keys := ratelimitKeys(t, []string{login}, []string{fresh})
	expectAccountReply(t, keys, fresh, login, 250, "", 10*time.Second)
	r.mj(t, "suspend", login, "--for", "10m", "--reason", "e2e redis")
	r.ownedBy(t, redisAccountsKey, login)
	expectAccountReply(t, keys, fresh, login, 554, redisSuspReply, 10*time.Second)
	r.mj(t, "release", login)
	if _, ok := r.hash(t, redisAccountsKey)[login]; ok {
		t.Fatalf("%s still in %s when release returned", login, redisAccountsKey)
	}
	expectAccountReply(t, keys, fresh, login, 250, "", 10*time.Second)
	r.mj(t, "unban", "198.18.74.0/24", "2001:db8:74::/64", v6Single)
	if n := len(r.hash(t, redisBansKey)); n != 0 {
		t.Fatalf("%s holds %d fields after every unban", redisBansKey, n)
	}
}

// A hash deleted behind mailjail's back (or one field of it) is back
// within a few seconds, and status counts the repairs.
func TestRedisTargetDriftRestored(t *testing.T) {
	requireE2E(t)
	r := newRedisSetup(t, fmt.Sprintf("e2e_%d_", rand.Uint32()))
	d := startDaemon(t, r.dir, r.cfgPath, 1)
	defer d.stop()
	r.mj(t, "ban", "198.18.76.1", "198.18.76.2", "2001:db8:76::/64", "--for", "10m")
	r.mj(t, "suspend", "drift@example.org", "--for", "10m")
	bans, accounts := r.hash(t, r.bans), r.hash(t, r.accounts)
	if len(bans) != 3 || len(accounts) != 1 {
		t.Fatalf("hashes after ban and suspend: %v %v", bans, accounts)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		what   string
		change func() error
	}{
		{"DEL " + r.bans, func() error { return r.rdb.Del(ctx, r.bans).Err() }},
		{"DEL " + r.accounts, func() error { return r.rdb.Del(ctx, r.accounts).Err() }},
		{"HDEL one field", func() error { return r.rdb.HDel(ctx, r.bans, "198.18.76.2").Err() }},
	} {
		if err := tc.change(); err != nil {
			t.Fatalf("%s: %v", tc.what, err)
		}
		start := time.Now()
		if !waitFor(func() bool {
			return fmt.Sprint(r.hash(t, r.bans)) == fmt.Sprint(bans) && fmt.Sprint(r.hash(t, r.accounts)) == fmt.Sprint(accounts)
		}, 5*time.Second) {
			t.Fatalf("after %s: bans %v accounts %v, want %v %v back within 5s", tc.what, r.hash(t, r.bans), r.hash(t, r.accounts), bans, accounts)
		}
		t.Logf("after %s: restored in %v", tc.what, time.Since(start).Round(time.Millisecond))
	}
	if s := r.status(t); len(s.Targets) != 1 || s.Targets[0].Repairs < 3 {
		t.Errorf("status targets = %+v, want 3 repairs or more", s.Targets)
	}
}

// kill -9 during a burst of 2,000 bans through the CLI; after the restart
// the hash holds exactly what `mailjail list` shows.
func TestRedisTargetEqualsTheDatabaseAfterKillDuringBurst(t *testing.T) {
	requireE2E(t)
	r := newRedisSetup(t, fmt.Sprintf("e2e_%d_", rand.Uint32()))
	d := startDaemon(t, r.dir, r.cfgPath, 1)
	var addrs []string
	for i := range 2000 {
		addrs = append(addrs, netip.AddrFrom4([4]byte{198, 18, byte(80 + i/250), byte(1 + i%250)}).String())
	}
	done := banBurstAndKill(d, addrs, func(chunk []string) *exec.Cmd {
		return mjCommand(r.bin, append([]string{"--config", r.cfgPath, "ban", "--for", "1h"}, chunk...)...)
	})
	t.Logf("%d ban commands of 50 succeeded around the kill; the hash held %d fields", done, len(r.hash(t, r.bans)))

	d2 := startDaemon(t, r.dir, r.cfgPath, 2)
	defer d2.stop()
	listed, held := awaitSameKeys(t, "after the restart the hash",
		func() map[string]bool { return r.listBans(t) },
		func() map[string]string { return r.hash(t, r.bans) }, 15*time.Second)
	for f, v := range held {
		if !strings.Contains(v, " owner="+r.owner+" ") {
			t.Fatalf("%s[%s] = %q, not owned by %s", r.bans, f, v, r.owner)
		}
	}
	t.Logf("after kill -9 and restart: the hash equals mailjail list (%d bans)", len(listed))
}

// listBans are the fields `mailjail list --json`'s bans should be: a
// single address bare, a prefix as net/len.
func (r *redisSetup) listBans(t *testing.T) map[string]bool {
	t.Helper()
	var out struct {
		Bans []struct {
			Addr string `json:"addr"`
		} `json:"bans"`
	}
	b := r.mj(t, "list", "--json")
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("mailjail list --json: %v: %s", err, b)
	}
	m := map[string]bool{}
	for _, x := range out.Bans {
		p, err := netip.ParsePrefix(x.Addr)
		if err != nil {
			a, err := netip.ParseAddr(x.Addr)
			if err != nil {
				t.Fatalf("mailjail list --json: address %q", x.Addr)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p.IsSingleIP() {
			m[p.Addr().String()] = true
		} else {
			m[p.Masked().String()] = true
		}
	}
	return m
}
