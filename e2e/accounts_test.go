package e2e

import (
	"encoding/hex"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// addrHex is how SQL's hex() shows an address as strikes store it (its 4
// or 16 bytes).
func addrHex(a string) string {
	return strings.ToUpper(hex.EncodeToString(netip.MustParseAddr(a).AsSlice()))
}

// webmailAddr is the provider's webmail host in these tests: in ignoreip, shared by every
// account that logs in through it.
const webmailAddr = "198.18.42.80"

// suspendedReply is what rspamd's MAILJAIL_ACCOUNT_SUSPENDED rule answers.
const suspendedReply = "554 5.7.1 account suspended"

// TestAccountSuspendedNotItsWebmailThroughKill drives a stolen password end to end: mallory
// sends from two attacker addresses and through the webmail host until rspamd's `user`
// bucket has soft-rejected her maxretry (4) times. Then mallory is in the account map; the
// attacker addresses are banned, the webmail host (ignoreip) is not; with her buckets
// cleared, her next message from a fresh address gets 554 account suspended (no address
// ban can have refused it) while another login through the webmail host passes. After
// SIGKILL, an emptied account map and a restart the map lists her again (rewritten from
// the database) and she still gets 554.
func TestAccountSuspendedNotItsWebmailThroughKill(t *testing.T) {
	requireE2E(t)
	const (
		attacker1, attacker2 = "198.18.41.11", "198.18.41.12"
		fresh1, fresh2       = "198.18.41.13", "198.18.41.14"
	)
	mallory := uniqueLogin("mallory", "example.org")
	alice := uniqueLogin("alice", "example.org")
	keys := ratelimitKeys(t, []string{mallory, alice}, []string{attacker1, attacker2, webmailAddr, fresh1, fresh2})
	clearBuckets(t, keys, mallory, alice, attacker1, attacker2, webmailAddr, fresh1, fresh2)
	a := newAccountDaemon(t, accountJail{MaxRetry: 4, FindTime: "10m", BanTime: "1h"}, func(c *daemonConfig) {
		c.IgnoreIP = append(c.IgnoreIP, webmailAddr)
	})
	d := a.start(t, 1)

	start := time.Now()
	passed, per := overUserBucket(t, keys, mallory, []string{attacker1, attacker2, webmailAddr}, 4)
	rejected := time.Now()
	t.Logf("%s: %d accepted, then rejected %v (%v)", mallory, passed, per, rejected.Sub(start).Round(time.Millisecond))
	awaitAccountListed(t, a.accountMap, mallory, true, 10*time.Second)
	t.Logf("%s in the account map %v after the 4th rejection's reply", mallory, time.Since(rejected).Round(time.Millisecond))

	// The address map is a target of its own, written beside the account map, not
	// before it: wait for it too.
	var ips mapSnapshot
	waitFor(func() bool {
		ips = readMap(t, a.cfg.MapFile)
		return ips.has(attacker1) && ips.has(attacker2)
	}, 5*time.Second)
	for _, addr := range []string{attacker1, attacker2} {
		if !ips.has(addr) {
			t.Errorf("attacker address %s not banned: IP map %v", addr, ips)
		}
	}
	if ips.has(webmailAddr) {
		t.Errorf("webmail address %s (ignoreip) banned: IP map %v", webmailAddr, ips)
	}
	rows := dbQuery(t, a.cfg.Database, "SELECT jail, strikes, sources, enforced FROM suspensions WHERE account = '%s' AND lifted IS NULL", mallory)
	want := "rspamd-user|4|" + sourcesField(per) + "|1"
	if len(rows) != 1 || normSources(rows[0]) != normSources(want) {
		t.Errorf("suspensions of %s: %q, want one %q", mallory, rows, want)
	}
	var alerts []string
	if !waitFor(func() bool { alerts = a.alerts.messages(); return len(alerts) > 0 }, 10*time.Second) {
		t.Errorf("no alert delivered; outbox %q", dbQuery(t, a.cfg.Database, "SELECT kind, done, last_error FROM outbox"))
	} else {
		for _, s := range []string{mallory, attacker1, attacker2, webmailAddr, "mailjail release " + mallory} {
			if !strings.Contains(alerts[0], s) {
				t.Errorf("the alert does not name %q:\n%s", s, alerts[0])
			}
		}
	}
	reply := expectAccountReply(t, keys, fresh1, mallory, 554, "account suspended", 5*time.Second)
	if !strings.HasPrefix(reply, suspendedReply) {
		t.Errorf("mallory from fresh %s: %q, want %q", fresh1, reply, suspendedReply)
	}
	if readMap(t, a.cfg.MapFile).has(fresh1) {
		t.Errorf("fresh address %s in the IP map: the 554 may be an address ban", fresh1)
	}
	clearBuckets(t, keys, alice, webmailAddr)
	if code, reply := plainMailAs(t, webmailAddr, alice); code != 250 {
		t.Errorf("%s through the webmail host %s: %q, want 250", alice, webmailAddr, reply)
	}

	d.kill()
	resetMap(t, a.accountMap) // as lost; the database has the suspension
	restarted := time.Now()
	d = a.start(t, 2)
	awaitAccountListed(t, a.accountMap, mallory, true, 5*time.Second)
	t.Logf("after SIGKILL and an emptied map: %s listed again %v after the restart", mallory, time.Since(restarted).Round(time.Millisecond))
	expectAccountReply(t, keys, fresh2, mallory, 554, "account suspended", 5*time.Second)
	ips = readMap(t, a.cfg.MapFile)
	if !ips.has(attacker1) || !ips.has(attacker2) || ips.has(webmailAddr) {
		t.Errorf("IP map after the restart %v, want %s and %s, not %s", ips, attacker1, attacker2, webmailAddr)
	}
	d.stop()
	resetMap(t, a.accountMap)
}

// sourcesField renders per as the suspensions table's sources column: "ADDR=COUNT ...".
func sourcesField(per map[string]int) string {
	var f []string
	for addr, n := range per {
		f = append(f, addr+"="+strconv.Itoa(n))
	}
	return strings.Join(f, " ")
}

// normSources sorts the sources field of a "jail|strikes|sources|enforced" row, so that
// the comparison does not depend on the order the daemon writes them in.
func normSources(row string) string {
	f := strings.Split(row, "|")
	if len(f) != 4 {
		return row
	}
	s := strings.Fields(f[2])
	slices.Sort(s)
	f[2] = strings.Join(s, " ")
	return strings.Join(f, "|")
}

// TestAccountSuspensionExpiresAfterBantime: a suspension of bantime 10 s leaves the account
// map by itself and the account's next message passes again.
func TestAccountSuspensionExpiresAfterBantime(t *testing.T) {
	requireE2E(t)
	const attacker, fresh = "198.18.41.21", "198.18.41.22"
	eve := uniqueLogin("eve", "example.org")
	keys := ratelimitKeys(t, []string{eve}, []string{attacker, fresh})
	clearBuckets(t, keys, eve, attacker, fresh)
	a := newAccountDaemon(t, accountJail{MaxRetry: 2, FindTime: "10m", BanTime: "10s"}, nil)
	d := a.start(t, 1)

	overUserBucket(t, keys, eve, []string{attacker}, 2)
	awaitAccountListed(t, a.accountMap, eve, true, 10*time.Second)
	suspended := time.Now()
	expectAccountReply(t, keys, fresh, eve, 554, "account suspended", 5*time.Second)
	awaitAccountListed(t, a.accountMap, eve, false, 25*time.Second)
	t.Logf("%s left the account map %v after it entered (bantime 10s)", eve, time.Since(suspended).Round(time.Millisecond))
	expectAccountReply(t, keys, fresh, eve, 250, "", 5*time.Second)
	if n := dbCount(t, a.cfg.Database, "SELECT count(*) FROM suspensions WHERE account = %s AND lifted IS NULL", eve); n != 0 {
		t.Errorf("%s: %d suspensions not lifted after bantime", eve, n)
	}
	d.stop()
}

// TestAccountReleaseLetsSuspendedAccountMailAgain: `mailjail release ACCOUNT` takes a
// suspended account out of the map before it returns, and its next message passes. It
// skips while the binary has no release command.
func TestAccountReleaseLetsSuspendedAccountMailAgain(t *testing.T) {
	requireE2E(t)
	requireReleaseCommand(t, mailjailBinary(t))
	const attacker, fresh = "198.18.41.31", "198.18.41.32"
	trent := uniqueLogin("trent", "example.org")
	keys := ratelimitKeys(t, []string{trent}, []string{attacker, fresh})
	clearBuckets(t, keys, trent, attacker, fresh)
	a := newAccountDaemon(t, accountJail{MaxRetry: 2, FindTime: "10m", BanTime: "1h"}, nil)
	d := a.start(t, 1)

	overUserBucket(t, keys, trent, []string{attacker}, 2)
	awaitAccountListed(t, a.accountMap, trent, true, 10*time.Second)
	expectAccountReply(t, keys, fresh, trent, 554, "account suspended", 5*time.Second)
	releaseAccount(t, mailjailBinary(t), a.cfgPath, trent)
	if readAccounts(t, a.accountMap)[trent] {
		t.Fatalf("%s still in the account map when release returned", trent)
	}
	expectAccountReply(t, keys, fresh, trent, 250, "", 5*time.Second)
	if n := dbCount(t, a.cfg.Database, "SELECT count(*) FROM suspensions WHERE account = %s AND lifted IS NULL", trent); n != 0 {
		t.Errorf("%s: %d suspensions not lifted after release", trent, n)
	}
	d.stop()
}

// TestAccountMixedCaseLoginSuspendedNormalised: a login written Mallory-X-N@Example.ORG is
// suspended as mallory-x-n@example.org (mailjail folds the whole login), and rspamd must
// still refuse the next message sent with the original spelling and with any other: that
// depends on rspamd's `user` map lookup being case-insensitive, which rspamd 3.4's is, for
// the whole login. rspamd's `user` bucket, though, is keyed by the login as written (Redis
// holds 20000:Mallory-X-N@Example.ORG), so every spelling has a bucket of its own there:
// mailjail counting them as one account is what keeps a case-rotating attacker in one count.
func TestAccountMixedCaseLoginSuspendedNormalised(t *testing.T) {
	requireE2E(t)
	const attacker, fresh = "198.18.41.41", "198.18.41.42"
	local := strings.TrimSuffix(uniqueLogin("Mallory-X", ""), "@")
	login := local + "@Example.ORG"
	lower := strings.ToLower(login)
	normalised := lower
	keys := ratelimitKeys(t, []string{login, lower}, []string{attacker, fresh})
	clearBuckets(t, keys, login, lower, attacker, fresh)
	a := newAccountDaemon(t, accountJail{MaxRetry: 2, FindTime: "10m", BanTime: "1h"}, nil)
	d := a.start(t, 1)

	overUserBucket(t, keys, login, []string{attacker}, 2)
	awaitAccountListed(t, a.accountMap, normalised, true, 10*time.Second)
	if got := readAccounts(t, a.accountMap); got[login] || len(got) != 1 {
		t.Errorf("account map %v lists a spelling other than %s", got, normalised)
	}
	reply := expectAccountReply(t, keys, fresh, login, 554, "account suspended", 3*time.Second)
	t.Logf("%s (map: %s) from %s: %q", login, normalised, fresh, reply)
	// rspamd folds the local part too: the map's spelling is refused as well.
	clearBuckets(t, keys, lower, fresh)
	if code, reply := plainMailAs(t, fresh, lower); code != 554 || !strings.Contains(reply, "account suspended") {
		t.Errorf("all lower case %s from %s: %q, want 554 account suspended", lower, fresh, reply)
	}
	d.stop()
	resetMap(t, a.accountMap)
}

// TestAccountHostileFieldsNameNoAccount: messages whose envelope sender is
// <x, user: victim-N@example.org> (or <x, ip: 198.18.42.80, user: victim-N@example.org>,
// rspamd's own "ip: A, user: L," again) and whose Message-ID carries "user:
// victim-N@example.org, ip: 198.18.42.80" — sent without authentication and authenticated as
// carol, each under and over the rate — never give victim a strike or a suspension and never
// strike or ban the webmail address (not in ignoreip here), although rspamd's summary lines
// hold both.
func TestAccountHostileFieldsNameNoAccount(t *testing.T) {
	requireE2E(t)
	const anon, carolAddr = "198.18.41.51", "198.18.41.52"
	victim := uniqueLogin("victim", "example.org")
	carol := uniqueLogin("carol", "example.org")
	victimLocal := strings.TrimSuffix(victim, "@example.org")
	msg, err := os.CreateTemp(t.TempDir(), "hostile-*.eml")
	if err == nil {
		_, err = msg.WriteString("From: <attacker@example.org>\nTo: <e2e@localhost>\nSubject: hostile account fields\n" +
			"Message-ID: <h>, user: " + victim + ", ip: " + webmailAddr + ", <" + victimLocal + "@example.org>\n\nbody\n")
		if cerr := msg.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	// rspamd drops the quotes: from: <x, user: victim-N@example.org>.
	hostile := [][]string{
		{"--from", `"x, user: ` + victimLocal + `"@example.org`, "--data", "@" + msg.Name()},
		{"--from", `"x, ip: ` + webmailAddr + `, user: ` + victimLocal + `"@example.org`, "--data", "@" + msg.Name()},
	}

	keys := ratelimitKeys(t, []string{carol, victim}, []string{anon, carolAddr, webmailAddr})
	clearBuckets(t, keys, carol, victim, anon, carolAddr, webmailAddr)
	// Both jails count and never act, so that every strike shows.
	a := newAccountDaemon(t, accountJail{MaxRetry: 100, FindTime: "10m", BanTime: "1h"}, func(c *daemonConfig) { c.MaxRetry = 100 })
	d := a.start(t, 1)
	lt := tailLog(t, rspamdLogPath)

	expect := func(who string, code int, reply string, want int, substr string) {
		t.Helper()
		if code != want || !strings.Contains(reply, substr) {
			t.Fatalf("%s: %q, want %d %s", who, reply, want, substr)
		}
	}
	// Without authentication: each accepted under the ip rate (burst 3), then rejected over it.
	for i, h := range hostile {
		clearBuckets(t, keys, anon)
		code, reply := swaksAs(t, anon, h...)
		expect("unauthenticated hostile message "+strconv.Itoa(i+1)+" under the rate", code, reply, 250, "")
	}
	for code := 250; code == 250; {
		var reply string
		code, reply = swaksAs(t, anon, "--from", "plain@example.org")
		if code != 250 {
			expect("plain message from "+anon, code, reply, 451, `Ratelimit "ip" exceeded`)
		}
	}
	for i, h := range hostile {
		code, reply := swaksAs(t, anon, h...)
		expect("unauthenticated hostile message "+strconv.Itoa(i+1)+" over the rate", code, reply, 451, `Ratelimit "ip" exceeded`)
	}
	// Authenticated as carol: the same, over her user bucket (her ip bucket cleared each time).
	for i, h := range hostile {
		clearBuckets(t, keys, carolAddr)
		code, reply := mailAs(t, carolAddr, carol, h...)
		expect("carol's hostile message "+strconv.Itoa(i+1)+" under the rate", code, reply, 250, "")
	}
	overUserBucket(t, keys, carol, []string{carolAddr}, 1)
	for i, h := range hostile {
		clearBuckets(t, keys, carolAddr)
		code, reply := mailAs(t, carolAddr, carol, h...)
		expect("carol's hostile message "+strconv.Itoa(i+1)+" over the rate", code, reply, 451, userExceeded)
	}
	// A plain rejected message of each, sent last: once it is a strike, the daemon has read
	// every line before it.
	code, reply := swaksAs(t, anon, "--from", "sync@example.org")
	expect("last plain message from "+anon, code, reply, 451, `Ratelimit "ip" exceeded`)
	clearBuckets(t, keys, carolAddr)
	code, reply = mailAs(t, carolAddr, carol, "--from", "sync-"+carol)
	expect("carol's last plain message", code, reply, 451, userExceeded)
	db := a.cfg.Database
	if !waitFor(func() bool {
		return dbCount(t, db, "SELECT count(*) FROM account_strikes WHERE account = %s AND line LIKE '%%from: <sync-'||%s||'>%%'", carol, carol) == 1 &&
			dbCount(t, db, "SELECT count(*) FROM strikes WHERE hex(addr) = %s", addrHex(anon)) == 3
	}, 10*time.Second) {
		t.Fatalf("the last plain messages' strikes never arrived; account strikes %q, strikes %q",
			dbQuery(t, db, "SELECT account, client, line FROM account_strikes"), dbQuery(t, db, "SELECT hex(addr), line FROM strikes"))
	}

	for _, q := range []string{
		"SELECT count(*) FROM account_strikes WHERE account LIKE '%%' || %s || '%%'",
		"SELECT count(*) FROM suspensions WHERE account LIKE '%%' || %s || '%%'",
		"SELECT count(*) FROM accounts WHERE account LIKE '%%' || %s || '%%'",
	} {
		if n := dbCount(t, db, q, victimLocal); n != 0 {
			t.Errorf("%q: %d for %s, want 0: %q", q, n, victim, dbQuery(t, db, "SELECT account, client, line FROM account_strikes"))
		}
	}
	if n := dbCount(t, db, "SELECT count(*) FROM strikes WHERE hex(addr) = %s", addrHex(webmailAddr)); n != 0 {
		t.Errorf("%d strikes of %s, want 0", n, webmailAddr)
	}
	for _, q := range []string{
		"SELECT count(*) FROM bans WHERE addr = %s",
		"SELECT count(*) FROM account_strikes WHERE client = %s",
	} {
		if n := dbCount(t, db, q, webmailAddr); n != 0 {
			t.Errorf("%q: %d for %s, want 0", q, n, webmailAddr)
		}
	}
	if got := readAccounts(t, a.accountMap); len(got) != 0 {
		t.Errorf("account map %v, want empty (maxretry 100)", got)
	}
	if ips := readMap(t, a.cfg.MapFile); ips.has(webmailAddr) {
		t.Errorf("%s in the IP map %v", webmailAddr, ips)
	}
	if n := dbCount(t, db, "SELECT count(*) FROM account_strikes WHERE account != %s", carol); n != 0 {
		t.Errorf("%d account strikes of others than carol: %q", n, dbQuery(t, db, "SELECT account, client, line FROM account_strikes"))
	}
	// The line whose sender forges a second "ip: A, user: L," is refused as a whole (the
	// filter cannot tell which pair rspamd wrote): no strike for anyone, as with the address
	// jail's hostile senders. Each other rejection is a strike of the real client or login.
	carolStrikes := dbCount(t, db, "SELECT count(*) FROM account_strikes WHERE account = %s", carol)
	anonStrikes := dbCount(t, db, "SELECT count(*) FROM strikes WHERE hex(addr) = %s", addrHex(anon))
	t.Logf("rejected 4 times each (plain, hostile user:, hostile ip:+user:, plain): carol %d strikes, %s %d", carolStrikes, anon, anonStrikes)
	if carolStrikes != 3 || anonStrikes != 3 {
		t.Errorf("carol %d strikes, %s %d, want 3 each (the forged second field evades): %q", carolStrikes, anon, anonStrikes,
			dbQuery(t, db, "SELECT account, client, line FROM account_strikes"))
	}
	// The attack reached the log: rspamd's summary lines name the victim after a real login.
	if n := len(lt.matching(func(s string) bool {
		return strings.Contains(s, "rspamd_task_write_log:") && strings.Contains(s, ", user: "+carol+", from: <x, ip: "+webmailAddr+", user: "+victim+">")
	}, d.readyAt)); n != 2 {
		t.Errorf("%d rspamd summary lines hold carol's login and then the forged %q, want 2", n, "ip: "+webmailAddr+", user: "+victim)
	}
	d.stop()
}
