package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/testutil"
)

// The CLI is tested as operators and scripts use it: the real binary,
// built once for the package, its output and its exit code. Each test has
// its own installation (newEnv), so they run in parallel, except the
// kill -9 stream test, which wants the machine to itself.
var binary string

func TestMain(m *testing.M) {
	bin, cleanup, err := testutil.BuildBinary(".")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = bin
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// env is one isolated installation: config, database, maps, socket, log.
type env struct {
	t                                   *testing.T
	dir, config, log, mapf, acctMap, db string
}

// newEnv writes an installation with one rspamd-ratelimit jail (maxretry
// 3) on e.log; tune may change the configuration before it is written.
func newEnv(t *testing.T, tune ...func(*env, *testutil.Config)) *env {
	t.Helper()
	// Short: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "mj")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	e := &env{t: t, dir: dir, config: filepath.Join(dir, "mailjail.toml"), log: filepath.Join(dir, "rspamd.log"),
		mapf: filepath.Join(dir, "maps", "ip.map"), acctMap: filepath.Join(dir, "maps", "accounts.map"), db: filepath.Join(dir, "state", "mailjail.db")}
	cfg := testutil.Config{
		Database: e.db, MapFile: e.mapf, Socket: filepath.Join(dir, "s.sock"),
		// Every installation has its own account map: the default is in /etc.
		Global:   fmt.Sprintf("account_map_file = %q", e.acctMap),
		IgnoreIP: []string{"127.0.0.0/8", "::1", "192.0.2.0/24"},
		Jails: []testutil.Jail{{Name: "rspamd-ratelimit", Filter: "rspamd-ratelimit", LogPath: []string{e.log},
			MaxRetry: 3, FindTime: "10m", BanTime: "1h"}},
	}
	for _, f := range tune {
		f(e, &cfg)
	}
	if err := os.WriteFile(e.config, []byte(cfg.TOML()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.log, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return e
}

// run runs the CLI on e's configuration and returns stdout, stderr and
// the exit code; err is set only when the binary could not be run. It
// never fails the test, so goroutines may call it.
func (e *env) run(args ...string) (stdout, stderr string, code int, err error) {
	return runCLI(nil, append([]string{"--config", e.config}, args...)...)
}

// runCLI runs the binary with exactly args, and extraEnv added to the
// environment; see run.
func runCLI(extraEnv []string, args ...string) (stdout, stderr string, code int, err error) {
	cmd := exec.Command(binary, args...)
	cmd.Env = testutil.BinaryEnv(append(os.Environ(), extraEnv...))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code, err = ee.ExitCode(), nil
	}
	return out.String(), errb.String(), code, err
}

// mj runs the CLI from the test's goroutine; see run.
func (e *env) mj(args ...string) (string, string, int) {
	e.t.Helper()
	out, errs, code, err := e.run(args...)
	if err != nil {
		e.t.Fatalf("mailjail %v: %v", args, err)
	}
	return out, errs, code
}

func (e *env) mustJSON(v any, args ...string) {
	e.t.Helper()
	out, errs, code := e.mj(append(args, "--json")...)
	if code != 0 && code != 1 {
		e.t.Fatalf("%v: exit %d: %s", args, code, errs)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		e.t.Fatalf("%v: %v in %q", args, err, out)
	}
}

// daemonProc is a running `mailjail run`.
type daemonProc struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once the process has been reaped
}

// startDaemon runs `mailjail run`, stopped in t.Cleanup, and waits until
// its socket answers.
func (e *env) startDaemon() *daemonProc {
	e.t.Helper()
	cmd := exec.Command(binary, "--config", e.config, "run")
	cmd.Env = testutil.BinaryEnv(nil)
	logf, err := os.OpenFile(filepath.Join(e.dir, "daemon.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		e.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	d := &daemonProc{cmd: cmd, exited: make(chan struct{})}
	go func() {
		cmd.Wait()
		logf.Close()
		close(d.exited)
	}()
	e.t.Cleanup(d.stop)
	e.waitFor("daemon to answer", func() bool {
		select {
		case <-d.exited:
			e.t.Fatalf("the daemon exited before it answered; its log:\n%s", e.daemonLog())
		default:
		}
		var s struct{ Running bool }
		out, _, code := e.mj("status", "--json")
		return code == 0 && json.Unmarshal([]byte(out), &s) == nil && s.Running
	})
	return d
}

// stop ends the daemon as systemd does: SIGTERM, then SIGKILL when it has
// not stopped after a while. It returns once the process is gone.
func (d *daemonProc) stop() {
	d.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(testutil.Scale(10 * time.Second))
	defer t.Stop()
	select {
	case <-d.exited:
	case <-t.C:
		d.cmd.Process.Kill()
		<-d.exited
	}
}

func (e *env) daemonLog() string {
	b, _ := os.ReadFile(filepath.Join(e.dir, "daemon.log"))
	return string(b)
}

// waitFor polls cond until it holds, failing the test with the daemon's
// log after 15 s (scaled under -race).
func (e *env) waitFor(what string, cond func() bool) {
	e.t.Helper()
	if !testutil.WaitFor(15*time.Second, cond) {
		e.t.Fatalf("timed out after %s waiting for %s; daemon log:\n%s", testutil.Scale(15*time.Second), what, e.daemonLog())
	}
}

// appendLog appends text to the jail's log in one write. It never fails
// the test, so goroutines may call it.
func (e *env) appendLog(text string) error { return appendFile(e.log, text) }

// appendFile appends text to the existing file path in one write.
func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(text)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// event appends one rspamd ratelimit summary line for ip, stamped now.
func (e *env) event(ip string) {
	e.t.Helper()
	if err := e.appendLog(testutil.RspamdRatelimit{IP: ip}.Line()); err != nil {
		e.t.Fatal(err)
	}
}

// mapAddrs returns the addresses in the map file, in file order.
func (e *env) mapAddrs() []string { return mapKeys(e.mapf) }

// mapKeys returns the keys of the map file at path (an address or an
// account a line), in file order; none when it does not exist.
func mapKeys(path string) []string {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) > 0 && !strings.HasPrefix(f[0], "#") {
			out = append(out, f[0])
		}
	}
	return out
}

func (e *env) inMap(addr string) bool {
	for _, a := range e.mapAddrs() {
		if a == addr {
			return true
		}
	}
	return false
}

// kill9 kills a daemon started by startDaemon and waits until it is gone.
func (e *env) kill9(d *daemonProc) {
	e.t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		e.t.Fatal(err)
	}
	testutil.Receive(e.t, d.exited, 10*time.Second, "the killed daemon to exit")
}
