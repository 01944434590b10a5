package daemon

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/control"
	"github.com/mailjail/mailjail/internal/testutil"
)

// A second daemon with its own database but the first one's map and
// socket is refused, and leaves both alone: the first keeps answering and
// its bans stay its own.
func TestSecondDaemonOnTheSameMapIsRefused(t *testing.T) {
	dir := shortDir(t)
	cfg := daemonWithBan(t, dir, "198.51.100.95")
	ctx := context.Background()

	other := *cfg
	other.Global.Database = filepath.Join(dir, "other", "m.db")
	err := Run(ctx, &other, slog.New(slog.NewTextHandler(io.Discard, nil)), Options{})
	if err == nil || !strings.Contains(err.Error(), "one mailjail per map file") {
		t.Fatalf("second daemon: %v", err)
	}
	resp, err := control.Call(ctx, cfg.Global.Socket, control.OpStatus, control.Request{})
	if err != nil || resp.Status == nil || resp.Status.MapEntries != 1 {
		t.Fatalf("first daemon after the second one's attempt: %+v, %v", resp, err)
	}
}

// The account map has the same one owner: a second daemon with its own
// database and address map but the first one's account map is refused.
func TestSecondDaemonOnTheSameAccountMapIsRefused(t *testing.T) {
	dir := shortDir(t)
	cfg := daemonWithBan(t, dir, "198.51.100.96")
	other := *cfg
	other.Global.Database = filepath.Join(dir, "other", "m.db")
	other.Global.MapFile = filepath.Join(dir, "other", "ip.map")
	other.Global.Socket = filepath.Join(dir, "other.sock")
	err := Run(context.Background(), &other, slog.New(slog.NewTextHandler(io.Discard, nil)), Options{})
	if err == nil || !strings.Contains(err.Error(), "one mailjail per map file") || !strings.Contains(err.Error(), filepath.Base(cfg.Global.AccountMapFile)) {
		t.Fatalf("second daemon on %s: %v", cfg.Global.AccountMapFile, err)
	}
}

// A map deleted behind mailjail's back is written again by itself, at the
// next check (every second), not at the next ban.
func TestDeletedMapIsRestored(t *testing.T) {
	cfg := daemonWithBan(t, shortDir(t), "198.51.100.96")
	if err := os.Remove(cfg.Global.MapFile); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	testutil.Eventually(t, 10*time.Second, "the map to come back with its ban", func() bool { return countMap(t, cfg.Global.MapFile) == 1 })
	t.Logf("map restored %v after it was deleted", time.Since(start).Round(time.Millisecond))
}

// daemonWithBan runs a daemon in dir, stopped at the end of the test, with
// addr banned through its socket.
func daemonWithBan(t *testing.T, dir, addr string) *config.Config {
	t.Helper()
	cfg := testConfig(t, dir, "")
	if err := os.WriteFile(cfg.Jails[0].LogPath[0], nil, 0o644); err != nil {
		t.Fatal(err)
	}
	runDaemon(t, cfg)
	waitServing(t, cfg)
	if resp, err := control.Call(context.Background(), cfg.Global.Socket, control.OpBan, control.Request{Addrs: []string{addr}}); err != nil || !resp.OK {
		t.Fatalf("ban: %+v %v", resp, err)
	}
	return cfg
}
