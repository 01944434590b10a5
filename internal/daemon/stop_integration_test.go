package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/internal/testutil"
)

// Stopping does not wait for a hung ban action: the daemon stops within a
// bounded time, the action is killed, and its outbox item stays pending
// for the next start.
func TestStopIsBoundedWithAHungActionWhichStaysInTheOutbox(t *testing.T) {
	dir := shortDir(t)
	pidFile := filepath.Join(dir, "action.pid")
	cfg := testConfig(t, dir, fmt.Sprintf("maxretry = 1\nban_action = [\"/bin/sh\", \"-c\", \"echo $$ > %s; exec sleep 1000\"]\n", pidFile))
	logPath := cfg.Jails[0].LogPath[0]
	if err := os.WriteFile(logPath, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), Options{}) }()
	waitServing(t, cfg)
	f, _ := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(eventLine("198.51.100.90"))
	f.Close()
	var pid int
	testutil.Eventually(t, 15*time.Second, "the action to start", func() bool {
		data, err := os.ReadFile(pidFile)
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(data)))
		return err == nil
	})
	stopAt := time.Now()
	cancel()
	if err := testutil.Receive(t, done, 10*time.Second, "the daemon to stop"); err != nil {
		t.Fatal(err)
	}
	t.Logf("stopped %v after the signal", time.Since(stopAt).Round(time.Millisecond))
	if !testutil.WaitFor(5*time.Second, func() bool { return syscall.Kill(pid, 0) != nil || zombie(pid) }) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("the hung action %d outlived the daemon", pid)
	}
	st, err := store.Open(cfg.Global.Database, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if c, err := st.CountOutbox(); err != nil || c.Pending != 1 {
		t.Fatalf("outbox after the stop: %+v, %v", c, err)
	}
}

func zombie(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(stat), ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}
