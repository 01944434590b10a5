package config

import (
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mailjail/mailjail/notify"
)

// Alert configures email alerts to administrators.
type Alert struct {
	SMTP    string   `toml:"smtp"` // host:port of a relay, normally the local Postfix
	From    string   `toml:"from"`
	To      []string `toml:"to"`
	Subject string   `toml:"subject_prefix"`
	// DigestInterval gathers the alerts that follow a mail into one
	// digest sent this long after it (default 15m); UrgentInterval bounds
	// urgent mails (suspensions, permanent bans) the same way (default
	// 1m).
	DigestInterval Duration `toml:"digest_interval"`
	UrgentInterval Duration `toml:"urgent_interval"`
	// ReportUnbans and ReportManual say whether unbans and manual bans
	// are alerted (default: unbans not, manual bans yes).
	ReportUnbans bool `toml:"report_unbans"`
	ReportManual bool `toml:"-"`

	// Transport is "smtp" (default: to SMTP) or "sendmail" (the local
	// sendmail program, Sendmail; Postfix's needs the setgid postdrop,
	// which the shipped unit's NoNewPrivileges=yes blocks).
	Transport string `toml:"transport"`
	// TLS is the SMTP relay's TLS: "opportunistic" (default; STARTTLS
	// when offered), "mandatory" (STARTTLS or no mail), "none" or
	// "implicit" (TLS from the first byte, port 465).
	TLS           string `toml:"tls"`
	CAFile        string `toml:"ca_file"`         // PEM roots; default the system's
	TLSServerName string `toml:"tls_server_name"` // default the host of smtp
	// Username turns on AUTH (PLAIN or LOGIN), with Password or the first
	// line of PasswordFile; refused over a connection without TLS unless
	// the relay is on loopback.
	Username     string   `toml:"username"`
	Password     string   `toml:"password"`
	PasswordFile string   `toml:"password_file"`
	Timeout      Duration `toml:"timeout"`  // per mail (default 30s)
	HELO         string   `toml:"helo"`     // EHLO name (default the host's name)
	Sendmail     string   `toml:"sendmail"` // default /usr/sbin/sendmail
	// TemplateDir holds templates replacing the defaults by file name
	// (examples/alerts/); files it lacks keep the default.
	TemplateDir string `toml:"template_dir"`
	MaxLines    int    `toml:"-"` // log lines quoted per alert (max_lines, default 10)
	LineLength  int    `toml:"-"` // bytes kept of each (line_length, default 300)
}

// alertFile is [alert] as written: report_manual = false differs from
// leaving it out, max_lines = 0 from the default.
type alertFile struct {
	Alert
	ReportManual *bool `toml:"report_manual"`
	MaxLines     *int  `toml:"max_lines"`
	LineLength   *int  `toml:"line_length"`
}

func (c *Config) applyAlertDefaults(f alertFile) {
	c.Alert = f.Alert
	c.Alert.ReportManual = deref(f.ReportManual, true)
	c.Alert.MaxLines = deref(f.MaxLines, 10)
	c.Alert.LineLength = deref(f.LineLength, 300)
	if !c.Alert.DigestInterval.set {
		c.Alert.DigestInterval.D = 15 * time.Minute
	}
	if !c.Alert.UrgentInterval.set {
		c.Alert.UrgentInterval.D = time.Minute
	}
	if !c.Alert.Timeout.set {
		c.Alert.Timeout.D = 30 * time.Second
	}
	if c.Alert.Transport == "" {
		c.Alert.Transport = notify.TransportSMTP
	}
	if c.Alert.TLS == "" {
		c.Alert.TLS = notify.TLSOpportunistic
	}
	if c.Alert.Sendmail == "" {
		c.Alert.Sendmail = "/usr/sbin/sendmail"
	}
}

// Enabled reports whether alerts are configured: recipients, and a
// transport that can reach them.
func (a Alert) Enabled() bool {
	if len(a.To) == 0 {
		return false
	}
	switch a.Transport {
	case notify.TransportSendmail:
		return a.Sendmail != ""
	case notify.TransportSMTP, "":
		return a.SMTP != ""
	}
	return false
}

// Notify is the sender's configuration of a; hostname "" is the host's.
func (a Alert) Notify() notify.Config {
	return notify.Config{
		Transport: a.Transport, SMTP: a.SMTP, TLS: a.TLS, CAFile: a.CAFile, TLSServerName: a.TLSServerName,
		Username: a.Username, Password: a.Password, PasswordFile: a.PasswordFile, HELO: a.HELO, Timeout: a.Timeout.D,
		Sendmail: a.Sendmail, From: a.From, To: a.To, SubjectPrefix: a.Subject,
		TemplateDir: a.TemplateDir, MaxLines: a.MaxLines, LineLength: a.LineLength,
	}
}

// smtpOnlyKeys are the [alert] keys only the smtp transport reads.
var smtpOnlyKeys = []string{"smtp", "tls", "ca_file", "tls_server_name", "username", "password", "password_file", "helo"}

// mailKeys are the keys of how a mail is written and sent: with no
// recipient they would do nothing.
var mailKeys = append([]string{"transport", "sendmail", "timeout", "template_dir", "max_lines", "line_length"}, smtpOnlyKeys[1:]...)

func (c *Config) validateAlert(p *problems) {
	a := c.Alert
	written := func(key string) bool { return c.lines["alert."+key] != 0 }
	for _, d := range []struct {
		key string
		v   Duration
	}{{"alert.digest_interval", a.DigestInterval}, {"alert.urgent_interval", a.UrgentInterval}} {
		if d.v.err != nil {
			p.add(c.errAt(d.key, "%v", d.v.err))
		} else if d.v.D < 0 {
			p.add(c.errAt(d.key, "must be a duration, 0 for no gathering"))
		}
	}
	if a.Timeout.err != nil {
		p.add(c.errAt("alert.timeout", "%v", a.Timeout.err))
	} else if a.Timeout.D <= 0 {
		p.add(c.errAt("alert.timeout", "must be a positive duration, got %s", FormatDuration(a.Timeout.D)))
	}
	if a.MaxLines < 1 {
		p.add(c.errAt("alert.max_lines", "must be at least 1, got %d", a.MaxLines))
	}
	if a.LineLength < 40 {
		p.add(c.errAt("alert.line_length", "must be at least 40 (bytes), got %d", a.LineLength))
	}
	for _, kv := range [][2]string{{"template_dir", a.TemplateDir}, {"password_file", a.PasswordFile}, {"ca_file", a.CAFile}, {"sendmail", a.Sendmail}} {
		if kv[1] != "" && !filepath.IsAbs(kv[1]) {
			p.add(c.errAt("alert."+kv[0], "must be an absolute path, got %q", kv[1]))
		}
	}
	if a.TemplateDir != "" && filepath.IsAbs(a.TemplateDir) {
		if st, err := os.Stat(a.TemplateDir); err != nil {
			p.add(c.errAt("alert.template_dir", "%v", err))
		} else if !st.IsDir() {
			p.add(c.errAt("alert.template_dir", "%s is not a directory", a.TemplateDir))
		} else if _, err := notify.LoadTemplates(a.TemplateDir); err != nil {
			p.add(c.errAt("alert.template_dir", "%v", err))
		}
	}
	switch a.Transport {
	case notify.TransportSMTP:
		if written("sendmail") {
			p.add(c.errAt("alert.sendmail", "only transport = \"sendmail\" runs sendmail; the transport is smtp"))
		}
	case notify.TransportSendmail:
		for _, k := range smtpOnlyKeys {
			if written(k) {
				p.add(c.errAt("alert."+k, "only transport = \"smtp\" reads %s; the transport is sendmail", k))
			}
		}
		if filepath.IsAbs(a.Sendmail) {
			if _, err := os.Stat(a.Sendmail); err != nil {
				p.add(c.errAt("alert.sendmail", "%v", err))
			}
		}
	default:
		p.add(c.errAt("alert.transport", "must be \"smtp\" or \"sendmail\", got %q", a.Transport))
	}
	c.validateAlertSMTP(p)
	for _, addr := range append([]string{a.From}, a.To...) {
		if addr == "" {
			continue
		}
		if _, err := mail.ParseAddress(addr); err != nil || strings.ContainsAny(addr, "\r\n") {
			p.add(c.errAt("alert", "invalid address %q", addr))
		}
	}
	if len(a.To) == 0 {
		if a.SMTP != "" {
			p.add(c.errAt("alert.smtp", "smtp and to must be set together"))
		}
		for _, k := range mailKeys {
			if written(k) {
				p.add(c.errAt("alert."+k, "alerts are off (no to): %s does nothing", k))
			}
		}
	} else if a.Transport == notify.TransportSMTP && a.SMTP == "" {
		p.add(c.errAt("alert.to", "smtp and to must be set together: transport smtp needs smtp = \"host:port\" (or transport = \"sendmail\")"))
	}
}

// validateAlertSMTP checks the keys of the smtp transport.
func (c *Config) validateAlertSMTP(p *problems) {
	a := c.Alert
	var host string
	if a.SMTP != "" {
		h, port, err := net.SplitHostPort(a.SMTP)
		if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 1 || n > 65535 || h == "" {
			p.add(c.errAt("alert.smtp", "must be host:port (127.0.0.1:25, [::1]:25, smtp.example.org:465), got %q", a.SMTP))
		}
		host = h
	}
	switch a.TLS {
	case notify.TLSOpportunistic, notify.TLSMandatory, notify.TLSImplicit:
	case notify.TLSNone:
		for _, k := range []string{"ca_file", "tls_server_name"} {
			if c.lines["alert."+k] != 0 {
				p.add(c.errAt("alert."+k, "tls = \"none\": %s does nothing", k))
			}
		}
		if a.Username != "" && host != "" && !notify.IsLoopback(host) {
			p.add(c.errAt("alert.username", "AUTH over a connection without TLS to %s is refused: set tls = \"mandatory\" or \"implicit\"", host))
		}
	default:
		p.add(c.errAt("alert.tls", "must be \"opportunistic\", \"mandatory\", \"implicit\" or \"none\", got %q", a.TLS))
	}
	if a.Password != "" && a.PasswordFile != "" {
		p.add(c.errAt("alert.password_file", "set password or password_file, not both"))
	}
	if a.Username == "" && (a.Password != "" || a.PasswordFile != "") {
		p.add(c.errAt("alert.username", "a password needs a username"))
	}
	if a.Username != "" && a.Password == "" && a.PasswordFile == "" {
		p.add(c.errAt("alert.username", "AUTH needs password or password_file"))
	}
	if strings.ContainsAny(a.Username+a.Password, "\x00\r\n") {
		p.add(c.errAt("alert.username", "username and password may not hold NUL, CR or LF"))
	}
	if a.HELO != "" && !validHELO(a.HELO) {
		p.add(c.errAt("alert.helo", "must be a host name (letters, digits, '.', '-') or an [address], got %q", a.HELO))
	}
}

func validHELO(s string) bool {
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		return net.ParseIP(strings.TrimPrefix(strings.TrimPrefix(s[1:len(s)-1], "IPv6:"), "ipv6:")) != nil
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-') {
			return false
		}
	}
	return s != "" && len(s) <= 253
}
