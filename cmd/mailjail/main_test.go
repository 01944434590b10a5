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
)

// The CLI is tested as operators and scripts use it: the real binary,
// its output and its exit code.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mailjail-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "mailjail")
	args := []string{"build", "-o", binary}
	if raceEnabled {
		args = append(args, "-race")
	}
	out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build mailjail: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// env is one isolated installation: config, database, map, socket, log.
type env struct {
	t                          *testing.T
	dir, config, log, mapf, db string
}

func newEnv(t *testing.T, extra string) *env {
	t.Helper()
	// Short: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "mj")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	e := &env{t: t, dir: dir, config: filepath.Join(dir, "mailjail.toml"), log: filepath.Join(dir, "rspamd.log"),
		mapf: filepath.Join(dir, "maps", "ip.map"), db: filepath.Join(dir, "state", "mailjail.db")}
	cfg := fmt.Sprintf(`[global]
database = %q
map_file = %q
socket = %q
timezone = "UTC"
ignoreip = ["127.0.0.0/8", "::1", "192.0.2.0/24"]

[jail.rspamd-ratelimit]
filter = "rspamd-ratelimit"
logpath = [%q]
maxretry = 3
findtime = "10m"
bantime = "1h"
%s`, e.db, e.mapf, filepath.Join(dir, "s.sock"), e.log, extra)
	if err := os.WriteFile(e.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.log, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return e
}

// mj runs the CLI and returns stdout, stderr and the exit code.
func (e *env) mj(args ...string) (string, string, int) {
	e.t.Helper()
	cmd := exec.Command(binary, append([]string{"--config", e.config}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatal(err)
	}
	return out.String(), errb.String(), code
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

// startDaemon runs `mailjail run` and waits until its socket answers.
func (e *env) startDaemon() *exec.Cmd {
	e.t.Helper()
	cmd := exec.Command(binary, "--config", e.config, "run")
	logf, err := os.OpenFile(filepath.Join(e.dir, "daemon.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		e.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
	})
	e.waitFor("daemon to answer", func() bool {
		var s struct{ Running bool }
		out, _, code := e.mj("status", "--json")
		return code == 0 && json.Unmarshal([]byte(out), &s) == nil && s.Running
	})
	return cmd
}

func (e *env) daemonLog() string {
	b, _ := os.ReadFile(filepath.Join(e.dir, "daemon.log"))
	return string(b)
}

// waitFor polls cond until it holds or 15 s pass.
func (e *env) waitFor(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s; daemon log:\n%s", what, e.daemonLog())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// event appends one rspamd ratelimit summary line for ip, stamped now.
func (e *env) event(ip string) {
	e.t.Helper()
	line := time.Now().UTC().Format("2006-01-02 15:04:05") + ` #3861(rspamd_proxy) <4854e1>; proxy; rspamd_task_write_log: id: <m@x>, ip: ` + ip +
		`, from: <a@example.com>, (default: F (soft reject): [0.00/15.00] []), len: 158, forced: soft reject "Ratelimit "ip" exceeded"; score=nan (set by ratelimit)` + "\n"
	f, err := os.OpenFile(e.log, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(line); err != nil {
		e.t.Fatal(err)
	}
}

// mapAddrs returns the addresses in the map file, in file order.
func (e *env) mapAddrs() []string {
	data, err := os.ReadFile(e.mapf)
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

func (e *env) kill9(cmd *exec.Cmd) {
	e.t.Helper()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		e.t.Fatal(err)
	}
	cmd.Wait()
}
