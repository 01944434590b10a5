package e2e

import (
	"encoding/json"
	"fmt"
	"net/mail"
	"strings"
	"testing"
	"time"
)

// TestAlertManualBanReachesMailboxThroughRspamd: a manual ban's alert, submitted by the
// daemon to the real Postfix on 127.0.0.1:25, passes rspamd's milter (its summary line for
// the Message-ID, not rejected, ratelimit skipped for postmaster) and lands in a real
// Maildir as a valid message with every header the README promises and a body naming the
// address and its unban command. `mailjail test-alert` arrives by the same path.
func TestAlertManualBanReachesMailboxThroughRspamd(t *testing.T) {
	requireE2E(t)
	const addr = "198.18.90.7"
	a := newAlertDaemon(t)
	bin := mailjailBinary(t)
	d := a.start(t, 1)
	defer d.stop()

	banned := time.Now()
	banMany(t, bin, a.cfgPath, []string{addr}, 1)
	ms := a.box.waitMails(1, 20*time.Second)
	if len(ms) != 1 {
		t.Fatalf("%d alert mails in %s after 20 s, want 1; outbox %q", len(ms), alertMaildir,
			dbQuery(t, a.cfg.Database, "SELECT kind, attempts, last_error FROM outbox"))
	}
	t.Logf("alert for %s delivered to the Maildir %v after the ban", addr, time.Since(banned).Round(time.Millisecond))
	m := ms[0]
	checkAlertHeaders(t, m, a.box.from, "ban")
	if subj := m.Header.Get("Subject"); !strings.Contains(subj, addr) {
		t.Errorf("Subject %q does not name %s", subj, addr)
	}
	for _, s := range []string{"ban of address " + addr + " in jail", "mailjail unban " + addr} {
		if !strings.Contains(m.Body, s) {
			t.Errorf("the body does not contain %q:\n%s", s, m.Body)
		}
	}
	checkPassedRspamd(t, m)

	out, err := mjCommand(bin, "--config", a.cfgPath, "test-alert").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "sent to "+alertRecipient) {
		t.Fatalf("mailjail test-alert: %v\n%s", err, out)
	}
	ms = a.box.waitMails(2, 20*time.Second)
	if len(ms) != 2 {
		t.Fatalf("test-alert printed %q, but %d mails arrived, want 2", out, len(ms))
	}
	checkAlertHeaders(t, ms[1], a.box.from, "")
	checkPassedRspamd(t, ms[1])
	t.Logf("test-alert: %q, X-Mailjail-Event %q, Subject %q", strings.TrimSpace(string(out)), ms[1].Event(), ms[1].Header.Get("Subject"))
}

// checkAlertHeaders checks the headers of README "Alert mails" on a delivered alert: From
// (from), To (the recipient), Subject, a parseable Date, Message-ID, Auto-Submitted and
// X-Mailjail-Event (event, when not empty).
func checkAlertHeaders(t *testing.T, m alertMail, from, event string) {
	t.Helper()
	if f, err := mail.ParseAddress(m.Header.Get("From")); err != nil || f.Address != from {
		t.Errorf("From %q, want %s", m.Header.Get("From"), from)
	}
	if to, err := m.Header.AddressList("To"); err != nil || len(to) != 1 || to[0].Address != alertRecipient {
		t.Errorf("To %q (%v), want %s", m.Header.Get("To"), err, alertRecipient)
	}
	if m.Header.Get("Subject") == "" {
		t.Errorf("no Subject")
	}
	if d, err := m.Header.Date(); err != nil || time.Since(d) > 5*time.Minute || time.Until(d) > time.Minute {
		t.Errorf("Date %q (%v): not a date of now", m.Header.Get("Date"), err)
	}
	if mid := m.Header.Get("Message-ID"); !strings.HasPrefix(mid, "<") || !strings.HasSuffix(mid, ">") || !strings.Contains(mid, "@") {
		t.Errorf("Message-ID %q, want <...@host>", mid)
	}
	if v := m.Header.Get("Auto-Submitted"); v != "auto-generated" {
		t.Errorf("Auto-Submitted %q, want auto-generated", v)
	}
	if event != "" && m.Event() != event {
		t.Errorf("X-Mailjail-Event %q, want %q", m.Event(), event)
	}
	if m.Event() == "" {
		t.Errorf("no X-Mailjail-Event")
	}
}

// checkPassedRspamd checks that rspamd scanned the delivered mail m (its summary line has
// m's Message-ID), did not reject it (the delivery proves that too) and skipped the
// ratelimit for the postmaster recipient.
func checkPassedRspamd(t *testing.T, m alertMail) {
	t.Helper()
	mid := m.Header.Get("Message-ID")
	var line string
	if !waitFor(func() bool { line = rspamdTaskLine(t, mid); return line != "" }, 5*time.Second) {
		t.Errorf("rspamd logged no task for %s: the mail did not pass its milter", mid)
		return
	}
	if strings.Contains(line, "reject") {
		t.Errorf("rspamd's verdict on the alert %s: %s", mid, line)
	}
	// The task's log tag (<abc123>) is on the ratelimit line of the same scan.
	tag := strings.TrimSuffix(strings.Fields(line)[3], ";")
	if skip := grepFile(t, rspamdLogPath, fmt.Sprintf("%s; lua; ratelimit.lua", tag)); !strings.Contains(skip, "skip ratelimit for whitelisted recipient") {
		t.Errorf("rspamd task %s: no \"skip ratelimit for whitelisted recipient\" (got %q)", tag, skip)
	}
}

// TestAlertBurstOfThousandBansIsTwoMails: 1,000 manual bans in 20 commands of 50, with
// digest_interval = 20s: the first mail goes at once (it holds what was queued when the
// worker woke: the first command's bans, one transaction), the rest gather into one digest
// mailed when the interval is over; the two mails name every address exactly once.
func TestAlertBurstOfThousandBansIsTwoMails(t *testing.T) {
	requireE2E(t)
	const interval = 20 * time.Second
	a := newAlertDaemon(t, fmt.Sprintf("digest_interval = %q", interval.String()))
	bin := mailjailBinary(t)
	d := a.start(t, 1)
	defer d.stop()
	addrs := alertAddrs(100, 1000)

	start := time.Now()
	banMany(t, bin, a.cfgPath, addrs, 50)
	t.Logf("1,000 bans in 20 commands took %v", time.Since(start).Round(time.Millisecond))
	ms := a.box.waitMails(1, interval/2)
	first := time.Since(start)
	if len(ms) == 0 {
		t.Fatalf("no mail %v after the first ban: the first alert must go at once", first.Round(time.Millisecond))
	}
	ms = a.box.waitMails(2, interval+20*time.Second)
	second := time.Since(start)
	// A third mail would come at once or after another interval: none may.
	if more := a.box.waitMails(3, 5*time.Second); len(more) > 2 {
		ms = more
	}
	var sizes []string
	for _, m := range ms {
		sizes = append(sizes, fmt.Sprintf("%s %q (%d bytes)", m.Event(), m.Header.Get("Subject"), len(m.Body)))
	}
	t.Logf("%d mails: the first %v, the second %v after the first ban: %v", len(ms), first.Round(time.Millisecond), second.Round(time.Millisecond), sizes)
	if len(ms) != 2 {
		t.Fatalf("%d alert mails for a burst of 1,000 bans, want 2 (the first at once, one digest): %v", len(ms), sizes)
	}
	if second < interval-2*time.Second {
		t.Errorf("the digest came %v after the first ban, before digest_interval %v", second.Round(time.Millisecond), interval)
	}
	for _, m := range ms {
		checkAlertHeaders(t, m, a.box.from, "")
		checkPassedRspamd(t, m)
	}
	if ms[1].Event() != "digest" {
		t.Errorf("the second mail's X-Mailjail-Event %q, want digest", ms[1].Event())
	}
	counted := alertedAddrs(ms)
	missing, twice := 0, 0
	for _, addr := range addrs {
		switch counted[addr] {
		case 0:
			missing++
		case 1:
		default:
			twice++
		}
	}
	if missing > 0 || twice > 0 || len(counted) != len(addrs) {
		t.Errorf("the mails name %d addresses: %d of the 1,000 missing, %d more than once, %d others", len(counted), missing, twice, len(counted)-len(addrs)+missing)
	}
	rest := len(alertedAddrs(ms[1:]))
	if want := fmt.Sprintf("%d events", rest); !strings.Contains(ms[1].Header.Get("Subject"), want) {
		t.Errorf("digest Subject %q, want %q", ms[1].Header.Get("Subject"), want)
	}
}

// TestAlertRelayDownForAMinuteEveryAlertOnce: Postfix is stopped, 12 addresses are banned in
// 4 commands, and after a minute Postfix is started again: the daemon logged its failed
// attempts and retried them, and every address arrives exactly once.
func TestAlertRelayDownForAMinuteEveryAlertOnce(t *testing.T) {
	requireE2E(t)
	const down = 60 * time.Second
	a := newAlertDaemon(t, `digest_interval = "10s"`)
	bin := mailjailBinary(t)
	d := a.start(t, 1)
	defer d.stop()
	addrs := alertAddrs(110, 12)

	stopPostfix(t)
	stopped := time.Now()
	for i := 0; i < len(addrs); i += 3 {
		banMany(t, bin, a.cfgPath, addrs[i:i+3], 3)
		time.Sleep(time.Second)
	}
	// Measured from the first ban, so that the backoff's attempt at +63 s finds the relay up.
	time.Sleep(down - time.Since(stopped))
	if n := len(a.box.mails()); n != 0 {
		t.Fatalf("%d mails with the relay stopped", n)
	}
	startPostfix(t)
	started := time.Now()
	t.Logf("relay down %v; while down: %s", started.Sub(stopped).Round(time.Millisecond), outboxSummary(t, bin, a.cfgPath))

	got := awaitAlertedOnce(t, a.box, addrs, 45*time.Second)
	t.Logf("all %d addresses delivered %v after the relay came back, in %d mails", len(addrs), time.Since(started).Round(time.Millisecond), got)
	retries := retryLines(d.output())
	if len(retries) == 0 {
		t.Errorf("the daemon logged no failed attempt (\"will retry\") while the relay was stopped")
	}
	t.Logf("%d failed attempts logged; those of the first mail: %v", len(retries), firstRetries(retries))
}

// TestAlertPendingAcrossRestartDeliveredOnce: with Postfix stopped, 9 addresses are banned
// and their first attempts fail; the daemon is killed (SIGKILL) with the alerts pending,
// Postfix started, the daemon started again: every alert arrives once.
func TestAlertPendingAcrossRestartDeliveredOnce(t *testing.T) {
	requireE2E(t)
	a := newAlertDaemon(t, `digest_interval = "10s"`)
	bin := mailjailBinary(t)
	d := a.start(t, 1)
	addrs := alertAddrs(120, 9)

	stopPostfix(t)
	for i := 0; i < len(addrs); i += 3 {
		banMany(t, bin, a.cfgPath, addrs[i:i+3], 3)
	}
	if !waitFor(func() bool { return len(retryLines(d.output())) > 0 }, 15*time.Second) {
		t.Fatalf("no failed attempt logged within 15 s with the relay stopped")
	}
	d.kill()
	pending := outboxSummary(t, bin, a.cfgPath)
	t.Logf("killed with the relay down; outbox: %s", pending)
	startPostfix(t)
	if n := len(a.box.mails()); n != 0 {
		t.Fatalf("%d mails before the restart", n)
	}
	restarted := time.Now()
	d = a.start(t, 2)
	defer d.stop()
	got := awaitAlertedOnce(t, a.box, addrs, 60*time.Second)
	t.Logf("all %d addresses delivered %v after the restart, in %d mails", len(addrs), time.Since(restarted).Round(time.Millisecond), got)
}

// awaitAlertedOnce waits until b's mails name every address of addrs, then for 5 s more,
// and fails unless each is named exactly once and no other address is; it returns the
// number of mails.
func awaitAlertedOnce(t *testing.T, b *alertBox, addrs []string, timeout time.Duration) int {
	t.Helper()
	all := func() bool {
		n := alertedAddrs(b.mails())
		for _, a := range addrs {
			if n[a] == 0 {
				return false
			}
		}
		return true
	}
	ok := waitFor(all, timeout)
	time.Sleep(5 * time.Second) // a duplicate would come in a later pass
	ms := b.mails()
	n := alertedAddrs(ms)
	var wrong []string
	for _, a := range addrs {
		if n[a] != 1 {
			wrong = append(wrong, fmt.Sprintf("%s ×%d", a, n[a]))
		}
		delete(n, a)
	}
	for a, k := range n {
		wrong = append(wrong, fmt.Sprintf("unexpected %s ×%d", a, k))
	}
	if !ok || len(wrong) > 0 {
		var subj []string
		for _, m := range ms {
			subj = append(subj, m.Header.Get("Subject"))
		}
		t.Errorf("after %v: alerts not exactly once each: %v; mails %q", timeout, wrong, subj)
	}
	return len(ms)
}

// retryLines returns the daemon's log lines of failed outbox attempts, cut to their time,
// attempt, retry_at and error.
func retryLines(out string) []string {
	var r []string
	for _, l := range strings.Split(out, "\n") {
		if !strings.Contains(l, "will retry") {
			continue
		}
		var keep []string
		for _, f := range strings.Fields(l) {
			for _, k := range []string{"time=", "first_id=", "attempt=", "retry_at=", "items="} {
				if strings.HasPrefix(f, k) {
					keep = append(keep, f)
				}
			}
		}
		r = append(r, strings.Join(keep, " "))
	}
	return r
}

// firstRetries keeps the retryLines of the first item that failed.
func firstRetries(lines []string) []string {
	if len(lines) == 0 {
		return nil
	}
	id := func(l string) string {
		for _, f := range strings.Fields(l) {
			if strings.HasPrefix(f, "first_id=") {
				return f
			}
		}
		return ""
	}
	var r []string
	for _, l := range lines {
		if id(l) == id(lines[0]) {
			r = append(r, l)
		}
	}
	return r
}

// outboxSummary is `mailjail outbox --json` reduced to counts by kind and state, for the log.
func outboxSummary(t *testing.T, bin, cfgPath string) string {
	t.Helper()
	out, err := mjCommand(bin, "--config", cfgPath, "outbox", "--json").Output()
	if err != nil {
		return fmt.Sprintf("(mailjail outbox --json: %v)", err)
	}
	var o struct {
		Outbox []struct {
			Kind     string `json:"kind"`
			State    string `json:"state"`
			Attempts int    `json:"attempts"`
		} `json:"outbox"`
	}
	if err := json.Unmarshal(out, &o); err != nil {
		t.Errorf("mailjail outbox --json: %v in %q", err, out)
	}
	n := map[string]int{}
	for _, it := range o.Outbox {
		n[it.Kind+" "+it.State]++
	}
	return fmt.Sprint(n)
}
