package notify

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// fakeSendmail is a sendmail that records its argv (one per line) and
// stdin, then exits with code (printing msg to stderr when it fails).
func fakeSendmail(t *testing.T, code int, msg string) (path, argvFile, stdinFile string) {
	t.Helper()
	dir := t.TempDir()
	path, argvFile, stdinFile = filepath.Join(dir, "sendmail"), filepath.Join(dir, "argv"), filepath.Join(dir, "stdin")
	script := "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done > " + argvFile + "\ncat > " + stdinFile + "\n"
	if code != 0 {
		script += "echo '" + msg + "' >&2\nexit " + string(rune('0'+code)) + "\n"
	}
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path, argvFile, stdinFile
}

func TestSendmailExplicitRecipients(t *testing.T) {
	path, argvFile, stdinFile := fakeSendmail(t, 0, "")
	s := newTestSender(t, Config{Transport: TransportSendmail, Sendmail: path, To: []string{"postmaster@example.org", "-oQ/tmp/x@example.org"}})
	a := ban("198.18.0.66")
	a.Lines = []string{"x\r\nBcc: evil@example.org", ".", "-t"}
	if err := send(t, s, a); err != nil {
		t.Fatal(err)
	}
	argvData, err := os.ReadFile(argvFile)
	if err != nil {
		t.Fatal(err)
	}
	argv := strings.Split(strings.TrimSuffix(string(argvData), "\n"), "\n")
	want := []string{"-i", "-f", "mailjail@mx1.example.org", "--", "postmaster@example.org", "-oQ/tmp/x@example.org"}
	if !slices.Equal(argv, want) {
		t.Errorf("argv %q, want %q", argv, want)
	}
	if slices.Contains(argv, "-t") {
		t.Error("sendmail -t takes recipients from the headers")
	}
	stdin, err := os.ReadFile(stdinFile)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(stdin), "\r") {
		t.Error("CRLF line ends to sendmail")
	}
	msg, body := parsed(t, string(stdin))
	if _, ok := msg.Header["Bcc"]; ok {
		t.Error("injected Bcc")
	}
	if got := subjectOf(t, msg); got != "[mailjail] ban 198.18.0.66 in jail rspamd-ratelimit on mx1.example.org" {
		t.Errorf("subject %q", got)
	}
	if !strings.Contains(body, "> x??Bcc: evil@example.org\n> .\n> -t\n") {
		t.Errorf("body:\n%s", body)
	}
	if got := s.Via(); got != "sendmail "+path {
		t.Errorf("Via() = %q", got)
	}
}

func TestSendmailFailureCarriesItsStderr(t *testing.T) {
	path, _, _ := fakeSendmail(t, 7, "postdrop: warning: mail_queue_enter: create file maildrop/123: Permission denied")
	err := send(t, newTestSender(t, Config{Transport: TransportSendmail, Sendmail: path}), ban("198.18.0.1"))
	if err == nil || !strings.Contains(err.Error(), "exit status 7") || !strings.Contains(err.Error(), "Permission denied") || !strings.Contains(err.Error(), path) {
		t.Fatalf("err = %v", err)
	}
	err = send(t, newTestSender(t, Config{Transport: TransportSendmail, Sendmail: filepath.Join(t.TempDir(), "none")}), ban("198.18.0.1"))
	if err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing sendmail: %v", err)
	}
}

// A hung sendmail (and what it started) is killed at the timeout.
func TestSendmailTimeout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sendmail")
	if err := os.WriteFile(path, []byte("#!/bin/sh\nsleep 1000 &\nwait\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := send(t, newTestSender(t, Config{Transport: TransportSendmail, Sendmail: path, Timeout: 300 * time.Millisecond}), ban("198.18.0.1"))
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s", d)
	}
}
