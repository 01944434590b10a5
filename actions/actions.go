// Package actions runs the ban and unban commands a jail configures. A
// command is an argv list, executed directly without a shell, and the only
// values substituted into it are ones mailjail produced itself (a parsed
// address, the jail name, a number of seconds). Text from a log line never
// reaches a command, so a hostile line cannot inject one.
package actions

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Vars are the values a command may use: <ip>, <jail>, <bantime>.
type Vars struct {
	IP      string // address or CIDR, canonical
	Jail    string
	BanTime time.Duration // 0 or negative: permanent, written as -1
}

// Expand substitutes the placeholders in each argument of argv.
func Expand(argv []string, v Vars) []string {
	secs := "-1"
	if v.BanTime > 0 {
		secs = strconv.FormatInt(int64(v.BanTime/time.Second), 10)
	}
	r := strings.NewReplacer("<ip>", v.IP, "<jail>", v.Jail, "<bantime>", secs)
	out := make([]string, len(argv))
	for i, a := range argv {
		out[i] = r.Replace(a)
	}
	return out
}

// Run executes argv directly (no shell) in a process group of its own and
// returns what it printed. When ctx ends first (a timeout, or the daemon
// stopping) the whole group is killed, so a hung command cannot outlive
// its deadline through its children. The outbox calls it, one command at
// a time and in the order the bans happened, and retries a failure.
func Run(ctx context.Context, argv []string) ([]byte, error) {
	if len(argv) == 0 {
		return nil, nil
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// Its own group, so that a timeout kills its children too; and killed
	// with the daemon, so that it does not outlive a kill -9 either.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// A child that keeps the output pipe open must not hold Wait forever.
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("%w (killed: %w)", err, ctx.Err())
	}
	if err != nil {
		return out.Bytes(), fmt.Errorf("%s: %w: %s", argv[0], err, Truncate(out.Bytes()))
	}
	return out.Bytes(), nil
}

// Truncate bounds a command's output for a log line or an error.
func Truncate(b []byte) string {
	const max = 512
	if len(b) > max {
		return fmt.Sprintf("%s… (%d bytes)", b[:max], len(b))
	}
	return string(b)
}
