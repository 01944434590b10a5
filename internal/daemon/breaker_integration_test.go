package daemon

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/control"
	"github.com/mailjail/mailjail/internal/testutil"
)

// systemd's STATUS= says when the circuit breaker tripped, why, how many
// bans it holds and what to run; after `mailjail resume` (over the
// socket) it says the daemon follows its logs again.
func TestSdNotifyStatusOfTheBreaker(t *testing.T) {
	dir := shortDir(t)
	n := listenNotify(t, dir, 0)
	logA := filepath.Join(dir, "a.log")
	appendLog(t, logA, "")
	cfg := reloadConfig(t, dir, "breaker_bans = 2\n"+jailTOML("a", logA, "maxretry = 1"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), Options{}) }()
	defer func() {
		cancel()
		if err := testutil.Receive(t, done, 15*time.Second, "the daemon to stop"); err != nil {
			t.Error(err)
		}
	}()
	waitServing(t, cfg)
	appendLog(t, logA, eventLine("192.0.2.10")+eventLine("192.0.2.11")+eventLine("192.0.2.12"))
	const tripped = "STATUS=circuit breaker tripped at "
	var line string
	testutil.Eventually(t, 15*time.Second, "STATUS of the trip", func() bool {
		for _, m := range n.all() {
			if strings.HasPrefix(m, tripped) {
				line = m
			}
		}
		return line != ""
	})
	if !strings.HasSuffix(line, ": 3 new bans within 1m, more than breaker_bans = 2; 1 ban held, run mailjail resume") {
		t.Errorf("STATUS %q", line)
	}
	following := n.count("STATUS=following logs")
	resp, err := control.Call(ctx, cfg.Global.Socket, control.OpResume, control.Request{By: "test"})
	if err != nil || !resp.OK || len(resp.Bans) != 1 || resp.Bans[0].Addr != "192.0.2.12" {
		t.Fatalf("resume: %+v, %v", resp, err)
	}
	testutil.Eventually(t, 15*time.Second, "STATUS after the resume", func() bool { return n.count("STATUS=following logs") > following })
}
