package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAlertDefaults(t *testing.T) {
	c, errs := validate(t, "[alert]\nsmtp = \"127.0.0.1:25\"\nto = [\"postmaster@example.org\"]\n"+okJail)
	if errs != "" {
		t.Fatal(errs)
	}
	a := c.Alert
	if a.Transport != "smtp" || a.TLS != "opportunistic" || a.Timeout.D != 30*time.Second || a.Sendmail != "/usr/sbin/sendmail" ||
		a.MaxLines != 10 || a.LineLength != 300 || a.HELO != "" || !a.Enabled() {
		t.Errorf("defaults: %+v", a)
	}
	n := a.Notify()
	if n.SMTP != "127.0.0.1:25" || n.Timeout != 30*time.Second || n.MaxLines != 10 || n.To[0] != "postmaster@example.org" {
		t.Errorf("notify config: %+v", n)
	}
	c, errs = validate(t, okJail)
	if errs != "" || c.Alert.Enabled() {
		t.Errorf("no [alert]: enabled %v, %s", c.Alert.Enabled(), errs)
	}
}

// Enabled: recipients and a transport that can reach them.
func TestAlertEnabled(t *testing.T) {
	for _, tc := range []struct {
		a    Alert
		want bool
	}{
		{Alert{SMTP: "127.0.0.1:25", To: []string{"a@b"}, Transport: "smtp"}, true},
		{Alert{SMTP: "127.0.0.1:25", Transport: "smtp"}, false},
		{Alert{To: []string{"a@b"}, Transport: "smtp"}, false},
		{Alert{To: []string{"a@b"}, Transport: "sendmail", Sendmail: "/usr/sbin/sendmail"}, true},
		{Alert{To: []string{"a@b"}, Transport: "pigeon", SMTP: "x:25"}, false},
	} {
		if got := tc.a.Enabled(); got != tc.want {
			t.Errorf("%+v: Enabled() = %v", tc.a, got)
		}
	}
}

func TestAlertKeysValid(t *testing.T) {
	dir := t.TempDir()
	sendmail := filepath.Join(dir, "sendmail")
	if err := os.WriteFile(sendmail, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tdir := filepath.Join(dir, "alerts")
	if err := os.Mkdir(tdir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tdir, "subject.tmpl"), []byte("{{.Event}} {{.Addr}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, src := range map[string]string{
		"smtp all keys": `[alert]
smtp = "smtp.example.org:465"
tls = "implicit"
ca_file = "/etc/ssl/certs/relay.pem"
tls_server_name = "relay.example.org"
username = "alerts"
password_file = "/etc/mailjail/smtp-password"
timeout = "10s"
helo = "mx1.example.org"
from = "mailjail@mx1.example.org"
to = ["postmaster@example.org"]
template_dir = "` + tdir + `"
max_lines = 1
line_length = 40
`,
		"loopback auth without TLS": "[alert]\nsmtp = \"127.0.0.1:25\"\ntls = \"none\"\nusername = \"u\"\npassword = \"p\"\nto = [\"a@example.org\"]\n",
		"sendmail":                  "[alert]\ntransport = \"sendmail\"\nsendmail = \"" + sendmail + "\"\nto = [\"a@example.org\"]\n",
		"ipv6 relay":                "[alert]\nsmtp = \"[::1]:25\"\nhelo = \"[IPv6:::1]\"\nto = [\"a@example.org\"]\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, errs := validate(t, src+okJail); errs != "" {
				t.Error(errs)
			}
		})
	}
}

func TestAlertKeysRejected(t *testing.T) {
	const to = "to = [\"a@example.org\"]\n"
	wantErrors(t, "[alert]\nsmtp = \"127.0.0.1:25\"\n"+to+"tls = \"starttls\"\ntimeout = \"permanent\"\nmax_lines = 0\nline_length = 39\ntransport = \"smtp\"\n"+okJail,
		`t.toml:4: alert.tls: must be "opportunistic", "mandatory", "implicit" or "none", got "starttls"`,
		"t.toml:5: alert.timeout: must be a positive duration",
		"t.toml:6: alert.max_lines: must be at least 1, got 0",
		"t.toml:7: alert.line_length: must be at least 40")
	wantErrors(t, "[alert]\nsmtp = \"127.0.0.1:25\"\n"+to+"timeout = \"soon\"\ntransport = \"pigeon\"\ntemplate_dir = \"alerts\"\nca_file = \"ca.pem\"\n"+okJail,
		"t.toml:4: alert.timeout:",
		`t.toml:5: alert.transport: must be "smtp" or "sendmail", got "pigeon"`,
		`t.toml:6: alert.template_dir: must be an absolute path, got "alerts"`,
		`t.toml:7: alert.ca_file: must be an absolute path`)
	wantErrors(t, "[alert]\nsmtp = \"127.0.0.1:25\"\n"+to+"tls = \"none\"\nca_file = \"/ca.pem\"\ntls_server_name = \"x\"\n"+okJail,
		`t.toml:5: alert.ca_file: tls = "none": ca_file does nothing`,
		`t.toml:6: alert.tls_server_name: tls = "none"`)
	wantErrors(t, "[alert]\nsmtp = \"relay.example.org:25\"\n"+to+"tls = \"none\"\nusername = \"u\"\npassword = \"p\"\n"+okJail,
		`t.toml:5: alert.username: AUTH over a connection without TLS to relay.example.org is refused`)
	wantErrors(t, "[alert]\nsmtp = \"127.0.0.1:25\"\n"+to+"username = \"u\"\npassword = \"p\"\npassword_file = \"/pw\"\n"+okJail,
		"t.toml:6: alert.password_file: set password or password_file, not both")
	wantErrors(t, "[alert]\nsmtp = \"127.0.0.1:25\"\n"+to+"password = \"p\"\n"+okJail, "alert.username: a password needs a username")
	wantErrors(t, "[alert]\nsmtp = \"127.0.0.1:25\"\n"+to+"username = \"u\"\n"+okJail, "t.toml:4: alert.username: AUTH needs password or password_file")
	wantErrors(t, "[alert]\nsmtp = \"127.0.0.1\"\n"+to+"helo = \"my host\"\n"+okJail,
		`t.toml:2: alert.smtp: must be host:port`, `t.toml:4: alert.helo: must be a host name`)
	// The transport decides which keys mean something.
	wantErrors(t, "[alert]\ntransport = \"sendmail\"\nsendmail = \"/nonexistent/sendmail\"\nsmtp = \"127.0.0.1:25\"\ntls = \"mandatory\"\n"+to+okJail,
		"t.toml:3: alert.sendmail: stat /nonexistent/sendmail",
		`t.toml:4: alert.smtp: only transport = "smtp" reads smtp; the transport is sendmail`,
		`t.toml:5: alert.tls: only transport = "smtp" reads tls`)
	wantErrors(t, "[alert]\nsmtp = \"127.0.0.1:25\"\nsendmail = \"/usr/sbin/sendmail\"\n"+to+okJail,
		`t.toml:3: alert.sendmail: only transport = "sendmail" runs sendmail`)
	wantErrors(t, "[alert]\nsendmail = \"sendmail\"\ntransport = \"sendmail\"\n"+to+okJail, `t.toml:2: alert.sendmail: must be an absolute path`)
	// smtp is needed for the smtp transport; keys without recipients do
	// nothing.
	wantErrors(t, "[alert]\n"+to+okJail, "t.toml:2: alert.to: smtp and to must be set together")
	wantErrors(t, "[alert]\nsmtp = \"127.0.0.1:25\"\ntls = \"mandatory\"\n"+okJail,
		"t.toml:2: alert.smtp: smtp and to must be set together", "t.toml:3: alert.tls: alerts are off (no to): tls does nothing")
}

// A template that does not parse, or names a field that does not exist,
// is a check error naming its file; a missing directory too.
func TestAlertTemplateDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "body.tmpl"), []byte("{{.Event}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const head = "[alert]\nsmtp = \"127.0.0.1:25\"\nto = [\"a@example.org\"]\n"
	_, errs := validate(t, head+"template_dir = \""+dir+"\"\n"+okJail)
	if !strings.Contains(errs, "t.toml:4: alert.template_dir: alert template "+filepath.Join(dir, "body.tmpl")) {
		t.Errorf("errors: %s", errs)
	}
	if err := os.WriteFile(filepath.Join(dir, "body.tmpl"), []byte("{{.Nope}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errs = validate(t, head+"template_dir = \""+dir+"\"\n"+okJail)
	if !strings.Contains(errs, filepath.Join(dir, "body.tmpl")) || !strings.Contains(errs, "Nope") {
		t.Errorf("errors: %s", errs)
	}
	wantErrors(t, head+"template_dir = \""+filepath.Join(dir, "missing")+"\"\n"+okJail, "t.toml:4: alert.template_dir: stat ")
}
