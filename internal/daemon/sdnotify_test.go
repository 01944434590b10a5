package daemon

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/testutil"
)

// notifySocket stands in for systemd: it sets $NOTIFY_SOCKET (and
// $WATCHDOG_USEC when watchdog > 0) and records every datagram.
type notifySocket struct {
	mu   sync.Mutex
	msgs []string
}

func listenNotify(t *testing.T, dir string, watchdog time.Duration) *notifySocket {
	t.Helper()
	path := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	if watchdog > 0 {
		t.Setenv("WATCHDOG_USEC", itoa(watchdog.Microseconds()))
	}
	n := &notifySocket{}
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.msgs = append(n.msgs, string(buf[:k]))
			n.mu.Unlock()
		}
	}()
	return n
}

// count is how many datagrams so far hold the field (e.g. "WATCHDOG=1").
func (n *notifySocket) count(field string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, m := range n.msgs {
		for l := range strings.SplitSeq(m, "\n") {
			if l == field || strings.HasPrefix(l, field) && strings.HasSuffix(field, "=") {
				c++
			}
		}
	}
	return c
}

func (n *notifySocket) all() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.msgs...)
}

// READY, STATUS, WATCHDOG (every half of WATCHDOG_USEC), RELOADING with
// MONOTONIC_USEC then READY again around a reload, STOPPING at the end;
// a stuck main loop stops the watchdog pings, which resume once it goes
// on.
func TestSdNotifyReadyWatchdogReloadingStopping(t *testing.T) {
	dir := shortDir(t)
	const wd = 40 * time.Millisecond // pings every 20 ms
	n := listenNotify(t, dir, wd)
	logA := filepath.Join(dir, "a.log")
	appendLog(t, logA, "")
	cfg := reloadConfig(t, dir, jailTOML("a", logA, "maxretry = 1"))
	stuck := make(chan struct{})
	var stall sync.Once
	release := make(chan struct{})
	blocked := make(chan struct{}) // closed once the loop is stuck
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	opt := Options{stall: func() {
		select {
		case <-stuck:
			stall.Do(func() { close(blocked); <-release })
		default:
		}
	}}
	go func() { done <- Run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), opt) }()
	// A failed assertion must not leave the daemon pinging: the next
	// test's notify socket is named by the same environment.
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			cancel()
			select {
			case <-release:
			default:
				close(release)
			}
			<-done
		}
	})
	waitServing(t, cfg)
	testutil.Eventually(t, 15*time.Second, "READY, STATUS and watchdog pings", func() bool {
		return n.count("READY=1") >= 1 && n.count("STATUS=following logs") >= 1 && n.count("WATCHDOG=1") >= 5
	})

	if resp := callReload(t, cfg); !resp.OK {
		t.Fatalf("reload: %+v", resp.Reload)
	}
	// The datagrams were sent before the reply; the test's reader may
	// not have taken them yet.
	var msgs []string
	reloading := -1
	if !testutil.WaitFor(15*time.Second, func() bool {
		msgs, reloading = n.all(), -1
		for i, m := range msgs {
			if strings.Contains(m, "RELOADING=1") {
				reloading = i
			}
		}
		return reloading >= 0 && slicesAnyAfter(msgs, reloading, "READY=1")
	}) {
		t.Fatalf("no RELOADING=1 followed by READY=1 in %q", msgs)
	}
	if !strings.Contains(msgs[reloading], "MONOTONIC_USEC=") {
		t.Errorf("RELOADING without MONOTONIC_USEC: %q", msgs[reloading])
	}

	// Stuck: the loop blocks on the next batch; no ping for many
	// intervals.
	close(stuck)
	appendLog(t, logA, eventLine("192.0.2.10"))
	testutil.Receive(t, blocked, 15*time.Second, "the loop to take the batch and stick")
	// A ping already on its way when the loop stuck may still arrive.
	time.Sleep(wd)
	before := n.count("WATCHDOG=1")
	time.Sleep(10 * wd)
	if after := n.count("WATCHDOG=1"); after > before+1 {
		t.Fatalf("a stuck loop sent %d watchdog pings", after-before)
	}
	close(release)
	testutil.Eventually(t, 15*time.Second, "pings after the loop goes on", func() bool { return n.count("WATCHDOG=1") >= before+3 })

	cancel()
	stopped = true
	if err := testutil.Receive(t, done, 15*time.Second, "the daemon to stop"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "STOPPING=1", func() bool { return n.count("STOPPING=1") == 1 })
}

func slicesAnyAfter(msgs []string, i int, field string) bool {
	for _, m := range msgs[i+1:] {
		if strings.Contains(m, field) {
			return true
		}
	}
	return false
}

// Without WATCHDOG_USEC, or with WATCHDOG_PID naming another process, no
// ping is sent.
func TestWatchdogInterval(t *testing.T) {
	for _, tc := range []struct {
		usec, pid string
		want      time.Duration
	}{
		{"", "", 0},
		{"junk", "", 0},
		{"30000000", "", 15 * time.Second},
		{"30000000", "1", 0},
	} {
		t.Setenv("WATCHDOG_USEC", tc.usec)
		t.Setenv("WATCHDOG_PID", tc.pid)
		if got := watchdogInterval(); got != tc.want {
			t.Errorf("WATCHDOG_USEC=%q WATCHDOG_PID=%q: %v, want %v", tc.usec, tc.pid, got, tc.want)
		}
	}
}
