package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	gomail "github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"
)

// smtpTransport delivers through an SMTP relay with go-mail's client.
type smtpTransport struct {
	cfg      Config
	host     string
	port     int
	tls      *tls.Config
	loopback bool
}

func newSMTP(cfg Config) (*smtpTransport, error) {
	host, port, err := net.SplitHostPort(cfg.SMTP)
	if err != nil {
		return nil, fmt.Errorf("alerts: smtp %q: %w", cfg.SMTP, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return nil, fmt.Errorf("alerts: smtp %q: bad port", cfg.SMTP)
	}
	t := &smtpTransport{cfg: cfg, host: host, port: p, loopback: IsLoopback(host)}
	switch cfg.TLS {
	case TLSNone, TLSOpportunistic, TLSMandatory, TLSImplicit:
	default:
		return nil, fmt.Errorf("alerts: unknown tls policy %q", cfg.TLS)
	}
	t.tls = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if cfg.TLSServerName != "" {
		t.tls.ServerName = cfg.TLSServerName
	}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("alerts: ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("alerts: ca_file %s: no PEM certificate", cfg.CAFile)
		}
		t.tls.RootCAs = pool
	} else if cfg.TLS == TLSOpportunistic && t.loopback {
		// A local Postfix offers STARTTLS with a self-signed certificate
		// as often as not, and a connection to the host itself has no
		// path to protect: opportunistic TLS there encrypts without
		// checking (mandatory and implicit always check; a ca_file turns
		// the check on).
		t.tls.InsecureSkipVerify = true
	}
	return t, nil
}

// IsLoopback reports whether host (of a relay) is this host: localhost
// or a loopback address.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// send delivers m in one SMTP session. Ending ctx (the daemon stopping)
// ends the session at once; the timeout bounds it otherwise.
func (t *smtpTransport) send(ctx context.Context, _ string, _ []string, m *gomail.Msg) error {
	ctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
	defer cancel()
	var conns connSet
	defer conns.closeAll()
	opts := []gomail.Option{
		gomail.WithPort(t.port),
		gomail.WithTimeout(t.cfg.Timeout),
		gomail.WithHELO(t.cfg.HELO),
		gomail.WithTLSConfig(t.tls),
		gomail.WithDialContextFunc(func(dctx context.Context, network, addr string) (net.Conn, error) {
			return t.dial(ctx, dctx, network, addr, &conns)
		}),
	}
	switch t.cfg.TLS {
	case TLSNone, TLSImplicit: // implicit: the dialer speaks TLS already
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	case TLSOpportunistic:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	case TLSMandatory:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	}
	if t.cfg.Username != "" {
		pass, err := t.password()
		if err != nil {
			return err
		}
		opts = append(opts, gomail.WithSMTPAuthCustom(&guardedAuth{user: t.cfg.Username, pass: pass, relay: t.cfg.SMTP, loopback: t.loopback}))
	}
	c, err := gomail.NewClient(t.host, opts...)
	if err != nil {
		return fmt.Errorf("smtp %s: %w", t.cfg.SMTP, err)
	}
	if err := c.DialAndSendWithContext(ctx, m); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, context.Cause(ctx))
		}
		return fmt.Errorf("smtp %s: %w", t.cfg.SMTP, err)
	}
	return nil
}

// dial connects (and for implicit TLS shakes hands) within dctx, go-mail's
// dial deadline; the connection stays bound to ctx, the whole send's.
func (t *smtpTransport) dial(ctx, dctx context.Context, network, addr string, conns *connSet) (net.Conn, error) {
	var d net.Dialer
	raw, err := d.DialContext(dctx, network, addr)
	if err != nil {
		return nil, err
	}
	conn := &ctxConn{Conn: raw, ctx: ctx}
	conn.stop = context.AfterFunc(ctx, func() { _ = raw.SetDeadline(time.Unix(1, 0)) })
	conns.add(conn)
	if t.cfg.TLS != TLSImplicit {
		return conn, nil
	}
	tc := tls.Client(conn, t.tls)
	if err := tc.HandshakeContext(dctx); err != nil {
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	return tc, nil
}

// password is the AUTH password: password, or the first line of
// password_file, read at each send so that a changed file needs no
// restart.
func (t *smtpTransport) password() (string, error) {
	if t.cfg.PasswordFile == "" {
		return t.cfg.Password, nil
	}
	b, err := os.ReadFile(t.cfg.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("smtp %s: password_file: %w", t.cfg.SMTP, err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSuffix(line, "\r"), nil
}

// ctxConn is a connection whose deadlines cannot outlive its context:
// go-mail extends the deadline before each command, and a context that
// ended must still end the session.
type ctxConn struct {
	net.Conn
	ctx  context.Context
	stop func() bool
}

func (c *ctxConn) bound(t time.Time) time.Time {
	if c.ctx.Err() != nil {
		return time.Unix(1, 0)
	}
	return t
}

func (c *ctxConn) SetDeadline(t time.Time) error      { return c.Conn.SetDeadline(c.bound(t)) }
func (c *ctxConn) SetReadDeadline(t time.Time) error  { return c.Conn.SetReadDeadline(c.bound(t)) }
func (c *ctxConn) SetWriteDeadline(t time.Time) error { return c.Conn.SetWriteDeadline(c.bound(t)) }

func (c *ctxConn) Close() error {
	c.stop()
	return c.Conn.Close()
}

// connSet closes what a send opened: go-mail leaves a connection open
// when the greeting, EHLO or STARTTLS fails.
type connSet struct {
	mu    sync.Mutex
	conns []*ctxConn
}

func (s *connSet) add(c *ctxConn) {
	s.mu.Lock()
	s.conns = append(s.conns, c)
	s.mu.Unlock()
}

func (s *connSet) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		_ = c.Close()
	}
}

// guardedAuth is AUTH PLAIN or LOGIN (go-mail's), refused over a
// connection without TLS unless the relay is on this host: a password
// must not cross a network in clear, whatever the relay offers.
type guardedAuth struct {
	user, pass, relay string
	loopback          bool
	inner             smtp.Auth
}

func (a *guardedAuth) Start(si *smtp.ServerInfo) (string, []byte, error) {
	if !si.TLS && !a.loopback {
		return "", nil, fmt.Errorf("refusing AUTH over an unencrypted connection to %s (set tls = \"mandatory\" or \"implicit\")", a.relay)
	}
	switch {
	case slices.Contains(si.Auth, "PLAIN"):
		a.inner = smtp.PlainAuth("", a.user, a.pass, si.Name, true)
	case slices.Contains(si.Auth, "LOGIN"):
		a.inner = smtp.LoginAuth(a.user, a.pass, si.Name, true)
	case len(si.Auth) == 0:
		return "", nil, fmt.Errorf("%s offers no AUTH, and username is set", a.relay)
	default:
		return "", nil, fmt.Errorf("%s offers AUTH %s, mailjail speaks PLAIN and LOGIN", a.relay, strings.Join(si.Auth, " "))
	}
	return a.inner.Start(si)
}

func (a *guardedAuth) Next(fromServer []byte, more bool) ([]byte, error) {
	if a.inner == nil {
		return nil, errors.New("AUTH not started")
	}
	return a.inner.Next(fromServer, more)
}

// sendmail delivers through a local sendmail program: `sendmail -i -f
// FROM -- RCPT...` with the recipients given (never -t, which would take
// them from the headers), the message on stdin. Postfix's sendmail hands
// the mail to the setgid postdrop, which NoNewPrivileges=yes (the
// shipped unit) prevents: with it, use SMTP.
type sendmail struct {
	path    string
	timeout time.Duration
}

// maxStderr bounds what a failing sendmail's output adds to the error.
const maxStderr = 2048

func (s sendmail) send(ctx context.Context, from string, to []string, m *gomail.Msg) error {
	var msg bytes.Buffer
	if _, err := m.WriteTo(&msg); err != nil {
		return fmt.Errorf("sendmail: write message: %w", err)
	}
	// The local submission interface takes the host's line ends.
	data := bytes.ReplaceAll(msg.Bytes(), []byte("\r\n"), []byte("\n"))
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.path, append([]string{"-i", "-f", from, "--"}, to...)...)
	cmd.Stdin = bytes.NewReader(data)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	// Its own process group, killed whole: Postfix's sendmail runs
	// postdrop, which must not outlive a timeout.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (killed: %w)", err, context.Cause(ctx))
	}
	text := out.String()
	if len(text) > maxStderr {
		text = text[:maxStderr] + "…"
	}
	if text = strings.TrimSpace(TextLine(strings.ReplaceAll(text, "\n", " "), 0)); text != "" {
		return fmt.Errorf("sendmail %s: %w: %s", s.path, err, text)
	}
	return fmt.Errorf("sendmail %s: %w", s.path, err)
}
