// Package actionstest has what the tests of exec actions share: a
// command that hangs with children, and the check that they are gone.
package actionstest

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/testutil"
)

// HungArgv is `sh -c 'sleep 100 & sleep 100'` that writes the pids of
// both sleeps to pidFile: a command that hangs, with children. When
// once is set, it hangs only while pidFile does not exist yet: a retry
// succeeds.
func HungArgv(pidFile string, once bool) []string {
	script := `sleep 100 & echo $! >> "$0"; sleep 100 & echo $! >> "$0"; wait`
	if once {
		script = `[ -e "$0" ] && exit 0; ` + script
	}
	return []string{"/bin/sh", "-c", script, pidFile}
}

// WantGone fails t unless both pids written to pidFile are gone (dead,
// or zombies waiting to be reaped).
func WantGone(t testing.TB, pidFile string) {
	t.Helper()
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(data))
	if len(fields) != 2 {
		t.Fatalf("pids %q, want two children", fields)
	}
	for _, f := range fields {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatal(err)
		}
		if !testutil.WaitFor(5*time.Second, func() bool { return !Alive(pid) }) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Errorf("child %d outlived the action's deadline", pid)
		}
	}
}

// Alive reports whether pid runs; a zombie (killed, waiting for whoever
// inherited it to reap it) does not.
func Alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	i := strings.LastIndexByte(string(stat), ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}
