package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/testutil"
)

// The daemon under test

var bin struct {
	once    sync.Once
	path    string
	cleanup func()
	took    time.Duration
	err     error

	logged bool
}

// mailjailBinary builds ./cmd/mailjail once per test binary (with -race when the tests run
// with it) and returns its path; MAILJAIL_E2E_BIN names a binary to use instead.
func mailjailBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv(envBinary); p != "" {
		return p
	}
	bin.once.Do(func() {
		start := time.Now()
		bin.path, bin.cleanup, bin.err = testutil.BuildBinary("github.com/mailjail/mailjail/cmd/mailjail")
		bin.took = time.Since(start)
	})
	if bin.err != nil {
		t.Fatalf("building the daemon: %v", bin.err)
	}
	if !bin.logged {
		bin.logged = true
		t.Logf("built %s in %v (race detector: %v)", bin.path, bin.took.Round(time.Millisecond), testutil.Race)
	}
	return bin.path
}

// daemonConfig is the part of mailjail's TOML configuration the e2e tests set.
type daemonConfig struct {
	Database string
	MapFile  string
	Socket   string
	IgnoreIP []string
	LogPath  []string
	MaxRetry int
	FindTime string
	BanTime  string
	// Targets, when set, are [global] targets (the jail names none).
	Targets []string
	// Extra is raw TOML appended after everything else: target
	// sections such as [postfix], [nftables], [redis].
	Extra string
}

// TOML renders the configuration with the keys of DESIGN.md.
func (c daemonConfig) TOML() string {
	list := func(xs []string) string {
		q := make([]string, len(xs))
		for i, x := range xs {
			q[i] = strconv.Quote(x)
		}
		return "[" + strings.Join(q, ", ") + "]"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[global]\n")
	fmt.Fprintf(&b, "database = %s\n", strconv.Quote(c.Database))
	if c.Targets == nil || slices.Contains(c.Targets, "rspamd-map") {
		// Written only where it is used: check rejects a map no target writes.
		fmt.Fprintf(&b, "map_file = %s\n", strconv.Quote(c.MapFile))
	}
	fmt.Fprintf(&b, "socket   = %s\n", strconv.Quote(c.Socket))
	fmt.Fprintf(&b, "ignoreip = %s\n", list(c.IgnoreIP))
	if c.Targets != nil {
		fmt.Fprintf(&b, "targets  = %s\n", list(c.Targets))
	}
	fmt.Fprintf(&b, "\n")
	fmt.Fprintf(&b, "[jail.rspamd-ratelimit]\n")
	fmt.Fprintf(&b, "filter   = \"rspamd-ratelimit\"\n")
	fmt.Fprintf(&b, "logpath  = %s\n", list(c.LogPath))
	fmt.Fprintf(&b, "maxretry = %d\n", c.MaxRetry)
	fmt.Fprintf(&b, "findtime = %s\n", strconv.Quote(c.FindTime))
	fmt.Fprintf(&b, "bantime  = %s\n", strconv.Quote(c.BanTime))
	if c.Extra != "" {
		fmt.Fprintf(&b, "\n%s\n", c.Extra)
	}
	return b.String()
}

// daemonDir returns a fresh, short directory for one test's daemon state (configuration,
// database, sockets, output). Short, because unix socket paths are limited to 107 bytes and
// t.TempDir() embeds the test's long name.
func daemonDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "mje2e-")
	if err != nil {
		t.Fatalf("creating the daemon's directory: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// newDaemonConfig returns a configuration whose state lives in a fresh directory of the
// test and that follows the real rspamd log and writes the real map.
func newDaemonConfig(dir string) daemonConfig {
	return daemonConfig{
		Database: filepath.Join(dir, "mailjail.db"),
		MapFile:  mapFilePath(),
		Socket:   filepath.Join(dir, "mailjail.sock"),
		IgnoreIP: []string{"127.0.0.0/8", "::1"},
		LogPath:  []string{rspamdLogPath},
		MaxRetry: 3,
		FindTime: "10m",
		BanTime:  "1m",
	}
}

// writeConfig writes cfg into dir and returns the file's path.
func writeConfig(t *testing.T, dir string, cfg daemonConfig) string {
	t.Helper()
	p := filepath.Join(dir, "mailjail.toml")
	if err := os.WriteFile(p, []byte(cfg.TOML()), 0o600); err != nil {
		t.Fatalf("writing the daemon configuration: %v", err)
	}
	return p
}

// daemon is one run of `mailjail run --config FILE`.
type daemon struct {
	t       *testing.T
	n       int
	cmd     *exec.Cmd
	logPath string
	started time.Time
	readyAt time.Time
	exited  chan struct{}
	waitErr error
	notify  *net.UnixConn
}

// startDaemon runs the daemon with the configuration at cfgPath and waits until it tells
// systemd READY=1 (over a NOTIFY_SOCKET the test listens on). n numbers the runs of a test;
// its output goes to dir/daemon-N.log and is shown when the test fails.
func startDaemon(t *testing.T, dir, cfgPath string, n int) *daemon {
	t.Helper()
	return startDaemonWith(t, dir, cfgPath, n, nil)
}

// startDaemonWith is startDaemon under a command prefix, such as
// `ip netns exec NS` to run the daemon in a network namespace.
func startDaemonWith(t *testing.T, dir, cfgPath string, n int, prefix []string) *daemon {
	t.Helper()
	binPath := mailjailBinary(t)

	sock := filepath.Join(dir, fmt.Sprintf("notify-%d.sock", n))
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listening on a NOTIFY_SOCKET: %v", err)
	}
	ready := make(chan struct{})
	go func() {
		buf := make([]byte, 4096)
		once := sync.Once{}
		for {
			k, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				return
			}
			for _, l := range strings.Split(string(buf[:k]), "\n") {
				if l == "READY=1" {
					once.Do(func() { close(ready) })
				}
			}
		}
	}()

	logPath := filepath.Join(dir, fmt.Sprintf("daemon-%d.log", n))
	out, err := os.Create(logPath)
	if err != nil {
		conn.Close()
		t.Fatalf("creating the daemon's log: %v", err)
	}
	argv := append(slices.Clone(prefix), binPath, "run", "--config", cfgPath)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	env := slices.DeleteFunc(os.Environ(), func(s string) bool {
		return strings.HasPrefix(s, "NOTIFY_SOCKET=") || strings.HasPrefix(s, "LISTEN_")
	})
	cmd.Env = testutil.BinaryEnv(append(env, "NOTIFY_SOCKET="+sock))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}

	d := &daemon{t: t, n: n, cmd: cmd, logPath: logPath, exited: make(chan struct{}), notify: conn}
	d.started = time.Now()
	if err := cmd.Start(); err != nil {
		out.Close()
		conn.Close()
		t.Fatalf("starting %s: %v", binPath, err)
	}
	go func() {
		d.waitErr = cmd.Wait()
		out.Close()
		close(d.exited)
	}()
	t.Cleanup(func() {
		if d.running() {
			d.kill()
		}
		conn.Close()
		if t.Failed() {
			t.Logf("daemon run %d output (%s):\n%s", n, logPath, d.output())
		}
		if strings.Contains(d.output(), "WARNING: DATA RACE") {
			t.Errorf("daemon run %d: the race detector reported a data race (see its output)", n)
		}
	})

	select {
	case <-ready:
		d.readyAt = time.Now()
	case <-d.exited:
		t.Fatalf("daemon run %d exited before READY=1: %v\n%s", n, d.waitErr, d.output())
	case <-time.After(60 * time.Second):
		t.Fatalf("daemon run %d sent no READY=1 to NOTIFY_SOCKET within 60s\n%s", n, d.output())
	}
	t.Logf("daemon run %d (pid %d) ready after %v", n, cmd.Process.Pid, d.readyAt.Sub(d.started).Round(time.Millisecond))
	return d
}

func (d *daemon) running() bool {
	select {
	case <-d.exited:
		return false
	default:
		return true
	}
}

// output returns what the daemon printed so far.
func (d *daemon) output() string {
	b, err := os.ReadFile(d.logPath)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", d.logPath, err)
	}
	return string(b)
}

// kill sends SIGKILL, as a crash or an OOM kill would, and waits for the process to go.
func (d *daemon) kill() {
	d.t.Helper()
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-d.exited:
	case <-time.After(10 * time.Second):
		d.t.Fatalf("daemon run %d did not die within 10s of SIGKILL", d.n)
	}
}

// stop sends SIGTERM and expects a clean exit (status 0) within 15 s.
func (d *daemon) stop() {
	d.t.Helper()
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
		if d.waitErr != nil {
			d.t.Errorf("daemon run %d after SIGTERM: %v, want exit status 0", d.n, d.waitErr)
		}
	case <-time.After(15 * time.Second):
		d.t.Errorf("daemon run %d still running 15s after SIGTERM; killing it", d.n)
		d.kill()
	}
}

// showJSON is the part of `mailjail show ADDR --json` the tests read.
type showJSON struct {
	Banned bool `json:"banned"`
	Active []struct {
		Jail    string `json:"jail"`
		Strikes int    `json:"strikes"`
	} `json:"active"`
	Strikes []struct {
		Jail string `json:"jail"`
		Line string `json:"line"`
	} `json:"strikes"`
}

// showAddr runs `mailjail show ADDR --json`; exit status 1 (nothing known) is an empty answer.
func showAddr(t *testing.T, bin, cfgPath, addr string) showJSON {
	t.Helper()
	out, err := mjCommand(bin, "--config", cfgPath, "show", addr, "--json").Output()
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) {
		t.Fatalf("mailjail show %s: %v\n%s", addr, err, out)
	}
	var s showJSON
	if err := json.Unmarshal(out, &s); err != nil {
		t.Fatalf("mailjail show %s --json: %v in %q", addr, err, out)
	}
	return s
}

// mjCommand is exec.Command for the mailjail binary, without the race
// runtime's second of sleep at every exit.
func mjCommand(bin string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Env = testutil.BinaryEnv(nil)
	return cmd
}
