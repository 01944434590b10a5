package notify

import (
	"bufio"
	"context"
	"net"
	"net/mail"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"
)

// smtpServer is a small real SMTP server on loopback: enough protocol for
// a client to deliver, recording what arrives.
type smtpServer struct {
	ln   net.Listener
	mu   sync.Mutex
	msgs []received
	got  chan struct{}
}

type received struct {
	from string
	to   []string
	data string
}

func startSMTP(t *testing.T) *smtpServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpServer{ln: ln, got: make(chan struct{}, 16)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return s
}

func (s *smtpServer) serve(c net.Conn) {
	defer c.Close()
	tp := textproto.NewConn(c)
	tp.PrintfLine("220 test ESMTP")
	var r received
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		cmd := strings.ToUpper(line)
		switch {
		case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
			tp.PrintfLine("250-test\r\n250 8BITMIME")
		case strings.HasPrefix(cmd, "MAIL FROM:"):
			r.from = line[10:]
			tp.PrintfLine("250 ok")
		case strings.HasPrefix(cmd, "RCPT TO:"):
			r.to = append(r.to, line[8:])
			tp.PrintfLine("250 ok")
		case cmd == "DATA":
			tp.PrintfLine("354 go")
			data, err := tp.ReadDotBytes()
			if err != nil {
				return
			}
			r.data = string(data)
			s.mu.Lock()
			s.msgs = append(s.msgs, r)
			s.mu.Unlock()
			r = received{}
			tp.PrintfLine("250 queued")
			s.got <- struct{}{}
		case cmd == "QUIT":
			tp.PrintfLine("221 bye")
			return
		default:
			tp.PrintfLine("502 no")
		}
	}
}

func TestAlertDeliveredAndInjectionProof(t *testing.T) {
	srv := startSMTP(t)
	m := NewSender(Config{SMTP: srv.ln.Addr().String(), From: "mailjail@mx.test", To: []string{"postmaster@mx.test"}, Hostname: "mx.test"}, time.Now)
	t0 := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	hostile := "2026-11-25 03:33:42 #3861(rspamd_proxy) <4854e1>; proxy; rspamd_task_write_log: id: <x>\r\nBcc: victim@example.com\r\n\r\n.\r\nMAIL FROM:<evil@x>, ip: 198.18.0.66, from: <\x00\x1b[31m>"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Send(ctx, Alert{Event: "ban", Jail: "rspamd-ratelimit\r\nBcc: evil@example.com", Addr: "198.18.0.66", Since: t0, Until: t0.Add(time.Hour), Strikes: 10, Offense: 1, Lines: []string{hostile}}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-srv.got:
	case <-time.After(10 * time.Second):
		t.Fatal("no message arrived")
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.msgs) != 1 || len(srv.msgs[0].to) != 1 || srv.msgs[0].to[0] != "<postmaster@mx.test>" {
		t.Fatalf("envelope = %+v", srv.msgs)
	}
	msg, err := mail.ReadMessage(bufio.NewReader(strings.NewReader(srv.msgs[0].data)))
	if err != nil {
		t.Fatal(err)
	}
	if len(msg.Header["Bcc"]) != 0 {
		t.Errorf("injected Bcc header: %v", msg.Header)
	}
	subj := msg.Header.Get("Subject")
	if !strings.Contains(subj, "ban 198.18.0.66 in jail rspamd-ratelimit  Bcc: evil@example.com") {
		t.Errorf("subject = %q", subj)
	}
	body, _ := bufio.NewReader(msg.Body).ReadString(0)
	if strings.Contains(body, "\x00") || strings.Contains(body, "\x1b") || !strings.Contains(body, "> 2026-11-25 03:33:42") {
		t.Errorf("body not sanitised: %q", body)
	}
	if !strings.Contains(body, "Banned from 2026-11-25T03:00:00Z until 2026-11-25T04:00:00Z (1h0m0s).") {
		t.Errorf("body = %q", body)
	}
}

func TestHeaderValue(t *testing.T) {
	tests := map[string]string{
		"plain":                  "plain",
		"a\r\nBcc: b":            "a  Bcc: b",
		"Grüße":                  "=?utf-8?q?Gr=C3=BC=C3=9Fe?=",
		strings.Repeat("x", 300): strings.Repeat("x", 200),
	}
	for in, want := range tests {
		if got := HeaderValue(in); got != want {
			t.Errorf("HeaderValue(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDeliverErrors(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	if err := Deliver(context.Background(), addr, "a@b", []string{"c@d"}, []byte("x")); err == nil || !strings.Contains(err.Error(), "connect") {
		t.Errorf("err = %v", err)
	}
	if err := Deliver(context.Background(), "nohostport", "a@b", nil, nil); err == nil {
		t.Error("bad address accepted")
	}
}

// The release command an alert and `show` print can be pasted into a
// shell as it is.
func TestReleaseCommand(t *testing.T) {
	for in, want := range map[string]string{
		"alice@example.org": "mailjail release alice@example.org",
		"a+tag@ex-1.org":    "mailjail release a+tag@ex-1.org",
		"a$(id)@x.org":      "mailjail release 'a$(id)@x.org'",
		"a;b@x.org":         "mailjail release 'a;b@x.org'",
		"-rf@x.org":         "mailjail release -- -rf@x.org",
	} {
		if got := ReleaseCommand(in); got != want {
			t.Errorf("ReleaseCommand(%q) = %q, want %q", in, got, want)
		}
	}
}
