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
	"log/slog"
	"os/exec"
	"strconv"
	"strings"
	"sync"
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

// Runner runs commands one at a time in the background, so a slow command
// never delays log reading or map updates, and they run in the order the
// bans happened (a ban before its unban).
type Runner struct {
	queue   chan []string
	timeout time.Duration
	log     *slog.Logger
	wg      sync.WaitGroup
	// run executes one command; tests replace it.
	run func(ctx context.Context, argv []string) ([]byte, error)
}

// NewRunner starts a runner with a queue of queueLen commands.
func NewRunner(log *slog.Logger, timeout time.Duration, queueLen int) *Runner {
	r := &Runner{queue: make(chan []string, queueLen), timeout: timeout, log: log, run: execute}
	r.wg.Add(1)
	go r.loop()
	return r
}

func execute(ctx context.Context, argv []string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

// Submit queues argv (already expanded). When the queue is full the
// command is dropped with an error log rather than blocking the daemon:
// the map, not the actions, is what enforces a ban.
func (r *Runner) Submit(argv []string) {
	if len(argv) == 0 {
		return
	}
	select {
	case r.queue <- argv:
	default:
		r.log.Error("action queue full, command dropped", "argv", argv)
	}
}

func (r *Runner) loop() {
	defer r.wg.Done()
	for argv := range r.queue {
		ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
		start := time.Now()
		out, err := r.run(ctx, argv)
		cancel()
		if err != nil {
			r.log.Error("action failed", "argv", argv, "err", err, "output", truncate(out))
			continue
		}
		r.log.Info("action done", "argv", argv, "took", time.Since(start).Round(time.Millisecond))
	}
}

// Close waits for queued commands to finish.
func (r *Runner) Close() {
	close(r.queue)
	r.wg.Wait()
}

func truncate(b []byte) string {
	const max = 512
	if len(b) > max {
		return fmt.Sprintf("%s… (%d bytes)", b[:max], len(b))
	}
	return string(b)
}
