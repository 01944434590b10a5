package main

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// withAlert appends an [alert] table to e's configuration.
func withAlert(t *testing.T, e *env, toml string) {
	t.Helper()
	f, err := os.OpenFile(e.config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("\n[alert]\n" + toml); err != nil {
		t.Fatal(err)
	}
}

// test-alert sends a sample through the configured path (here a fake
// sendmail recording its argv and stdin) without a daemon.
func TestTestAlertSends(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sendmail, argvFile, stdinFile := filepath.Join(e.dir, "sendmail"), filepath.Join(e.dir, "argv"), filepath.Join(e.dir, "stdin")
	script := "#!/bin/sh\nprintf '%s\\n' \"$@\" > " + argvFile + "\ncat > " + stdinFile + "\n"
	if err := os.WriteFile(sendmail, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	withAlert(t, e, "transport = \"sendmail\"\nsendmail = \""+sendmail+"\"\nfrom = \"mailjail@mx1.example.org\"\nto = [\"postmaster@example.org\"]\n")
	out, errs, code := e.mj("test-alert")
	if code != 0 || out != "sent to postmaster@example.org via sendmail "+sendmail+"\n" {
		t.Fatalf("exit %d %q %q", code, out, errs)
	}
	argv, _ := os.ReadFile(argvFile)
	if string(argv) != "-i\n-f\nmailjail@mx1.example.org\n--\npostmaster@example.org\n" {
		t.Errorf("argv %q", argv)
	}
	msg, _ := os.ReadFile(stdinFile)
	if !strings.Contains(string(msg), "Subject: [mailjail] test 192.0.2.1 in jail test-alert on ") || !strings.Contains(string(msg), "X-Mailjail-Event: test") {
		t.Errorf("message:\n%s", msg)
	}
	out, _, code = e.mj("test-alert", "--to", "me@example.org", "--json")
	var got testAlertOutput
	if err := json.Unmarshal([]byte(out), &got); err != nil || code != 0 || !got.Sent || len(got.To) != 1 || got.To[0] != "me@example.org" || got.Via != "sendmail "+sendmail {
		t.Errorf("--json: exit %d %q %v", code, out, err)
	}
	if argv, _ := os.ReadFile(argvFile); !strings.HasSuffix(string(argv), "--\nme@example.org\n") {
		t.Errorf("--to: argv %q", argv)
	}
}

// A relay that cannot be reached: the error, and exit 1.
func TestTestAlertFailure(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	withAlert(t, e, "smtp = \""+addr+"\"\nto = [\"postmaster@example.org\"]\ntimeout = \"5s\"\n")
	out, errs, code := e.mj("test-alert")
	if code != 1 || out != "" || !strings.Contains(errs, "not sent via smtp "+addr+" (tls opportunistic)") || !strings.Contains(errs, "connection refused") {
		t.Errorf("exit %d %q %q", code, out, errs)
	}
	out, _, code = e.mj("test-alert", "--json")
	var got testAlertOutput
	if err := json.Unmarshal([]byte(out), &got); err != nil || code != 1 || got.Sent || !strings.Contains(got.Error, "connection refused") {
		t.Errorf("--json: exit %d %q", code, out)
	}
}

func TestTestAlertWithoutAlerts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if _, errs, code := e.mj("test-alert"); code != 2 || !strings.Contains(errs, "no recipient") {
		t.Errorf("no [alert]: exit %d %q", code, errs)
	}
	if _, errs, code := e.mj("test-alert", "--to", "me@example.org"); code != 2 || !strings.Contains(errs, "no relay") {
		t.Errorf("--to without smtp: exit %d %q", code, errs)
	}
	if _, errs, code := e.mj("test-alert", "--to", "not an address"); code != 2 || !strings.Contains(errs, "--to") {
		t.Errorf("bad --to: exit %d %q", code, errs)
	}
}
