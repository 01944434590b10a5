package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/target/postfixtable"
)

// The postfix target, against the real Postfix of e2e/setup.sh, whose
// smtpd_client_restrictions hold check_client_access hash:postfixAccessPath().

// postfixAccessPath is the access table setup.sh made and Postfix reads.
func postfixAccessPath() string { return filepath.Join(filepath.Dir(mapFilePath()), "postfix_access") }

// postfixDaemon starts a daemon whose only target is the postfix table,
// and empties the table before and after the test.
func postfixDaemon(t *testing.T) (dir, cfgPath, bin string, d *daemon) {
	t.Helper()
	resetPostfixTable(t)
	t.Cleanup(func() { resetPostfixTable(t) })
	dir = daemonDir(t)
	cfg := newDaemonConfig(dir)
	cfg.BanTime = "1h"
	cfg.Targets = []string{"postfix"}
	cfg.Extra = fmt.Sprintf("[postfix]\ntable = %q\ntype = \"hash\"\n", postfixAccessPath())
	cfgPath = writeConfig(t, dir, cfg)
	bin = mailjailBinary(t)
	d = startDaemon(t, dir, cfgPath, 1)
	return dir, cfgPath, bin, d
}

// resetPostfixTable empties the table as setup.sh left it: an empty table
// rejects nothing, so the other tests are not affected.
func resetPostfixTable(t *testing.T) {
	t.Helper()
	p := postfixAccessPath()
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatalf("emptying %s: %v", p, err)
	}
	if out, err := exec.Command("postmap", "hash:"+p).CombinedOutput(); err != nil {
		t.Fatalf("postmap %s: %v\n%s", p, err, out)
	}
}

// pfCLI runs `mailjail --config CFG ARGS...` and fails the test on an error.
func pfCLI(t *testing.T, bin, cfgPath string, args ...string) string {
	t.Helper()
	out, err := mjCommand(bin, append([]string{"--config", cfgPath}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("mailjail %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// postfixDBKeys is what Postfix really reads: every key of the .db
// (`postmap -s`), with its value.
func postfixDBKeys(t *testing.T) map[string]string {
	t.Helper()
	out, err := exec.Command("postmap", "-s", "hash:"+postfixAccessPath()).Output()
	if err != nil {
		return nil // deleted or being replaced: not the table wanted
	}
	keys := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if k, v, ok := strings.Cut(l, "\t"); ok {
			keys[k] = v
		}
	}
	return keys
}

// expectRefusedBeforeRspamd checks that Postfix refuses client addr with
// the target's message at RCPT, and that rspamd scans nothing from it: a
// message sent afterwards from control is logged by rspamd, none from addr.
func expectRefusedBeforeRspamd(t *testing.T, addr, control string) {
	t.Helper()
	from, err := os.Stat(rspamdLogPath)
	if err != nil {
		t.Fatal(err)
	}
	code, reply := sendMail(t, addr)
	if code != 554 || !strings.Contains(reply, "Client host rejected: "+postfixtable.DefaultMessage) {
		t.Fatalf("client %s: %q, want 554 ... Client host rejected: %s", addr, reply, postfixtable.DefaultMessage)
	}
	flushRatelimit(t)
	if code, reply := sendMail(t, control); code != 250 {
		t.Fatalf("control client %s: %q, want 250", control, reply)
	}
	var tail string
	if !waitFor(func() bool {
		tail = rspamdLogFrom(t, from.Size())
		return strings.Contains(tail, "ip: "+control+",")
	}, 15*time.Second) {
		t.Fatalf("rspamd logged no task for the control client %s", control)
	}
	if strings.Contains(tail, "ip: "+addr+",") {
		t.Fatalf("rspamd scanned a message of the banned client %s:\n%s", addr, tail)
	}
}

func rspamdLogFrom(t *testing.T, off int64) string {
	t.Helper()
	f, err := os.Open(rspamdLogPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() < off {
		off = 0 // rotated
	}
	if _, err := f.Seek(off, 0); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "rspamd_task_write_log") {
			b.WriteString(sc.Text())
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// TestPostfixTargetRefusesBannedClientsBeforeRspamd: clients banned by
// `mailjail ban` through the postfix target (an address, a /24 and IPv6
// /64s, one written with "::" by smtpd) are refused by Postfix at RCPT and
// rspamd never sees their mail; after `mailjail unban` they mail again.
func TestPostfixTargetRefusesBannedClientsBeforeRspamd(t *testing.T) {
	requireE2E(t)
	_, cfgPath, bin, d := postfixDaemon(t)
	defer d.stop()
	const control = "198.18.71.200"
	for _, tc := range []struct{ ban, client string }{
		{"198.18.71.5", "198.18.71.5"},
		{"198.18.72.0/24", "198.18.72.9"},
		{"2001:db8:7100::/64", "2001:db8:7100::9"},        // smtpd writes it with "::": key "2001:db8:7100:"
		{"2001:db8:7100::/64", "2001:db8:7100:0:1:2:3:4"}, // and without: key "2001:db8:7100:0"
		{"2001:db8:7200:1::/64", "2001:db8:7200:1:a:b:c:d"},
		{"2001:db8:7300::5", "2001:db8:7300::5"},
	} {
		t.Run(tc.client, func(t *testing.T) {
			flushRatelimit(t)
			if code, reply := sendMail(t, tc.client); code != 250 {
				t.Fatalf("client %s before the ban: %q, want 250", tc.client, reply)
			}
			start := time.Now()
			pfCLI(t, bin, cfgPath, "ban", "--for", "10m", "--reason", "e2e postfix", tc.ban)
			took := time.Since(start)
			expectRefusedBeforeRspamd(t, tc.client, control)
			t.Logf("ban %s: refused at RCPT; ban command took %v", tc.ban, took.Round(time.Millisecond))
			pfCLI(t, bin, cfgPath, "unban", tc.ban)
			n := expectReply(t, tc.client, 250, "", 10*time.Second)
			t.Logf("client %s: 250 after unban (%d message(s))", tc.client, n)
		})
	}
}

// TestPostfixTargetRepairsDrift: the table deleted, or edited and rebuilt
// by hand, is back as the database says within a few check intervals (1 s).
func TestPostfixTargetRepairsDrift(t *testing.T) {
	requireE2E(t)
	_, cfgPath, bin, d := postfixDaemon(t)
	defer d.stop()
	const client = "198.18.73.5"
	pfCLI(t, bin, cfgPath, "ban", "--for", "10m", client)
	banned := func() bool { return strings.HasPrefix(postfixDBKeys(t)[client], "REJECT") }
	if !waitFor(banned, 5*time.Second) {
		t.Fatalf("key %s not in the table: %v", client, postfixDBKeys(t))
	}
	p := postfixAccessPath()
	for _, drift := range []struct {
		name string
		do   func() error
	}{
		{"deleted", func() error {
			if err := os.Remove(p + ".db"); err != nil {
				return err
			}
			return os.Remove(p)
		}},
		{"edited and rebuilt", func() error {
			if err := os.WriteFile(p, []byte(client+" OK\n"), 0o644); err != nil {
				return err
			}
			return exec.Command("postmap", "hash:"+p).Run()
		}},
	} {
		if err := drift.do(); err != nil {
			t.Fatalf("%s: %v", drift.name, err)
		}
		start := time.Now()
		if !waitFor(banned, 5*time.Second) {
			t.Fatalf("table %s: not repaired within 5 s: %v", drift.name, postfixDBKeys(t))
		}
		t.Logf("table %s: repaired after %v", drift.name, time.Since(start).Round(time.Millisecond))
		flushRatelimit(t)
		if code, reply := sendMail(t, client); code != 554 {
			t.Fatalf("after the repair: %q, want 554", reply)
		}
	}
}

// TestPostfixTargetAfterKillDuringBurst: the daemon is killed (SIGKILL)
// while 2,000 bans arrive in four commands; after a restart the table holds
// exactly the keys of `mailjail list --json`, in its source and its .db.
func TestPostfixTargetAfterKillDuringBurst(t *testing.T) {
	requireE2E(t)
	dir, cfgPath, bin, d := postfixDaemon(t)
	var addrs []string
	for i := range 2000 {
		addrs = append(addrs, netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)}).String())
	}
	var wg sync.WaitGroup
	second := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < len(addrs); i += 500 {
			// After the kill, a command finds no daemon and changes the
			// database itself, or fails on the dying socket: both are fine.
			mjCommand(bin, append([]string{"--config", cfgPath, "ban", "--for", "1h", "--reason", "burst"}, addrs[i:i+500]...)...).Run()
			if i == 500 {
				close(second)
			}
		}
	}()
	<-second
	time.Sleep(30 * time.Millisecond)
	d.kill()
	wg.Wait()
	d2 := startDaemon(t, dir, cfgPath, 2)
	defer d2.stop()

	var want map[string]bool
	var got map[string]string
	if !waitFor(func() bool {
		want = listedKeys(t, bin, cfgPath)
		got = postfixDBKeys(t)
		return len(got) == len(want) && tableKeysEqual(t, want, got)
	}, 15*time.Second) {
		t.Fatalf("after restart the table (%d keys) differs from `list` (%d keys)", len(got), len(want))
	}
	t.Logf("after kill -9 and restart: table = list = %d keys", len(want))
	if len(want) < 1000 {
		t.Errorf("only %d bans made it in: the kill came too early to test a burst", len(want))
	}
}

// listedKeys is the hash keys of every active ban `mailjail list --json` shows.
func listedKeys(t *testing.T, bin, cfgPath string) map[string]bool {
	t.Helper()
	var l struct {
		Bans []struct {
			Addr string `json:"addr"`
		} `json:"bans"`
	}
	if err := json.Unmarshal([]byte(pfCLI(t, bin, cfgPath, "list", "--json")), &l); err != nil {
		t.Fatalf("mailjail list --json: %v", err)
	}
	keys := map[string]bool{}
	for _, b := range l.Bans {
		p, err := netip.ParsePrefix(b.Addr)
		if err != nil {
			a, aerr := netip.ParseAddr(b.Addr)
			if aerr != nil {
				t.Fatalf("list: addr %q: %v", b.Addr, err)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		ks, err := postfixtable.Keys(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range ks {
			keys[k] = true
		}
	}
	return keys
}

// tableKeysEqual: the .db holds exactly want, each REJECTed, and so does
// the source file.
func tableKeysEqual(t *testing.T, want map[string]bool, db map[string]string) bool {
	t.Helper()
	for k := range want {
		if !strings.HasPrefix(db[k], "REJECT") {
			return false
		}
	}
	src, err := os.ReadFile(postfixAccessPath())
	if err != nil {
		return false
	}
	var keys []string
	for _, l := range strings.Split(string(src), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			keys = append(keys, strings.Fields(l)[0])
		}
	}
	if len(keys) != len(want) {
		return false
	}
	return !slices.ContainsFunc(keys, func(k string) bool { return !want[k] })
}
