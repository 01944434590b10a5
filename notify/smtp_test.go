package notify

import (
	"bufio"
	"context"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wneessen/go-mail/smtp"
)

var t0 = time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)

func fixedNow() time.Time { return t0.Add(5 * time.Minute) }

func newTestSender(t *testing.T, cfg Config) *Sender {
	t.Helper()
	if cfg.From == "" {
		cfg.From = "mailjail@mx1.example.org"
	}
	if cfg.To == nil {
		cfg.To = []string{"postmaster@example.org", "Ops <ops@example.org>"}
	}
	if cfg.Hostname == "" {
		cfg.Hostname = "mx1.example.org"
	}
	s, err := NewSender(cfg, fixedNow)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func ban(addr string) Alert {
	return Alert{Event: "ban", Jail: "rspamd-ratelimit", Addr: addr, Since: t0, Until: t0.Add(time.Hour), Strikes: 10, Offense: 1,
		Reason: "10 strikes in 10m", Lines: []string{"2026-11-25 03:00:00 #1(rspamd_proxy) ip: " + addr + ", RATELIMIT"}}
}

func suspension(account string) Alert {
	return Alert{Event: "suspend", Jail: "rspamd-account", Addr: account, Since: t0, Until: t0.Add(24 * time.Hour), Strikes: 5, Offense: 2,
		Reason: "5 strikes in 10m", Sources: []string{"198.51.100.7: 5 of its strikes, banned as 198.51.100.7"}, Command: ReleaseCommand(account)}
}

func send(t *testing.T, s *Sender, batch ...Alert) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return s.Send(ctx, batch)
}

// parsed is a received message: headers, and the body decoded.
func parsed(t *testing.T, data string) (*mail.Message, string) {
	t.Helper()
	msg, err := mail.ReadMessage(bufio.NewReader(strings.NewReader(data)))
	if err != nil {
		t.Fatalf("not a message: %v\n%s", err, data)
	}
	var r io.Reader = msg.Body
	if strings.EqualFold(msg.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
		r = quotedprintable.NewReader(r)
	}
	body, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return msg, strings.ReplaceAll(string(body), "\r\n", "\n")
}

func subjectOf(t *testing.T, msg *mail.Message) string {
	t.Helper()
	s, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSMTPDeliversOneAlert(t *testing.T) {
	srv := startServer(t, serverOptions{})
	s := newTestSender(t, Config{SMTP: srv.addr, TLS: TLSNone, HELO: "mx1.example.org"})
	if err := send(t, s, ban("198.18.0.66")); err != nil {
		t.Fatal(err)
	}
	r := srv.wait(t)
	if r.from != "mailjail@mx1.example.org" || !slices.Equal(r.to, []string{"postmaster@example.org", "ops@example.org"}) {
		t.Errorf("envelope from %q to %q", r.from, r.to)
	}
	if r.helo != "mx1.example.org" {
		t.Errorf("EHLO %q", r.helo)
	}
	msg, body := parsed(t, r.data)
	h := msg.Header
	for k, want := range map[string]string{
		"From": "<mailjail@mx1.example.org>", "Auto-Submitted": "auto-generated", "X-Mailjail-Event": "ban",
		"Date": "Wed, 25 Nov 2026 03:05:00 +0000", "Content-Type": "text/plain; charset=UTF-8",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if to, err := h.AddressList("To"); err != nil || len(to) != 2 || to[1].Address != "ops@example.org" {
		t.Errorf("To: %v %v", to, err)
	}
	if id := h.Get("Message-ID"); !strings.HasPrefix(id, "<mailjail.") || !strings.HasSuffix(id, "@mx1.example.org>") {
		t.Errorf("Message-ID %q", id)
	}
	if got := subjectOf(t, msg); got != "[mailjail] ban 198.18.0.66 in jail rspamd-ratelimit on mx1.example.org" {
		t.Errorf("subject %q", got)
	}
	for _, want := range []string{"Until:   2026-11-25T04:00:00Z (1h)", "Undo it:  mailjail unban 198.18.0.66", "> 2026-11-25 03:00:00"} {
		if !strings.Contains(body, want) {
			t.Errorf("body lacks %q:\n%s", want, body)
		}
	}
}

// Several alerts are one mail, a digest with a section each.
func TestSMTPDigestIsOneMessage(t *testing.T) {
	srv := startServer(t, serverOptions{})
	s := newTestSender(t, Config{SMTP: srv.addr})
	var batch []Alert
	for i := range 12 {
		batch = append(batch, ban(net.IPv4(198, 18, 0, byte(i+1)).String()))
	}
	batch = append(batch, suspension("mallory@example.org"))
	if err := send(t, s, batch...); err != nil {
		t.Fatal(err)
	}
	r := srv.wait(t)
	select {
	case extra := <-srv.got:
		t.Fatalf("a second message: %q", extra.data)
	case <-time.After(200 * time.Millisecond):
	}
	msg, body := parsed(t, r.data)
	if got := subjectOf(t, msg); got != "[mailjail] 13 events on mx1.example.org (12 bans, 1 suspension)" {
		t.Errorf("subject %q", got)
	}
	if msg.Header.Get("X-Mailjail-Event") != "digest" {
		t.Errorf("X-Mailjail-Event %q", msg.Header.Get("X-Mailjail-Event"))
	}
	if n := strings.Count(body, "\n--- "); n != 13 {
		t.Errorf("%d sections, want 13:\n%s", n, body)
	}
	if !strings.Contains(body, "--- 13 of 13: suspend of account mallory@example.org in jail rspamd-account ---") ||
		!strings.Contains(body, "Undo it:  mailjail release mallory@example.org") {
		t.Errorf("digest body:\n%s", body)
	}
}

func TestSMTPMandatoryTLSWithoutSTARTTLSFails(t *testing.T) {
	srv := startServer(t, serverOptions{})
	s := newTestSender(t, Config{SMTP: srv.addr, TLS: TLSMandatory})
	err := send(t, s, ban("198.18.0.1"))
	if err == nil || !strings.Contains(err.Error(), "STARTTLS") || !strings.Contains(err.Error(), srv.addr) {
		t.Fatalf("err = %v, want a STARTTLS refusal naming %s", err, srv.addr)
	}
	select {
	case r := <-srv.got:
		t.Fatalf("delivered in clear: %q", r.data)
	default:
	}
}

func TestSMTPOpportunisticUsesSTARTTLS(t *testing.T) {
	cert, caFile := selfSigned(t)
	srv := startServer(t, serverOptions{startTLS: cert})
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"ca_file", Config{SMTP: srv.addr, CAFile: caFile}},
		{"mandatory", Config{SMTP: srv.addr, TLS: TLSMandatory, CAFile: caFile}},
		// Loopback without ca_file: encrypted, certificate not checked.
		{"loopback", Config{SMTP: srv.addr}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := send(t, newTestSender(t, tc.cfg), ban("198.18.0.1")); err != nil {
				t.Fatal(err)
			}
			if r := srv.wait(t); !r.tls {
				t.Error("delivered without TLS")
			}
		})
	}
	// Mandatory checks the certificate, even on loopback.
	err := send(t, newTestSender(t, Config{SMTP: srv.addr, TLS: TLSMandatory}), ban("198.18.0.1"))
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("err = %v, want an untrusted certificate", err)
	}
	// And tls_server_name is the name checked.
	err = send(t, newTestSender(t, Config{SMTP: srv.addr, TLS: TLSMandatory, CAFile: caFile, TLSServerName: "other.test"}), ban("198.18.0.1"))
	if err == nil || !strings.Contains(err.Error(), "other.test") {
		t.Errorf("err = %v, want a name mismatch", err)
	}
}

func TestSMTPImplicitTLS(t *testing.T) {
	cert, caFile := selfSigned(t)
	srv := startServer(t, serverOptions{implicit: cert, user: "alerts", pass: "s3cret"})
	s := newTestSender(t, Config{SMTP: srv.addr, TLS: TLSImplicit, CAFile: caFile, Username: "alerts", Password: "s3cret"})
	if err := send(t, s, ban("198.18.0.1")); err != nil {
		t.Fatal(err)
	}
	if r := srv.wait(t); !r.tls || r.user != "alerts" {
		t.Errorf("tls %v user %q", r.tls, r.user)
	}
	// Plain SMTP to an implicit TLS port fails, clearly enough.
	err := send(t, newTestSender(t, Config{SMTP: srv.addr, TLS: TLSNone, Timeout: time.Second}), ban("198.18.0.1"))
	if err == nil {
		t.Error("plain SMTP to a TLS port succeeded")
	}
}

func TestSMTPAuth(t *testing.T) {
	cert, caFile := selfSigned(t)
	srv := startServer(t, serverOptions{startTLS: cert, user: "alerts", pass: "s3cret"})
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []Config{
		{SMTP: srv.addr, TLS: TLSMandatory, CAFile: caFile, Username: "alerts", Password: "s3cret"},
		{SMTP: srv.addr, TLS: TLSMandatory, CAFile: caFile, Username: "alerts", PasswordFile: pwFile},
	} {
		if err := send(t, newTestSender(t, cfg), ban("198.18.0.1")); err != nil {
			t.Fatal(err)
		}
		if r := srv.wait(t); r.user != "alerts" || !r.tls {
			t.Errorf("user %q tls %v", r.user, r.tls)
		}
	}
	err := send(t, newTestSender(t, Config{SMTP: srv.addr, TLS: TLSMandatory, CAFile: caFile, Username: "alerts", Password: "wrong"}), ban("198.18.0.1"))
	if err == nil || !strings.Contains(err.Error(), "AUTH") || !strings.Contains(err.Error(), "bad credentials") {
		t.Errorf("err = %v, want the relay's refusal", err)
	}
	// No username: the relay wants AUTH and says so.
	err = send(t, newTestSender(t, Config{SMTP: srv.addr, CAFile: caFile}), ban("198.18.0.1"))
	if err == nil || !strings.Contains(err.Error(), "authenticate") {
		t.Errorf("err = %v, want the relay's refusal", err)
	}
}

// A password never crosses a network in clear: AUTH over a connection
// without TLS is refused unless the relay is on loopback.
func TestAuthRefusedWithoutTLS(t *testing.T) {
	for _, tc := range []struct {
		loopback, tls bool
		wantErr       string
	}{
		{false, false, "refusing AUTH over an unencrypted connection to relay.example.org:587"},
		{false, true, ""},
		{true, false, ""},
	} {
		a := &guardedAuth{user: "u", pass: "p", relay: "relay.example.org:587", loopback: tc.loopback}
		proto, resp, err := a.Start(&smtp.ServerInfo{Name: "relay.example.org", TLS: tc.tls, Auth: []string{"LOGIN", "PLAIN"}})
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%+v: err = %v", tc, err)
			}
			continue
		}
		if err != nil || proto != "PLAIN" || string(resp) != "\x00u\x00p" {
			t.Errorf("%+v: %q %q %v", tc, proto, resp, err)
		}
	}
	a := &guardedAuth{user: "u", pass: "p", relay: "r:25", loopback: true}
	if _, _, err := a.Start(&smtp.ServerInfo{Name: "r", Auth: []string{"CRAM-MD5"}}); err == nil || !strings.Contains(err.Error(), "PLAIN and LOGIN") {
		t.Errorf("err = %v", err)
	}
	a = &guardedAuth{user: "u", pass: "p", relay: "r:25", loopback: true}
	if proto, _, err := a.Start(&smtp.ServerInfo{Name: "r", Auth: []string{"LOGIN"}}); err != nil || proto != "LOGIN" {
		t.Errorf("LOGIN: %q %v", proto, err)
	}
}

func TestSMTPRefusalNamesRelayAndReply(t *testing.T) {
	srv := startServer(t, serverOptions{reject: true})
	err := send(t, newTestSender(t, Config{SMTP: srv.addr}), ban("198.18.0.1"))
	if err == nil || !strings.Contains(err.Error(), srv.addr) || !strings.Contains(err.Error(), "554") || !strings.Contains(err.Error(), "no alerts from you today") {
		t.Fatalf("err = %v", err)
	}
}

func TestSMTPConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	err = send(t, newTestSender(t, Config{SMTP: addr}), ban("198.18.0.1"))
	if err == nil || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("err = %v", err)
	}
}

// A relay that accepts and then says nothing: the timeout ends the
// attempt, and so does the end of the context (the daemon stopping),
// long before the timeout.
func TestSMTPTimeoutAndCancel(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	start := time.Now()
	err = send(t, newTestSender(t, Config{SMTP: ln.Addr().String(), Timeout: 300 * time.Millisecond}), ban("198.18.0.1"))
	if err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("err = %v after %s", err, time.Since(start))
	}
	if !strings.Contains(err.Error(), "timeout") && !strings.Contains(err.Error(), "deadline") {
		t.Errorf("err = %v, want a timeout", err)
	}

	s := newTestSender(t, Config{SMTP: ln.Addr().String(), Timeout: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start = time.Now()
	if err := s.Send(ctx, []Alert{ban("198.18.0.1")}); err == nil {
		t.Fatal("a cancelled send succeeded")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("cancel took %s", d)
	}
}

// A line holding only a dot would end the DATA early: go-mail stuffs it,
// and the relay receives the whole body.
func TestSMTPDotStuffing(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, BodyTemplate), []byte("first\n.\n..\nlast {{.Addr}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, serverOptions{})
	if err := send(t, newTestSender(t, Config{SMTP: srv.addr, TemplateDir: dir}), ban("198.18.0.1")); err != nil {
		t.Fatal(err)
	}
	_, body := parsed(t, srv.wait(t).data)
	if body != "first\n.\n..\nlast 198.18.0.1\n" {
		t.Errorf("body %q", body)
	}
}
