package notify

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// Log lines written by an attacker reach the body as data and never a
// header: CR, LF, a Bcc line, a lone dot, NUL, escape sequences, invalid
// UTF-8, a 10 kB line.
func TestHostileLinesStayInTheBody(t *testing.T) {
	srv := startServer(t, serverOptions{})
	s := newTestSender(t, Config{SMTP: srv.addr, To: []string{"postmaster@example.org"}})
	hostile := []string{
		"ip: 198.18.0.66\r\nBcc: x@evil.example\r\n\r\nbody?",
		".",
		".\r\n",
		"before\r\n.\r\nMAIL FROM:<evil@x>\r\nafter",
		"nul\x00 esc\x1b[31m bell\x07 del\x7f",
		"bad utf-8: \xff\xfe\xc3",
		"bidi \u202egnp.exe and line sep \u2028 here",
		strings.Repeat("A", 10000),
	}
	a := ban("198.18.0.66")
	a.Jail = "rspamd-ratelimit\r\nBcc: jail@evil.example"
	a.Reason = "reason\r\nX-Injected: yes"
	a.Lines = hostile
	if err := send(t, s, a); err != nil {
		t.Fatal(err)
	}
	r := srv.wait(t)
	if len(r.to) != 1 || r.to[0] != "postmaster@example.org" {
		t.Fatalf("envelope to %q", r.to)
	}
	msg, body := parsed(t, r.data)
	for _, k := range []string{"Bcc", "X-Injected"} {
		if v, ok := msg.Header[k]; ok {
			t.Errorf("injected header %s: %q", k, v)
		}
	}
	subj := subjectOf(t, msg)
	if strings.ContainsAny(subj, "\r\n\t") || !strings.Contains(subj, "rspamd-ratelimit??Bcc: jail@evil.example") {
		t.Errorf("subject %q", subj)
	}
	if strings.ContainsAny(body, "\x00\x1b\x07\x7f\r\u202e\u2028") || !utf8.ValidString(body) {
		t.Errorf("control characters in the body: %q", body)
	}
	// Every hostile line is one quoted body line: nothing starts a line
	// of its own.
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, "Bcc:") || strings.HasPrefix(l, "MAIL FROM") || l == "." || strings.HasPrefix(l, "X-Injected") {
			t.Errorf("a hostile line became a line of its own: %q", l)
		}
	}
	for _, want := range []string{
		"> ip: 198.18.0.66??Bcc: x@evil.example????body?",
		"\n> .\n",
		"> .??\n",
		"> before??.??MAIL FROM:<evil@x>??after",
		"> nul? esc?[31m bell? del?",
		"> bad utf-8: ?",
		"> bidi ?gnp.exe and line sep ? here",
		"> " + strings.Repeat("A", 300) + "…\n",
		"Reason:  reason??X-Injected: yes",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("body lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, strings.Repeat("A", 301)) {
		t.Error("a long line was not cut")
	}
	// The raw message keeps the SMTP line limit, and no line of it is a
	// lone dot (go-mail's dot-stuffing; the server undid it).
	for _, l := range strings.Split(r.data, "\r\n") {
		if len(l) > 998 {
			t.Errorf("raw line of %d bytes", len(l))
		}
	}
}

func TestAtMostMaxLines(t *testing.T) {
	a := ban("198.18.0.1")
	a.Lines = nil
	for i := range 25 {
		a.Lines = append(a.Lines, strings.Repeat("x", i))
	}
	d := dataOf(a, 1, renderOptions{maxLines: 10, lineLength: 300})
	if len(d.Lines) != 10 || d.LinesOmitted != 15 {
		t.Errorf("%d lines, %d omitted", len(d.Lines), d.LinesOmitted)
	}
}

// The default templates rendered, as golden files: a single ban, a
// suspension, a digest.
func TestGoldenTemplates(t *testing.T) {
	s := newTestSender(t, Config{SMTP: "127.0.0.1:25"})
	for name, batch := range map[string][]Alert{
		"ban":        {ban("198.18.0.66")},
		"suspension": {suspension("mallory@example.org")},
		"digest":     {ban("198.18.0.66"), ban("198.18.0.67"), suspension("mallory@example.org"), {Event: "ban", Jail: "manual", Addr: "203.0.113.0/24", Since: t0, Reason: "by hand"}},
		// A log-only jail's would-be ban, and the circuit breaker's trip
		// (no address, no jail), alone and in a digest.
		"would-ban":        {wouldBan("198.18.0.66")},
		"breaker":          {breakerTrip()},
		"digest-would-ban": {wouldBan("198.18.0.66"), wouldBan("198.18.0.67"), breakerTrip()},
	} {
		t.Run(name, func(t *testing.T) {
			got := rendered(t, s, batch)
			path := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("%s differs (go test -run TestGoldenTemplates -update):\n%s", path, got)
			}
		})
	}
}

// rendered is the subject and body of batch's mail.
func rendered(t *testing.T, s *Sender, batch []Alert) string {
	t.Helper()
	m, err := s.compose(batch, fixedNow())
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if _, err := m.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	msg, body := parsed(t, b.String())
	return "Subject: " + subjectOf(t, msg) + "\n\n" + body
}

// The files under examples/alerts/ are the embedded defaults, byte for
// byte.
func TestExampleTemplatesAreTheDefaults(t *testing.T) {
	for _, name := range TemplateNames {
		want, err := DefaultTemplate(name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join("..", "examples", "alerts", name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("examples/alerts/%s differs from notify/templates/%s", name, name)
		}
	}
	entries, err := os.ReadDir(filepath.Join("..", "examples", "alerts"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmpl") && !strings.Contains(strings.Join(TemplateNames, " "), e.Name()) {
			t.Errorf("examples/alerts/%s is no template mailjail reads", e.Name())
		}
	}
}

func TestTemplateOverrides(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(SubjectTemplate, "ALERT {{.Event}} {{.Kind}} {{.Addr}}\n")
	s := newTestSender(t, Config{SMTP: "127.0.0.1:25", TemplateDir: dir})
	got := rendered(t, s, []Alert{ban("198.18.0.1")})
	if !strings.HasPrefix(got, "Subject: ALERT ban address 198.18.0.1\n") || !strings.Contains(got, "Undo it:  mailjail unban 198.18.0.1") {
		t.Errorf("override or fallback lost:\n%s", got)
	}
	// A template that does not parse, or names a field that does not
	// exist, fails the load and names its file.
	for text, want := range map[string]string{
		"{{.Event":         "unclosed action",
		"{{.NoSuchField}}": "NoSuchField",
	} {
		write(BodyTemplate, text)
		_, err := LoadTemplates(dir)
		if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, BodyTemplate)) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v", text, err)
		}
	}
	write(BodyTemplate, "x")
	write(DigestBodyTemplate, "{{range .Alerts}}{{.Nope}}{{end}}")
	if _, err := LoadTemplates(dir); err == nil || !strings.Contains(err.Error(), DigestBodyTemplate) {
		t.Errorf("digest field: err = %v", err)
	}
}

func TestHeaderText(t *testing.T) {
	for in, want := range map[string]string{
		"plain":                   "plain",
		"a\r\nBcc: b":             "aBcc: b",
		"tab\there":               "tabhere",
		"  trailing newline\n":    "trailing newline",
		"Grüße":                   "Grüße",
		"bad \xff utf-8":          "bad \uFFFD utf-8",
		"nul\x00":                 "nul",
		strings.Repeat("x", 300):  strings.Repeat("x", 200),
		strings.Repeat("ü", 300):  strings.Repeat("ü", 200),
		"bidi\u202e\u2028\u2066x": "bidix",
	} {
		if got := HeaderText(in); got != want {
			t.Errorf("HeaderText(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzHeaderText(f *testing.F) {
	for _, s := range []string{"", "a\r\nBcc: x@evil", "\x00\xff", strings.Repeat("é", 250), "=?utf-8?q?x?=", "\u2028\u202e"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := HeaderText(s)
		if !utf8.ValidString(got) {
			t.Fatalf("invalid UTF-8: %q", got)
		}
		if utf8.RuneCountInString(got) > MaxSubject {
			t.Fatalf("%d characters", utf8.RuneCountInString(got))
		}
		for _, r := range got {
			if unsafeRune(r) {
				t.Fatalf("unsafe %U in %q", r, got)
			}
		}
		if HeaderText(got) != got {
			t.Fatalf("not idempotent: %q", got)
		}
		line := TextLine(s, 300)
		if strings.ContainsAny(line, "\r\n\x00") || !utf8.ValidString(line) || len(line) > 300+len("…") {
			t.Fatalf("TextLine(%q) = %q", s, line)
		}
	})
}

func TestReleaseAndUnbanCommands(t *testing.T) {
	for in, want := range map[string]string{
		"alice@example.org": "mailjail release alice@example.org",
		"a+tag@ex-1.org":    "mailjail release a+tag@ex-1.org",
		"a$(id)@x.org":      "mailjail release 'a$(id)@x.org'",
		"a;b@x.org":         "mailjail release 'a;b@x.org'",
		"it's@x.org":        `mailjail release 'it'\''s@x.org'`,
		"-rf@x.org":         "mailjail release -- -rf@x.org",
		"":                  "mailjail release ''",
	} {
		if got := ReleaseCommand(in); got != want {
			t.Errorf("ReleaseCommand(%q) = %q, want %q", in, got, want)
		}
	}
	if got := UnbanCommand("2001:db8::/64"); got != "mailjail unban 2001:db8::/64" {
		t.Errorf("UnbanCommand = %q", got)
	}
}

func wouldBan(addr string) Alert {
	a := ban(addr)
	a.Event = EventWouldBan
	a.Reason += ` (mode = "log-only": recorded, not enforced)`
	return a
}

func breakerTrip() Alert {
	return Alert{Event: EventBreaker, Since: t0, Command: "mailjail resume",
		Reason: "1001 new bans within 1m, more than breaker_bans = 1000. Bans are still recorded, but the targets get no new ones until mailjail resume"}
}
