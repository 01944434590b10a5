// Package benchkit runs a mailjail daemon for the live and start-up
// benchmarks: a temporary configuration (loopback only, everything in one
// directory), the daemon with a NOTIFY_SOCKET so READY=1 is seen the
// moment it is sent, status over the control socket, and a watcher that
// reports each rename of the map file with the addresses it lists.
package benchkit

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/mailjail/mailjail/internal/control"
)

// Config is where a benchmark daemon keeps its files.
type Config struct {
	Dir      string // everything lives here
	Path     string // the TOML file
	Log      string // the followed log
	Map      string // the rspamd map
	Socket   string // control socket
	Database string
}

// WriteConfig writes a configuration into dir: one rspamd-ratelimit jail
// following dir/rspamd.log, timestamps in UTC, maxretry strikes in 10m
// ban for 1h. The live benchmark bans -burst addresses (10,000) at once,
// on purpose: the circuit breaker is set for that scale (its default
// holds more than 1,000 bans a minute back from the map).
func WriteConfig(dir string, maxretry int) (Config, error) {
	c := Config{Dir: dir, Path: filepath.Join(dir, "mailjail.toml"), Log: filepath.Join(dir, "rspamd.log"),
		Map: filepath.Join(dir, "maps", "ip.map"), Socket: filepath.Join(dir, "mj.sock"), Database: filepath.Join(dir, "mailjail.db")}
	toml := fmt.Sprintf(`[global]
database = %q
map_file = %q
socket = %q
ignoreip = ["127.0.0.0/8", "::1"]
timezone = "UTC"
from_start = true
log_level = "warn"
breaker_bans = 1000000

[jail.rspamd-ratelimit]
filter = "rspamd-ratelimit"
logpath = [%q]
maxretry = %d
findtime = "10m"
bantime = "1h"
`, c.Database, c.Map, c.Socket, c.Log, maxretry)
	if err := os.MkdirAll(filepath.Dir(c.Map), 0o755); err != nil {
		return c, fmt.Errorf("config dir: %w", err)
	}
	if err := os.WriteFile(c.Path, []byte(toml), 0o644); err != nil {
		return c, fmt.Errorf("write config: %w", err)
	}
	return c, nil
}

// Daemon is a running `mailjail run`.
type Daemon struct {
	cmd       *exec.Cmd
	cfg       Config
	Started   time.Time // when the process was started
	ready     chan time.Time
	following chan time.Time
	exited    chan error
	notify    *net.UnixConn
}

// Start runs bin with cfg and returns at once; Ready reports READY=1.
func Start(bin string, cfg Config) (*Daemon, error) {
	sock := filepath.Join(cfg.Dir, "notify.sock")
	os.Remove(sock)
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("notify socket: %w", err)
	}
	logf, err := os.Create(filepath.Join(cfg.Dir, "daemon.log"))
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("daemon log: %w", err)
	}
	d := &Daemon{cfg: cfg, ready: make(chan time.Time, 1), following: make(chan time.Time, 1), exited: make(chan error, 1), notify: conn}
	d.cmd = exec.Command(bin, "--config", cfg.Path, "run")
	d.cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	go d.readNotify()
	d.Started = time.Now()
	if err := d.cmd.Start(); err != nil {
		conn.Close()
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		d.exited <- d.cmd.Wait()
		logf.Close()
	}()
	return d, nil
}

func (d *Daemon) readNotify() {
	buf := make([]byte, 4096)
	for {
		n, err := d.notify.Read(buf)
		if err != nil {
			return
		}
		if bytes.Contains(buf[:n], []byte("READY=1")) {
			select {
			case d.ready <- time.Now():
			default:
			}
		}
		if bytes.Contains(buf[:n], []byte("STATUS=following logs")) {
			select {
			case d.following <- time.Now():
			default:
			}
		}
	}
}

// WaitFollowing waits until the daemon reports STATUS=following logs: its
// strike windows are restored and it judges lines.
func (d *Daemon) WaitFollowing(timeout time.Duration) (time.Time, error) {
	select {
	case t := <-d.following:
		return t, nil
	case <-time.After(timeout):
		return time.Time{}, fmt.Errorf("no STATUS=following logs within %s", timeout)
	}
}

// PID is the daemon's process id.
func (d *Daemon) PID() int { return d.cmd.Process.Pid }

// WaitReady waits for READY=1 and returns when it came.
func (d *Daemon) WaitReady(timeout time.Duration) (time.Time, error) {
	select {
	case t := <-d.ready:
		return t, nil
	case err := <-d.exited:
		return time.Time{}, fmt.Errorf("daemon exited before READY (%v); see %s", err, filepath.Join(d.cfg.Dir, "daemon.log"))
	case <-time.After(timeout):
		return time.Time{}, fmt.Errorf("no READY=1 within %s; see %s", timeout, filepath.Join(d.cfg.Dir, "daemon.log"))
	}
}

// Stop sends SIGTERM and waits; after 10 s it kills the process.
func (d *Daemon) Stop() error {
	defer d.notify.Close()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop daemon: %w", err)
	}
	select {
	case <-d.exited:
		return nil
	case <-time.After(10 * time.Second):
		d.cmd.Process.Kill()
		<-d.exited
		return errors.New("daemon did not stop within 10s; killed")
	}
}

// Status asks the daemon for its status.
func (d *Daemon) Status(ctx context.Context) (*control.Status, error) {
	resp, err := control.Call(ctx, d.cfg.Socket, control.OpStatus, control.Request{})
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	if resp.Status == nil {
		return nil, fmt.Errorf("status: no status in reply (%s)", resp.Error)
	}
	return resp.Status, nil
}

// Offset is the committed read position of path in st (-1 if absent).
func Offset(st *control.Status, path string) int64 {
	for _, j := range st.Jails {
		for _, f := range j.Files {
			if f.Path == path {
				return f.Offset
			}
		}
	}
	return -1
}

// MapWatcher reports each new version of the map: when its rename was
// seen and which addresses it lists.
type MapWatcher struct {
	w    *fsnotify.Watcher
	path string
	fn   func(at time.Time, addrs map[netip.Addr]bool)
	done chan struct{}
}

// WatchMap watches path's directory and calls fn (from one goroutine)
// for every version of the file that appears there.
func WatchMap(path string, fn func(at time.Time, addrs map[netip.Addr]bool)) (*MapWatcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch map: %w", err)
	}
	if err := w.Add(filepath.Dir(path)); err != nil {
		w.Close()
		return nil, fmt.Errorf("watch map dir: %w", err)
	}
	m := &MapWatcher{w: w, path: path, fn: fn, done: make(chan struct{})}
	go m.loop()
	return m, nil
}

func (m *MapWatcher) loop() {
	defer close(m.done)
	for {
		select {
		case ev, ok := <-m.w.Events:
			if !ok {
				return
			}
			if ev.Name != m.path || !ev.Has(fsnotify.Create) && !ev.Has(fsnotify.Write) {
				continue
			}
			at := time.Now()
			addrs, err := ReadMap(m.path)
			if err == nil {
				m.fn(at, addrs)
			}
		case _, ok := <-m.w.Errors:
			if !ok {
				return
			}
		}
	}
}

// Close stops watching.
func (m *MapWatcher) Close() error {
	err := m.w.Close()
	<-m.done
	return err
}

// ReadMap returns the addresses a map file lists.
func ReadMap(path string) (map[netip.Addr]bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read map: %w", err)
	}
	defer f.Close()
	out := map[netip.Addr]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		field, _, _ := strings.Cut(line, " ")
		if a, err := netip.ParseAddr(field); err == nil {
			out[a] = true
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read map: %w", err)
	}
	return out, nil
}
