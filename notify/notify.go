// Package notify sends ban alerts to administrators by email through an
// SMTP relay (normally the local Postfix); the outbox calls it and retries
// what fails. Alerts quote log lines, and log
// lines are written by remote senders: every header value is stripped of
// control characters and encoded, and quoted lines go only into the body,
// with control characters replaced, so nothing in a log line can add a
// header, a recipient or end the message early.
package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"mime"
	"net"
	"net/smtp"
	"os"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Alert is one event worth telling an administrator about.
type Alert struct {
	Event   string // "ban", "unban", "suspend" or "urgent rate"
	Jail    string
	Addr    string // the address, prefix or account it is about
	Since   time.Time
	Until   time.Time // zero: permanent
	Strikes int
	Offense int
	Reason  string
	Lines   []string // log lines that caused it (attacker-controlled)
	// Sources are the client addresses an account's strikes came from,
	// with counts ("198.18.41.7: 6 strikes, banned").
	Sources []string
	// Command undoes it ("mailjail release mallory@example.org"); empty:
	// the ban's own unban command.
	Command string
}

// Urgent reports whether the alert must not wait for a digest: an
// account suspended (a stolen password sending right now) or a
// permanent ban.
func (a Alert) Urgent() bool {
	return a.Event == "suspend" || a.Event == "ban" && a.Until.IsZero()
}

// Config says where alerts go.
type Config struct {
	SMTP          string // host:port
	From          string
	To            []string
	SubjectPrefix string
	Hostname      string
}

// Sender delivers alerts, one SMTP session each. It keeps no queue: the
// outbox (in the database) is the queue, and retries what fails.
type Sender struct {
	cfg Config
	now func() time.Time
}

// NewSender makes a sender. Empty From defaults to mailjail@HOSTNAME.
func NewSender(cfg Config, now func() time.Time) *Sender {
	if cfg.Hostname == "" {
		cfg.Hostname, _ = os.Hostname()
	}
	if cfg.From == "" {
		cfg.From = "mailjail@" + cfg.Hostname
	}
	if cfg.SubjectPrefix == "" {
		cfg.SubjectPrefix = "[mailjail]"
	}
	return &Sender{cfg: cfg, now: now}
}

// Send composes and delivers a, within ctx's deadline.
func (s *Sender) Send(ctx context.Context, a Alert) error {
	return Deliver(ctx, s.cfg.SMTP, s.cfg.From, s.cfg.To, Compose(s.cfg, a, s.now()))
}

// Compose builds the whole message (headers and body, CRLF line ends).
func Compose(cfg Config, a Alert, now time.Time) []byte {
	var b bytes.Buffer
	subject := fmt.Sprintf("%s %s %s in jail %s on %s", cfg.SubjectPrefix, a.Event, a.Addr, a.Jail, cfg.Hostname)
	header := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	header("From", HeaderValue(cfg.From))
	header("To", HeaderValue(strings.Join(cfg.To, ", ")))
	header("Subject", HeaderValue(subject))
	header("Date", now.Format(time.RFC1123Z))
	header("Message-ID", fmt.Sprintf("<mailjail.%d@%s>", now.UnixNano(), HeaderValue(cfg.Hostname)))
	header("Auto-Submitted", "auto-generated")
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "8bit")
	b.WriteString("\r\n")
	body := func(format string, args ...any) {
		b.WriteString(BodyLine(fmt.Sprintf(format, args...)))
		b.WriteString("\r\n")
	}
	body("mailjail on %s: %s of %s in jail %s.", cfg.Hostname, a.Event, a.Addr, a.Jail)
	if verb := map[string]string{"ban": "Banned", "suspend": "Suspended"}[a.Event]; verb != "" {
		if a.Until.IsZero() {
			body("%s from %s, until lifted by hand.", verb, a.Since.Format(time.RFC3339))
		} else {
			body("%s from %s until %s (%s).", verb, a.Since.Format(time.RFC3339), a.Until.Format(time.RFC3339), a.Until.Sub(a.Since).Round(time.Second))
		}
		if a.Strikes > 0 {
			body("Strikes: %d. Offense: %d.", a.Strikes, a.Offense)
		}
	}
	if a.Reason != "" {
		body("Reason: %s", a.Reason)
	}
	if len(a.Sources) > 0 {
		body("")
		body("Source addresses:")
		for _, src := range a.Sources {
			body("  %s", src)
		}
	}
	if len(a.Lines) > 0 {
		body("")
		body("Log lines (written by the remote sender in part; quoted as data):")
		for _, l := range a.Lines {
			body("> %s", l)
		}
	}
	body("")
	switch {
	case a.Command != "":
		body("Lift it with: %s", a.Command)
	case a.Event == "ban":
		body("Lift it with: mailjail unban %s", a.Addr)
	default:
		body("Details: mailjail show %s", a.Addr)
	}
	return b.Bytes()
}

// HeaderValue makes s safe as one header value: control characters
// (CR and LF above all) become spaces, the length is bounded, and
// non-ASCII text is RFC 2047 encoded.
func HeaderValue(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError || unicode.Is(unicode.Cc, r) {
			return ' '
		}
		return r
	}, s)
	if len(s) > 200 {
		s = s[:200]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
	}
	for _, r := range s {
		if r >= utf8.RuneSelf {
			return mime.QEncoding.Encode("utf-8", s)
		}
	}
	return s
}

// BodyLine makes s safe as one body line: no control characters (so no
// line break or lone CR can end the line early), valid UTF-8, and at most
// 900 bytes so the SMTP line limit of 1000 holds.
func BodyLine(s string) string {
	s = strings.ToValidUTF8(s, "?")
	s = strings.Map(func(r rune) rune {
		if r == '\t' {
			return r
		}
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
	if len(s) > 900 {
		s = s[:900]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		s += "…"
	}
	return s
}

// Deliver sends msg over SMTP. On a loopback relay it does not ask for
// STARTTLS (a local Postfix often has only a self-signed certificate);
// elsewhere it uses STARTTLS when offered, with certificate checks.
func Deliver(ctx context.Context, addr, from string, to []string, msg []byte) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("smtp address %q: %w", addr, err)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("connect %s: %w", addr, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	// Stopping the daemon ends a session that hangs on a silent relay.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("smtp %s: %w", addr, err)
	}
	defer c.Close()
	if err := c.Hello("localhost"); err != nil {
		return fmt.Errorf("smtp %s: EHLO: %w", addr, err)
	}
	if ip := net.ParseIP(host); (ip == nil || !ip.IsLoopback()) && host != "localhost" {
		if ok, _ := c.Extension("STARTTLS"); ok {
			if err := c.StartTLS(&tls.Config{ServerName: host}); err != nil {
				return fmt.Errorf("smtp %s: STARTTLS: %w", addr, err)
			}
		}
	}
	if err := c.Mail(from); err != nil {
		return fmt.Errorf("smtp %s: MAIL FROM: %w", addr, err)
	}
	for _, r := range to {
		if err := c.Rcpt(r); err != nil {
			return fmt.Errorf("smtp %s: RCPT TO %s: %w", addr, r, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("smtp %s: DATA: %w", addr, err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("smtp %s: write: %w", addr, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("smtp %s: end of data: %w", addr, err)
	}
	return c.Quit()
}

// ReleaseCommand is the command that releases account, as one line a
// POSIX shell runs as it is: the alert and `mailjail show` print it, and
// an administrator pastes it.
func ReleaseCommand(account string) string {
	cmd := "mailjail release "
	if strings.HasPrefix(account, "-") {
		cmd += "-- "
	}
	return cmd + shellWord(account)
}

// shellWord is s as one shell word: as it is when it holds only
// characters no shell treats specially, else single-quoted.
func shellWord(s string) string {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("@._+-", r)) {
			return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
		}
	}
	return s
}
