// Package actions carries out the hooks a jail configures: exec actions
// (ban_action, unban_action) and webhooks ([webhook.NAME]).
//
// An exec action is an argv list, executed directly without a shell. The
// only values substituted into it are mailjail's own: <ip> (the banned
// address or prefix in canonical form, parsed by mailjail, so it holds
// only hex digits, '.', ':' and '/'), <jail> (a validated jail name) and
// <bantime> (seconds, -1 for permanent). Text from a log line never
// reaches a command, and a substituted value stays inside the one argv
// element it was written in, so a hostile line cannot inject one.
//
// The command runs with a minimal environment, never the daemon's:
// PATH=/usr/sbin:/usr/bin:/sbin:/bin, LANG=C, and MAILJAIL_EVENT ("ban" or
// "unban"), MAILJAIL_JAIL and MAILJAIL_ADDR. Its stdout and stderr go to
// one buffer that keeps the first OutputLimit bytes and counts and drops
// the rest without ever blocking the command; output is logged and quoted
// in errors truncated. It runs in a process group of its own, which is
// killed whole when its context ends (the jail's action_timeout, applied
// by the outbox, or the daemon stopping), so a hung command cannot
// outlive its deadline through its children.
package actions

import (
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Vars are the values a command may use: <ip>, <jail>, <bantime>.
type Vars struct {
	IP      string // address or CIDR, canonical
	Jail    string
	BanTime time.Duration // 0 or negative: permanent, written as -1
}

// Expand substitutes the placeholders in each argument of argv. A value
// never splits or joins arguments: each stays in the element it was
// written in.
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

// Command is one exec action to run: its expanded argv and what its
// environment tells it.
type Command struct {
	Argv  []string
	Event string // MAILJAIL_EVENT: "ban" or "unban"
	Jail  string // MAILJAIL_JAIL
	Addr  string // MAILJAIL_ADDR: the address or prefix, canonical
}

// Path is the PATH a command runs with.
const Path = "/usr/sbin:/usr/bin:/sbin:/bin"

// Env is the whole environment of c: nothing of the daemon's own (its
// secrets, proxies, locale) leaks into a command.
func (c Command) Env() []string {
	return []string{"PATH=" + Path, "LANG=C",
		"MAILJAIL_EVENT=" + c.Event, "MAILJAIL_JAIL=" + c.Jail, "MAILJAIL_ADDR=" + c.Addr}
}

// OutputLimit is how much of a command's output (stdout and stderr
// together) is kept.
const OutputLimit = 64 << 10

// Output is what a command printed: the first OutputLimit bytes, and how
// many more were dropped.
type Output struct {
	Kept    []byte
	Dropped int64
}

// String is the output cut for a log line or an error.
func (o Output) String() string {
	s := Truncate(o.Kept)
	if o.Dropped > 0 {
		s += fmt.Sprintf(" (%d more bytes dropped)", o.Dropped)
	}
	return s
}

// limited is an io.Writer that keeps the first limit bytes and counts the
// rest. It never fails or blocks, so a command that prints without end
// neither fills the daemon's memory nor stalls on a full pipe.
type limited struct {
	mu      sync.Mutex
	buf     []byte
	limit   int
	dropped int64
}

func (l *limited) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := min(len(p), l.limit-len(l.buf))
	l.buf = append(l.buf, p[:n]...)
	l.dropped += int64(len(p) - n)
	return len(p), nil
}

func (l *limited) output() Output {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Output{Kept: l.buf, Dropped: l.dropped}
}

// Run executes c's argv directly (no shell) in a process group of its
// own, with c's environment only, and returns what it printed. When ctx
// ends first (a timeout, or the daemon stopping) the whole group is
// killed. A non-empty output of a command that succeeded is logged to log
// (when not nil); a failure's output is in the error. The outbox calls it,
// one command at a time and in the order the bans happened, and retries a
// failure.
func Run(ctx context.Context, c Command, log *slog.Logger) (Output, error) {
	if len(c.Argv) == 0 {
		return Output{}, nil
	}
	cmd := exec.CommandContext(ctx, c.Argv[0], c.Argv[1:]...)
	cmd.Env = c.Env()
	cmd.Dir = "/"
	out := &limited{limit: OutputLimit}
	// The same writer for both: one pipe, in the order they were written.
	cmd.Stdout, cmd.Stderr = out, out
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
	o := out.output()
	if err != nil {
		return o, fmt.Errorf("%s: %w: %s", c.Argv[0], err, o)
	}
	if log != nil && (len(o.Kept) > 0 || o.Dropped > 0) {
		log.Info("action output", "event", c.Event, "jail", c.Jail, "addr", c.Addr, "program", c.Argv[0], "output", o.String())
	}
	return o, nil
}

// Truncate bounds a command's output for a log line or an error.
func Truncate(b []byte) string {
	const max = 512
	if len(b) > max {
		return fmt.Sprintf("%s… (%d bytes)", b[:max], len(b))
	}
	return string(b)
}
