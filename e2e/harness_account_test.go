package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Accounts: logins rspamd's `user` bucket limits, the account map, the daemon's database

// The e2e rspamd's buckets (e2e/setup.sh, ratelimit.conf) as rspamd names them in Redis:
// gen_rate_key writes round(100000 / burst) ":" value.
const (
	userBucketPrefix = "20000:" // user, burst 5
	ipBucketPrefix   = "33333:" // ip, burst 3
	userExceeded     = `Ratelimit "user" exceeded`
)

// accountMapPath is the file rspamd's MAILJAIL_ACCOUNT_SUSPENDED rule (type "user") reads:
// accounts.map beside the IP map, as setup.sh configures it.
func accountMapPath() string { return filepath.Join(filepath.Dir(mapFilePath()), "accounts.map") }

// accountJail is the account jail (key = "account" on rspamd's `user` bucket) of a test.
type accountJail struct {
	MaxRetry int
	FindTime string
	BanTime  string
}

// accountDaemon is a test's daemon set-up with an account jail: its own database, socket and
// IP map (in the test's directory, so that the one-mailjail-per-map lock of the shared map
// never makes it wait for another test's daemon) and the account map rspamd reads.
type accountDaemon struct {
	dir        string
	cfg        daemonConfig
	cfgPath    string
	accountMap string
	alerts     *smtpSink
}

// newAccountDaemon writes the configuration: the address jail and [global] of
// newDaemonConfig, changed by edit (when not nil), an account jail j, account_map_file =
// accountMapPath() and alerts to a fresh recipient at localhost.
func newAccountDaemon(t *testing.T, j accountJail, edit func(*daemonConfig)) *accountDaemon {
	t.Helper()
	dir := daemonDir(t)
	// rspamd's user may search the directory of the (unused by rspamd) IP map: the daemon
	// checks that rspamd could read it and logs an error otherwise.
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	cfg := newDaemonConfig(dir)
	cfg.MapFile = filepath.Join(dir, "ip.map")
	if edit != nil {
		edit(&cfg)
	}
	a := &accountDaemon{dir: dir, cfg: cfg, accountMap: accountMapPath(), cfgPath: filepath.Join(dir, "mailjail.toml")}
	// daemonConfig renders [global] first; account_map_file belongs there.
	toml := strings.Replace(cfg.TOML(), "[global]\n", "[global]\naccount_map_file = "+strconv.Quote(a.accountMap)+"\n", 1)
	toml += fmt.Sprintf("\n[jail.rspamd-user]\nfilter   = \"rspamd-ratelimit\"\nkey      = \"account\"\nlogpath  = [%s]\nmaxretry = %d\nfindtime = %s\nbantime  = %s\n",
		strconv.Quote(rspamdLogPath), j.MaxRetry, strconv.Quote(j.FindTime), strconv.Quote(j.BanTime))
	// Alerts go to a sink of the test, not through the e2e Postfix: rspamd would rate limit
	// them by 127.0.0.1's ip bucket, which every test's alerts share.
	a.alerts = newSMTPSink(t)
	toml += fmt.Sprintf("\n[alert]\nsmtp = %s\nfrom = \"mailjail-e2e@localhost\"\nto = [\"admin@localhost\"]\n", strconv.Quote(a.alerts.addr))
	if err := os.WriteFile(a.cfgPath, []byte(toml), 0o600); err != nil {
		t.Fatalf("writing the daemon configuration: %v", err)
	}
	return a
}

// smtpSink is an SMTP server on loopback that accepts every message and keeps it.
type smtpSink struct {
	addr string
	mu   sync.Mutex
	msgs []string
}

// newSMTPSink listens on a free loopback port until the test ends.
func newSMTPSink(t *testing.T) *smtpSink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening for alerts: %v", err)
	}
	k := &smtpSink{addr: ln.Addr().String()}
	var wg sync.WaitGroup
	wg.Add(1) // the accept loop, so that each connection's Add happens while the count is above 0
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); k.serve(c) }()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return k
}

// serve speaks just enough SMTP for net/smtp's client (no extensions, so no STARTTLS).
func (k *smtpSink) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	reply := func(s string) bool { _, err := io.WriteString(c, s+"\r\n"); return err == nil }
	if !reply("220 mailjail-e2e alert sink") {
		return
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		verb := strings.ToUpper(strings.Fields(line + " x")[0])
		switch verb {
		case "DATA":
			reply("354 go on")
			var msg strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" || l == ".\n" {
					break
				}
				msg.WriteString(strings.TrimPrefix(l, "."))
			}
			k.mu.Lock()
			k.msgs = append(k.msgs, msg.String())
			k.mu.Unlock()
			reply("250 kept")
		case "QUIT":
			reply("221 bye")
			return
		default: // EHLO, HELO, MAIL, RCPT, RSET, NOOP
			reply("250 ok")
		}
	}
}

// messages returns the messages received so far.
func (k *smtpSink) messages() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.msgs)
}

// start runs the daemon (run n of the test) once no other mailjail daemon writes the account map.
func (a *accountDaemon) start(t *testing.T, n int) *daemon {
	t.Helper()
	awaitAccountMapAlone(t, a.accountMap)
	return startDaemon(t, a.dir, a.cfgPath, n)
}

// awaitAccountMapAlone waits until no other mailjail daemon on the machine (another agent's
// e2e run) names path as its account_map_file. The account map has no lock of its own (only
// the IP map has): two daemons would each rewrite it with their own suspensions and each
// "repair" the other's writes.
func awaitAccountMapAlone(t *testing.T, path string) {
	t.Helper()
	var others []string
	if !waitFor(func() bool { others = accountMapWriters(path); return len(others) == 0 }, 3*time.Minute) {
		t.Fatalf("other mailjail daemons write the account map %s for 3 minutes: %v", path, others)
	}
}

// accountMapWriters lists the running `mailjail run` processes whose configuration file
// names path.
func accountMapWriters(path string) []string {
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var found []string
	for _, c := range cmdlines {
		raw, err := os.ReadFile(c)
		if err != nil {
			continue
		}
		argv := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		if len(argv) < 4 || !strings.Contains(filepath.Base(argv[0]), "mailjail") || argv[1] != "run" {
			continue
		}
		for i := 2; i+1 < len(argv); i++ {
			if argv[i] != "--config" && argv[i] != "-c" {
				continue
			}
			if cfg, err := os.ReadFile(argv[i+1]); err == nil && bytes.Contains(cfg, []byte(strconv.Quote(path))) {
				found = append(found, fmt.Sprintf("pid %s (%s)", filepath.Base(filepath.Dir(c)), argv[i+1]))
			}
		}
	}
	return found
}

// readAccounts returns the logins listed in the account map at path (the first field of
// each line that is not a comment), as rspamd reads them.
func readAccounts(t *testing.T, path string) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading the account map: %v", err)
	}
	accounts := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 0 && !strings.HasPrefix(f[0], "#") {
			accounts[f[0]] = true
		}
	}
	return accounts
}

// awaitAccountListed waits until the account map lists account (want) or no longer does.
func awaitAccountListed(t *testing.T, path, account string, want bool, timeout time.Duration) {
	t.Helper()
	var got map[string]bool
	if !waitFor(func() bool { got = readAccounts(t, path); return got[account] == want }, timeout) {
		t.Fatalf("account %s listed in %s: %v after %v, want %v; map %v", account, path, got[account], timeout, want, got)
	}
}

// dbQuery runs one SELECT against the daemon's database, read-only, and returns its rows
// (columns separated by '|').
func dbQuery(t *testing.T, db, query string, args ...any) []string {
	t.Helper()
	out, err := exec.Command("sqlite3", "file:"+db+"?mode=ro", fmt.Sprintf(query, args...)).CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3 %s %q: %v\n%s", db, query, err, out)
	}
	s := strings.TrimSpace(string(out))
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// dbCount runs a SELECT count(*) (args quoted as SQL strings with %s in query).
func dbCount(t *testing.T, db, query string, args ...string) int {
	t.Helper()
	q := make([]any, len(args))
	for i, a := range args {
		q[i] = "'" + strings.ReplaceAll(a, "'", "''") + "'"
	}
	rows := dbQuery(t, db, query, q...)
	if len(rows) != 1 {
		t.Fatalf("%q: rows %q, want one count", query, rows)
	}
	n, err := strconv.Atoi(rows[0])
	if err != nil {
		t.Fatalf("%q: %v", query, err)
	}
	return n
}

// uniqueLogin returns name-RANDOM@domain, so that runs (-count) and other agents' tests never
// share a `user` bucket or a suspension.
func uniqueLogin(name, domain string) string {
	return fmt.Sprintf("%s-%d@%s", name, rand.Uint32(), domain)
}

// ratelimitKeys maps each login (its `user` bucket) and each address (its `ip` bucket) to
// the Redis key rspamd keeps the bucket in. A login is also mapped in lower case, in case
// rspamd folds it before keying.
func ratelimitKeys(t *testing.T, logins, addrs []string) map[string][]string {
	t.Helper()
	var names, keys []string
	for _, l := range logins {
		for _, v := range uniq(l, strings.ToLower(l)) {
			names, keys = append(names, l), append(keys, userBucketPrefix+v)
		}
	}
	for _, a := range addrs {
		names, keys = append(names, a), append(keys, ipBucketPrefix+a)
	}
	hashed := ratelimitHashes(t, keys)
	m := map[string][]string{}
	for i, n := range names {
		m[n] = append(m[n], hashed[i])
	}
	return m
}

func uniq(a, b string) []string {
	if a == b {
		return []string{a}
	}
	return []string{a, b}
}

// clearBuckets deletes the buckets of the given logins and addresses (keys from
// ratelimitKeys) and no one else's.
func clearBuckets(t *testing.T, keys map[string][]string, names ...string) {
	t.Helper()
	args := []string{"DEL"}
	for _, n := range names {
		k, ok := keys[n]
		if !ok {
			t.Fatalf("no ratelimit key computed for %s", n)
		}
		args = append(args, k...)
	}
	redisCmd(t, args...)
}

// mailAs sends one message as login (XCLIENT LOGIN: rspamd sees an authenticated
// submission and fills the login's `user` bucket) from client addr, with args (at least
// the envelope sender) for swaks.
func mailAs(t *testing.T, addr, login string, args ...string) (int, string) {
	t.Helper()
	return swaksAs(t, addr, append([]string{"--xclient-login", login}, args...)...)
}

// plainMailAs is mailAs with login as the envelope sender and a plain message.
func plainMailAs(t *testing.T, addr, login string) (int, string) {
	t.Helper()
	return mailAs(t, addr, login, "--from", login, "--header", "Subject: mailjail e2e account "+login)
}

// overUserBucket sends login's plain messages until rspamd has soft-rejected rejects of them
// with Ratelimit "user" exceeded. The k-th rejection comes from addrs[k % len(addrs)] (the
// accepted messages before it from the same address); every address's `ip` bucket is
// cleared before each message, so only the `user` bucket limits. It returns how many
// messages passed and the rejections per address.
func overUserBucket(t *testing.T, keys map[string][]string, login string, addrs []string, rejects int) (passed int, per map[string]int) {
	t.Helper()
	per = map[string]int{}
	for sent, got := 0, 0; got < rejects; sent++ {
		if sent > rejects+compatUserBurst+20 {
			t.Fatalf("login %s: %d messages sent, only %d of %d rejected", login, sent, got, rejects)
		}
		addr := addrs[got%len(addrs)]
		clearBuckets(t, keys, addrs...)
		code, reply := plainMailAs(t, addr, login)
		switch {
		case code == 250:
			passed++
		case code == 451 && strings.Contains(reply, userExceeded):
			per[addr]++
			got++
		default:
			t.Fatalf("login %s from %s, message %d: %q, want 250 or 451 %s", login, addr, sent+1, reply, userExceeded)
		}
	}
	return passed, per
}

// expectAccountReply clears the buckets of login and addr and sends login's plain message
// from addr until the reply has code want and contains substr, for at most timeout (rspamd
// rereads a changed map within milliseconds). It returns the last reply.
func expectAccountReply(t *testing.T, keys map[string][]string, addr, login string, want int, substr string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for n := 1; ; n++ {
		clearBuckets(t, keys, login, addr)
		code, reply := plainMailAs(t, addr, login)
		if code == want && strings.Contains(reply, substr) {
			return reply
		}
		if time.Now().After(deadline) {
			t.Fatalf("login %s from %s: %q after %d tries over %v, want %d %s", login, addr, reply, n, timeout, want, substr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var releaseCommand = regexp.MustCompile(`(?m)^\s+release\s`)

// releaseAccount runs `mailjail release ACCOUNT` against the daemon of cfgPath. It skips the
// test when the binary has no release command (the account CLI is built on another branch).
func releaseAccount(t *testing.T, bin, cfgPath, account string) {
	t.Helper()
	requireReleaseCommand(t, bin)
	out, err := mjCommand(bin, "--config", cfgPath, "release", account).CombinedOutput()
	if err != nil {
		t.Fatalf("mailjail release %s: %v\n%s", account, err, out)
	}
}

// requireReleaseCommand skips the test unless `mailjail --help` lists release.
func requireReleaseCommand(t *testing.T, bin string) {
	t.Helper()
	help, _ := mjCommand(bin, "--help").CombinedOutput()
	if !releaseCommand.Match(help) {
		t.Skip("needs mailjail release (the account commands are not in this binary)")
	}
}
