package actions

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/testutil"
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
func TestRunRunsWithoutShell(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	ctx := context.Background()
	if _, err := Run(ctx, []string{"/bin/sh", "-c", `printf '%s\n' "$1" >> "$2"`, "sh", "192.0.2.1; touch " + filepath.Join(dir, "pwned"), out}); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(ctx, []string{"/nonexistent/program"}); err == nil {
		t.Error("a missing program succeeded")
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(data)); got != "192.0.2.1; touch "+filepath.Join(dir, "pwned") {
		t.Errorf("argument = %q", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
		t.Error("a value was interpreted by a shell")
	}
}

// A hung action is killed with its children at the deadline: a child that
// ignores the parent's death must not survive it.
func TestRunKillsTheWholeProcessGroupAtTheDeadline(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := Run(ctx, []string{"/bin/sh", "-c", `sleep 1000 & echo $! > "$1"; wait`, "sh", pidFile})
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("err = %v, want a kill at the deadline", err)
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	if !testutil.WaitFor(5*time.Second, func() bool { return !alive(pid) }) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("child %d outlived the action's deadline", pid)
	}
}

// alive reports whether pid runs; a zombie (killed, waiting for whoever
// inherited it to reap it) does not.
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	i := strings.LastIndexByte(string(stat), ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}
