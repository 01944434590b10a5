package actions

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestExpand(t *testing.T) {
	argv := []string{"/usr/sbin/nft", "add", "element", "inet", "f", "s", "{ <ip> timeout <bantime>s }", "<jail>"}
	got := Expand(argv, Vars{IP: "2001:db8::42", Jail: "rspamd-ratelimit", BanTime: time.Hour})
	want := []string{"/usr/sbin/nft", "add", "element", "inet", "f", "s", "{ 2001:db8::42 timeout 3600s }", "rspamd-ratelimit"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q", got)
	}
	if got := Expand([]string{"<bantime>"}, Vars{}); got[0] != "-1" {
		t.Errorf("permanent = %q", got[0])
	}
}

// Commands run as argv: shell metacharacters in a value stay literal.
func TestRunnerRunsWithoutShell(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	r := NewRunner(slog.New(slog.NewTextHandler(os.Stderr, nil)), 5*time.Second, 8)
	r.Submit([]string{"/bin/sh", "-c", `printf '%s\n' "$1" >> "$2"`, "sh", "192.0.2.1; touch " + filepath.Join(dir, "pwned"), out})
	r.Submit([]string{"/bin/sh", "-c", `printf '%s\n' "$1" >> "$2"`, "sh", "second", out})
	r.Submit([]string{"/nonexistent/program"})
	r.Close()
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Split(strings.TrimSpace(string(data)), "\n"); len(got) != 2 || got[1] != "second" {
		t.Errorf("ran out of order or not at all: %q", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
		t.Error("a value was interpreted by a shell")
	}
}
