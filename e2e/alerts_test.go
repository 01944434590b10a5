package e2e

import (
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
