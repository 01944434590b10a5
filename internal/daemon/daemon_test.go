package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/testutil"
)

func testConfig(t *testing.T, dir, extra string) *config.Config {
	t.Helper()
	toml := fmt.Sprintf(`[global]
database = %q
map_file = %q
account_map_file = %q
socket = %q
timezone = "UTC"
[jail.rl]
filter = "rspamd-ratelimit"
logpath = [%q]
%s`, filepath.Join(dir, "db", "m.db"), filepath.Join(dir, "ip.map"), filepath.Join(dir, "accounts.map"), filepath.Join(dir, "s.sock"), filepath.Join(dir, "rspamd.log"), extra)
	cfg, err := config.Parse(strings.NewReader(toml), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func eventLine(ip string) string {
	return time.Now().UTC().Format("2006-01-02 15:04:05") + ` #1(rspamd_proxy) <ab12>; proxy; rspamd_task_write_log: id: <m>, ip: ` + ip +
		`, from: <a@b>, (default: F (soft reject): [0.00/15.00] []), len: 1, forced: soft reject "Ratelimit "ip" exceeded"; score=nan (set by ratelimit)` + "\n"
}

// READY=1 reaches systemd only once the map is written, and a burst of
// thousands of bans costs a handful of map rewrites, not one per ban.
func TestReadyAndCoalescedMapWrites(t *testing.T) {
	dir, err := os.MkdirTemp("", "mjd")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	notify := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notify, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", notify)
	cfg := testConfig(t, dir, "maxretry = 1\n")
	const bans = 3000
	// A burst of 3,000 bans at once on purpose: the circuit breaker's
	// default (1,000 a minute) would hold 2,000 of them back.
	cfg.Global.Breaker.Bans = 10 * bans
	logPath := cfg.Jails[0].LogPath[0]
	if err := os.WriteFile(logPath, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var writes atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), Options{OnMap: func(time.Time) { writes.Add(1) }})
	}()
	buf := make([]byte, 256)
	conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	n, err := conn.Read(buf)
	if err != nil || !strings.Contains(string(buf[:n]), "READY=1") {
		t.Fatalf("notify: %q %v", buf[:n], err)
	}
	if _, err := os.Stat(cfg.Global.MapFile); err != nil {
		t.Fatalf("READY before the map was written: %v", err)
	}
	var b strings.Builder
	for i := range bans {
		b.WriteString(eventLine(fmt.Sprintf("10.%d.%d.1", i/250, i%250)))
	}
	f, _ := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(b.String())
	f.Close()
	if !testutil.WaitFor(20*time.Second, func() bool { return countMap(t, cfg.Global.MapFile) == bans }) {
		t.Fatalf("map has %d of %d bans", countMap(t, cfg.Global.MapFile), bans)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if w := writes.Load(); w > 10 {
		t.Errorf("%d bans took %d map rewrites", bans, w)
	} else {
		t.Logf("%d bans, %d map rewrites", bans, w)
	}
}

func countMap(t *testing.T, path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n := 0
	for _, l := range strings.Split(string(data), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			n++
		}
	}
	return n
}

// A map that mailjail cannot read is not taken over, and the daemon does
// not start: it would otherwise drop bans it did not understand.
func TestUnparsableMapStopsStart(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, "")
	os.WriteFile(cfg.Global.MapFile, []byte("192.0.2.1\nexample.com\n"), 0o644)
	err := Run(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), Options{})
	if err == nil || !strings.Contains(err.Error(), cfg.Global.MapFile+":2: entry") {
		t.Fatalf("err = %v", err)
	}
	if data, _ := os.ReadFile(cfg.Global.MapFile); string(data) != "192.0.2.1\nexample.com\n" {
		t.Fatal("map changed")
	}
}
