package e2e

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// Alert delivery of the e2e Postfix (setup.sh, block "alert mailboxes"): the virtual domain
// alertDomain is delivered by virtual(8) into Maildirs under alertMailBase.
const (
	alertDomain   = "alerts.mailjail-e2e.test"
	alertMailBase = "/var/mail/mailjail-e2e"
	// alertRecipient is postmaster: rspamd's ratelimit skips mail to it
	// (whitelisted_rcpts' default), so alerts from 127.0.0.1 do not fill the
	// loopback `ip` bucket (burst 3 in setup.sh) and get 451.
	alertRecipient = "postmaster@" + alertDomain
	postfixMailLog = "/var/log/mail.log"
)

// alertMaildir is the Maildir of alertRecipient.
var alertMaildir = filepath.Join(alertMailBase, alertDomain, "postmaster")

// alertBox is one test's view of the shared alert Maildir: the mails whose From is the
// test's own sender address. Every test (and every run of -count) gets a fresh sender, so
// mails of earlier tests, or late ones of a test that failed, never count for another; the
// test's mails are deleted when it ends.
type alertBox struct {
	t    *testing.T
	from string
}

// newAlertBox returns a box with a fresh sender; it fails the test when setup.sh has not
// created the Maildir yet.
func newAlertBox(t *testing.T) *alertBox {
	t.Helper()
	if _, err := os.Stat(alertMailBase); err != nil {
		t.Fatalf("no alert mailboxes (%v): run e2e/setup.sh (block \"alert mailboxes\")", err)
	}
	b := &alertBox{t: t, from: fmt.Sprintf("mailjail-%d-%d@%s", os.Getpid(), time.Now().UnixNano(), alertDomain)}
	t.Cleanup(func() {
		for _, m := range b.mails() {
			_ = os.Remove(m.Path)
		}
	})
	return b
}

// alertSection is the [alert] section of a daemon that mails b's recipient through the
// local Postfix; extra lines (digest_interval = "20s") are appended.
func (b *alertBox) alertSection(extra ...string) string {
	s := fmt.Sprintf("[alert]\nsmtp = %q\nfrom = %q\nto = [%q]\ntimeout = \"10s\"\n", smtpHost+":"+smtpPort, b.from, alertRecipient)
	for _, e := range extra {
		s += e + "\n"
	}
	return s
}

// alertMail is one delivered alert, parsed.
type alertMail struct {
	Path   string
	Header mail.Header
	Body   string // decoded (quoted-printable or base64 undone)
}

// Event is the X-Mailjail-Event header: the event, or "digest".
func (m alertMail) Event() string { return m.Header.Get("X-Mailjail-Event") }

// mails reads the Maildir now and returns b's mails (new and cur), oldest first.
func (b *alertBox) mails() []alertMail {
	b.t.Helper()
	var out []alertMail
	for _, sub := range []string{"new", "cur"} {
		dir := filepath.Join(alertMaildir, sub)
		ents, err := os.ReadDir(dir)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			b.t.Fatalf("reading the alert Maildir: %v", err)
		}
		for _, e := range ents {
			p := filepath.Join(dir, e.Name())
			data, err := os.ReadFile(p)
			if os.IsNotExist(err) {
				continue // removed by another box's cleanup
			}
			if err != nil {
				b.t.Fatalf("reading %s: %v", p, err)
			}
			m, err := mail.ReadMessage(bytes.NewReader(data))
			if err != nil {
				// Not ours to judge, unless it is ours: a sender match in the raw bytes.
				if bytes.Contains(data, []byte(b.from)) {
					b.t.Errorf("alert %s is not a valid message: %v\n%s", p, err, data)
				}
				continue
			}
			from, err := mail.ParseAddress(m.Header.Get("From"))
			if err != nil || from.Address != b.from {
				continue
			}
			body, err := decodeBody(m)
			if err != nil {
				b.t.Errorf("alert %s: body: %v", p, err)
			}
			out = append(out, alertMail{Path: p, Header: m.Header, Body: body})
		}
	}
	// By Date (seconds), then by name: Maildir names start with the delivery's second too,
	// but their microseconds are not zero-padded.
	slices.SortFunc(out, func(x, y alertMail) int {
		dx, _ := x.Header.Date()
		dy, _ := y.Header.Date()
		if c := dx.Compare(dy); c != 0 {
			return c
		}
		return strings.Compare(filepath.Base(x.Path), filepath.Base(y.Path))
	})
	return out
}

// waitMails waits until b holds at least n mails and returns them.
func (b *alertBox) waitMails(n int, timeout time.Duration) []alertMail {
	b.t.Helper()
	var ms []alertMail
	waitFor(func() bool { ms = b.mails(); return len(ms) >= n }, timeout)
	return ms
}

// decodeBody undoes the message's Content-Transfer-Encoding.
func decodeBody(m *mail.Message) (string, error) {
	var r io.Reader = m.Body
	switch strings.ToLower(strings.TrimSpace(m.Header.Get("Content-Transfer-Encoding"))) {
	case "quoted-printable":
		r = quotedprintable.NewReader(r)
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, r)
	}
	b, err := io.ReadAll(r)
	return string(b), err
}

// alertedRe finds each alert of a body: one line per alert, in a single alert's first line
// ("mailjail on H: ban of address A in jail J.") and in each digest section's heading
// ("--- 3 of 40: ban of address A in jail J ---").
var alertedRe = regexp.MustCompile(`(?m)(?:^mailjail on \S+: |^--- \d+ of \d+: )(\S+) of (?:address|prefix|account) (\S+) in jail `)

// alertedAddrs counts the addresses the mails alert about, event "ban" only.
func alertedAddrs(ms []alertMail) map[string]int {
	n := map[string]int{}
	for _, m := range ms {
		for _, sm := range alertedRe.FindAllStringSubmatch(m.Body, -1) {
			if sm[1] == "ban" {
				n[sm[2]]++
			}
		}
	}
	return n
}

// rspamdTaskLine returns rspamd's summary line of the message with Message-ID mid, "" when
// rspamd logged none.
func rspamdTaskLine(t *testing.T, mid string) string {
	t.Helper()
	return grepFile(t, rspamdLogPath, "rspamd_task_write_log: id: "+mid+",")
}

// grepFile returns the last line of path that contains s, "" when none does.
func grepFile(t *testing.T, path, s string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	last := ""
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			last = sc.Text()
		}
	}
	return last
}

// stopPostfix stops the e2e Postfix (`postfix stop`) and makes sure it runs again when the
// test ends, whatever happens.
func stopPostfix(t *testing.T) {
	t.Helper()
	t.Cleanup(func() {
		if !postfixRunning() {
			startPostfix(t)
		}
	})
	if out, err := exec.Command("postfix", "stop").CombinedOutput(); err != nil {
		t.Fatalf("postfix stop: %v\n%s", err, out)
	}
	if !waitFor(func() bool { return !smtpAnswers() }, 10*time.Second) {
		t.Fatalf("port %s still answers 10 s after postfix stop", smtpPort)
	}
}

// startPostfix starts the e2e Postfix and waits until port 25 answers.
func startPostfix(t *testing.T) {
	t.Helper()
	cmd := exec.Command("postfix", "start")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, nil, nil // a daemon must not keep the test's pipes
	if err := cmd.Run(); err != nil {
		t.Errorf("postfix start: %v", err)
		return
	}
	if !waitFor(smtpAnswers, 10*time.Second) {
		t.Errorf("Postfix does not answer on port %s 10 s after postfix start", smtpPort)
	}
}

func postfixRunning() bool { return exec.Command("postfix", "status").Run() == nil }

// smtpAnswers reports whether something accepts connections on the e2e SMTP port.
func smtpAnswers() bool {
	c, err := net.DialTimeout("tcp", smtpHost+":"+smtpPort, 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// banMany bans addrs through `mailjail ban` (per chunk addresses per command, bantime 1h).
func banMany(t *testing.T, bin, cfgPath string, addrs []string, chunk int) {
	t.Helper()
	for i := 0; i < len(addrs); i += chunk {
		part := addrs[i:min(i+chunk, len(addrs))]
		args := append([]string{"--config", cfgPath, "ban", "--for", "1h", "--reason", "e2e alert"}, part...)
		if out, err := mjCommand(bin, args...).CombinedOutput(); err != nil {
			t.Fatalf("mailjail ban (%d addresses from %s): %v\n%s", len(part), part[0], err, out)
		}
	}
}

// alertAddrs returns n distinct IPv4 addresses from 198.18.block.0 on (256 per /24).
func alertAddrs(block, n int) []string {
	out := make([]string, n)
	for i := range n {
		out[i] = fmt.Sprintf("198.18.%d.%d", block+i/256, i%256)
	}
	return out
}

// alertDaemon is a daemon configuration that mails its own alertBox through the local
// Postfix and writes its own map file (not the shared one: alerts are what these tests
// look at).
type alertDaemon struct {
	dir, cfgPath string
	cfg          daemonConfig
	box          *alertBox
}

// newAlertDaemon writes the configuration; extra lines go into [alert].
func newAlertDaemon(t *testing.T, extra ...string) *alertDaemon {
	t.Helper()
	dir := daemonDir(t)
	// rspamd's user may search the directory of the map (unused by rspamd here): the daemon
	// checks that rspamd could read it and logs an error otherwise.
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	a := &alertDaemon{dir: dir, box: newAlertBox(t)}
	a.cfg = newDaemonConfig(dir)
	a.cfg.MapFile = filepath.Join(dir, "ip.map")
	a.cfg.Extra = a.box.alertSection(extra...)
	a.cfgPath = writeConfig(t, dir, a.cfg)
	return a
}

// start runs the daemon (run n of the test).
func (a *alertDaemon) start(t *testing.T, n int) *daemon {
	t.Helper()
	return startDaemon(t, a.dir, a.cfgPath, n)
}
