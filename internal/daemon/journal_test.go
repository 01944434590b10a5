package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/testutil"
)

// A jail that follows the systemd journal (Postfix logging to journald
// only) bans like one that follows a file. Runs against the real journal;
// `make test` starts journald (watcher/journal_setup.sh).
func TestJournalJailBans(t *testing.T) {
	if _, err := exec.LookPath("systemd-cat"); err != nil {
		t.Skip("no systemd-cat: journal not installed")
	}
	if _, err := os.Stat("/run/systemd/journal/socket"); err != nil {
		t.Skip("journald not running (bash watcher/journal_setup.sh starts it)")
	}
	dir, err := os.MkdirTemp("", "mjj")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ident := fmt.Sprintf("postfix-mjt%d/cleanup", time.Now().UnixNano()%1e9)
	cfg := testConfig(t, dir, "")
	toml := fmt.Sprintf(`[global]
database = %q
map_file = %q
account_map_file = %q
socket = %q
[jail.pj]
filter = "postfix-ratelimit"
journalmatch = { identifiers = [%q] }
maxretry = 2
`, cfg.Global.Database, cfg.Global.MapFile, cfg.Global.AccountMapFile, cfg.Global.Socket, ident)
	cfgPath := filepath.Join(dir, "c.toml")
	os.WriteFile(cfgPath, []byte(toml), 0o644)
	c2, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var logBuf syncBuffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("daemon log (identifier %s):\n%s", ident, logBuf.String())
		}
	})
	go func() {
		done <- Run(ctx, c2, slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug})), Options{})
	}()
	waitMap(t, c2.Global.MapFile, func(n int) bool { return n == 0 })
	send := func(ip string) {
		cmd := exec.Command("systemd-cat", "-t", ident)
		cmd.Stdin = strings.NewReader(`5346CBA274: milter-reject: END-OF-MESSAGE from unknown[` + ip + `]: 4.7.1 Ratelimit "ip" exceeded; from=<a@b> to=<c@d> proto=ESMTP helo=<h>` + "\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("systemd-cat: %v %s", err, out)
		}
	}
	// The daemon follows from the journal's end: give it its start
	// position before writing, by waiting for its socket.
	waitFile(t, c2.Global.Socket)
	send("198.18.7.7")
	send("198.18.7.7")
	waitMap(t, c2.Global.MapFile, func(n int) bool { return n == 1 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func waitFile(t *testing.T, path string) {
	t.Helper()
	testutil.Eventually(t, 15*time.Second, path+" to appear", func() bool { _, err := os.Stat(path); return err == nil })
}

func waitMap(t *testing.T, path string, ok func(int) bool) {
	t.Helper()
	if !testutil.WaitFor(15*time.Second, func() bool { _, err := os.Stat(path); return err == nil && ok(countMap(t, path)) }) {
		t.Fatalf("map %s has %d entries", path, countMap(t, path))
	}
}
