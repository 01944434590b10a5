// Package redistest runs private redis-server processes for tests: each on
// a free loopback port in its own temporary directory, without
// persistence, so that unit tests never touch the server the e2e suite
// (or an operator) runs on 6379, nor each other's data.
//
// A test that needs Redis skips when redis-server is not installed,
// except under MAILJAIL_E2E=1 (CI), where a missing peer is a failure.
package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is one running redis-server.
type Server struct {
	Addr string // 127.0.0.1:port
	Dir  string // its working directory (for sockets, certificates)
	cmd  *exec.Cmd
	logf string
}

// shared is the server of the test binary when TestMain ran Main.
var (
	shared    *Server
	sharedErr error
)

// Main runs the tests of a binary with one shared server (Shared returns
// it), stopped when they end, and exits.
func Main(m *testing.M) {
	shared, sharedErr = start(nil)
	code := m.Run()
	if shared != nil {
		shared.Stop()
	}
	os.Exit(code)
}

// Shared is the server Main started, or skips (fails under MAILJAIL_E2E=1)
// when there is none.
func Shared(t testing.TB) *Server {
	t.Helper()
	if shared == nil {
		missing(t, sharedErr)
	}
	return shared
}

// Start starts a server of t's own with extra configuration arguments
// (redis-server [FILE] --name value ...), stopped at t's cleanup. With
// --tls-port the plain port is off and Addr is the TLS one.
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	s, err := start(args)
	if err != nil {
		missing(t, err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Available reports whether redis-server is installed.
func Available() bool {
	_, err := exec.LookPath("redis-server")
	return err == nil
}

func missing(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		err = fmt.Errorf("redistest.Main was not run by TestMain")
	}
	if !Available() && os.Getenv("MAILJAIL_E2E") != "1" {
		t.Skipf("redis-server is not installed (apt-get install redis-server): %v", err)
	}
	t.Fatalf("redis: %v", err)
}

// Client is a plain client of s, closed at t's cleanup.
func (s *Server) Client(t testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr, DisableIdentity: true})
	t.Cleanup(func() { c.Close() })
	return c
}

// Stop kills the server and removes its directory.
func (s *Server) Stop() {
	if s.cmd.Process != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
	}
	os.RemoveAll(s.Dir)
}

// start tries a few free ports: another process may take the one found
// between the probe and the server's bind.
func start(args []string) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, err
	}
	var last error
	for range 5 {
		s, err := try(bin, args)
		if err == nil {
			return s, nil
		}
		last = err
	}
	return nil, last
}

func try(bin string, args []string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "mailjail-redis-")
	if err != nil {
		return nil, err
	}
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Dir: dir, logf: filepath.Join(dir, "redis.log")}
	argv := []string{"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--dir", dir,
		"--save", "", "--appendonly", "no", "--logfile", s.logf, "--daemonize", "no"}
	if p := argAfter(args, "--port"); p != "" {
		s.Addr = net.JoinHostPort("127.0.0.1", p) // the caller's own port
	}
	if hasArg(args, "--tls-port") {
		// A TLS-only server: the plain port is off, the TLS one is Addr.
		argv[3] = "0"
		s.Addr = net.JoinHostPort("127.0.0.1", argAfter(args, "--tls-port"))
	}
	if len(args) > 0 && !strings.HasPrefix(args[0], "--") {
		// A configuration file (a Sentinel's) must come first.
		argv = append([]string{args[0]}, argv...)
		args = args[1:]
	}
	s.cmd = exec.Command(bin, append(argv, args...)...)
	s.cmd.Dir = dir
	if err := s.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	exited := make(chan struct{})
	go func() { s.cmd.Process.Wait(); close(exited) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return s, nil
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(s.logf)
			os.RemoveAll(dir)
			return nil, fmt.Errorf("redis-server exited at start: %s", log)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.cmd.Process.Kill()
			os.RemoveAll(dir)
			return nil, fmt.Errorf("redis-server not listening on %s after 10s", s.Addr)
		}
	}
}

// FreePort is a loopback TCP port nobody listens on right now.
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func hasArg(args []string, name string) bool { return argAfter(args, name) != "" }

func argAfter(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// Ping waits until c answers, for servers that accept connections before
// they serve (Sentinel).
func Ping(t testing.TB, c redis.UniversalClient) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis: no answer to PING after 10s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
