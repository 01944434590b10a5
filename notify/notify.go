// Package notify sends ban alerts to administrators by email, through an
// SMTP relay (normally the local Postfix) or a local sendmail, with
// github.com/wneessen/go-mail building the message and speaking SMTP. The
// outbox calls Sender.Send with a batch of alerts (one mail: a single
// alert or a digest) and retries what fails.
//
// Alerts quote log lines, and log lines are written by remote senders:
// every value a template sees is stripped of control characters and
// invalid UTF-8, nothing from a log line goes into a header, and the
// subject is cleaned again after its template ran, so nothing in a log
// line can add a header or a recipient or end the message early.
package notify

import (
	"context"
	"errors"
	"fmt"
	"net/mail"

	gomail "github.com/wneessen/go-mail"
	"os"
	"strings"
	"time"
)

// Alert is one event worth telling an administrator about.
type Alert struct {
	Event   string // "ban", "unban", "suspend", "account over its limit", "urgent rate", or EventWouldBan, EventWouldSuspend, EventBreaker
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
	// History lists the address's or account's earlier bans, one line
	// each ("2026-11-24T03:00:00Z rspamd-ratelimit 1h"). Nothing fills it
	// yet: the outbox item is written from the ban alone.
	History []string `json:",omitempty"`
}

// Events of a log-only jail (its would-be bans and suspensions, which
// nothing enforced) and of the circuit breaker for mass bans.
const (
	EventWouldBan     = "would ban"
	EventWouldSuspend = "would suspend"
	EventBreaker      = "circuit breaker tripped"
)

// Urgent reports whether the alert must not wait for a digest: an
// account suspended (a stolen password sending right now), a permanent
// ban, or the circuit breaker tripped (every new ban waits for an
// administrator).
func (a Alert) Urgent() bool {
	return a.Event == "suspend" || a.Event == "ban" && a.Until.IsZero() || a.Event == EventBreaker
}

// LogOnly reports whether the alert is a log-only jail's: nothing was
// enforced.
func (a Alert) LogOnly() bool { return a.Event == EventWouldBan || a.Event == EventWouldSuspend }

// Transports and TLS policies (Config.Transport, Config.TLS).
const (
	TransportSMTP     = "smtp"
	TransportSendmail = "sendmail"

	TLSNone          = "none"          // plain SMTP, STARTTLS never tried
	TLSOpportunistic = "opportunistic" // STARTTLS when the relay offers it
	TLSMandatory     = "mandatory"     // STARTTLS or no mail
	TLSImplicit      = "implicit"      // TLS from the first byte (port 465)
)

// Config says how alerts are written and where they go. Zero values get
// the defaults NewSender names.
type Config struct {
	Transport string // TransportSMTP (default) or TransportSendmail

	SMTP          string // host:port of the relay
	TLS           string // TLSOpportunistic (default), TLSNone, TLSMandatory, TLSImplicit
	CAFile        string // PEM roots for the relay's certificate; empty: the system's
	TLSServerName string // name the certificate must carry; empty: the relay's host
	Username      string // AUTH when set
	Password      string
	PasswordFile  string        // read at each send (first line), instead of Password
	HELO          string        // EHLO name; empty: Hostname
	Timeout       time.Duration // per mail, dial to QUIT; default 30s

	Sendmail string // sendmail program (TransportSendmail); default /usr/sbin/sendmail

	From          string // default mailjail@Hostname
	To            []string
	SubjectPrefix string // default "[mailjail]"
	Hostname      string // named in alerts and Message-IDs; default os.Hostname

	TemplateDir string // overrides of the default templates, by file name
	MaxLines    int    // log lines quoted per alert; default 10
	LineLength  int    // bytes kept of each; default 300
}

// Sender writes and delivers alerts. It keeps no queue: the outbox (in
// the database) is the queue, and retries what fails.
type Sender struct {
	cfg  Config
	tmpl *Templates
	now  func() time.Time
	// send delivers one message; the transport chosen by cfg.
	send func(ctx context.Context, from string, to []string, msg *gomail.Msg) error
}

// NewSender checks cfg, applies its defaults and loads the templates.
func NewSender(cfg Config, now func() time.Time) (*Sender, error) {
	if cfg.Hostname == "" {
		cfg.Hostname, _ = os.Hostname()
	}
	if cfg.From == "" {
		cfg.From = "mailjail@" + cfg.Hostname
	}
	if cfg.SubjectPrefix == "" {
		cfg.SubjectPrefix = "[mailjail]"
	}
	if cfg.Transport == "" {
		cfg.Transport = TransportSMTP
	}
	if cfg.TLS == "" {
		cfg.TLS = TLSOpportunistic
	}
	if cfg.HELO == "" {
		cfg.HELO = cfg.Hostname
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Sendmail == "" {
		cfg.Sendmail = "/usr/sbin/sendmail"
	}
	if cfg.MaxLines <= 0 {
		cfg.MaxLines = 10
	}
	if cfg.LineLength <= 0 {
		cfg.LineLength = 300
	}
	if len(cfg.To) == 0 {
		return nil, errors.New("alerts: no recipient")
	}
	if _, err := mail.ParseAddress(cfg.From); err != nil {
		return nil, fmt.Errorf("alerts: from %q: %w", cfg.From, err)
	}
	tmpl, err := LoadTemplates(cfg.TemplateDir)
	if err != nil {
		return nil, err
	}
	s := &Sender{cfg: cfg, tmpl: tmpl, now: now}
	switch cfg.Transport {
	case TransportSMTP:
		tr, err := newSMTP(cfg)
		if err != nil {
			return nil, err
		}
		s.send = tr.send
	case TransportSendmail:
		s.send = sendmail{path: cfg.Sendmail, timeout: cfg.Timeout}.send
	default:
		return nil, fmt.Errorf("alerts: unknown transport %q", cfg.Transport)
	}
	return s, nil
}

// Via names the path a mail takes, for messages ("smtp 127.0.0.1:25
// (tls opportunistic)", "sendmail /usr/sbin/sendmail").
func (s *Sender) Via() string {
	if s.cfg.Transport == TransportSendmail {
		return "sendmail " + s.cfg.Sendmail
	}
	return fmt.Sprintf("smtp %s (tls %s)", s.cfg.SMTP, s.cfg.TLS)
}

// Recipients are the addresses every mail goes to.
func (s *Sender) Recipients() []string { return s.cfg.To }

// Send writes one mail for batch (the alert itself, or a digest of
// several) and delivers it within ctx and the configured timeout.
func (s *Sender) Send(ctx context.Context, batch []Alert) error {
	if len(batch) == 0 {
		return nil
	}
	msg, err := s.compose(batch, s.now())
	if err != nil {
		return err
	}
	from, to, err := envelope(s.cfg.From, s.cfg.To)
	if err != nil {
		return err
	}
	return s.send(ctx, from, to, msg)
}

// envelope is the bare addresses of the configured From and To.
func envelope(from string, to []string) (string, []string, error) {
	f, err := mail.ParseAddress(from)
	if err != nil {
		return "", nil, fmt.Errorf("alerts: from %q: %w", from, err)
	}
	var rcpts []string
	for _, t := range to {
		a, err := mail.ParseAddress(t)
		if err != nil {
			return "", nil, fmt.Errorf("alerts: to %q: %w", t, err)
		}
		rcpts = append(rcpts, a.Address)
	}
	return f.Address, rcpts, nil
}

// ReleaseCommand is the command that releases account, as one line a
// POSIX shell runs as it is: the alert and `mailjail show` print it, and
// an administrator pastes it.
func ReleaseCommand(account string) string {
	return command("release", account)
}

// UnbanCommand is the command that lifts the ban of addr (an address or
// prefix), as one line a shell runs as it is.
func UnbanCommand(addr string) string {
	return command("unban", addr)
}

func command(verb, arg string) string {
	cmd := "mailjail " + verb + " "
	if strings.HasPrefix(arg, "-") {
		cmd += "-- "
	}
	return cmd + shellWord(arg)
}

// shellWord is s as one shell word: as it is when it holds only
// characters no shell treats specially, else single-quoted.
func shellWord(s string) string {
	if s == "" {
		return "''"
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("@._+-:/", r)) {
			return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
		}
	}
	return s
}
