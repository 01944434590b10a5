package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Fixed facts of the environment that e2e/setup.sh builds.
const (
	envEnable      = "MAILJAIL_E2E"     // set to run the suite
	envMapFile     = "MAILJAIL_E2E_MAP" // same variable as setup.sh
	envBinary      = "MAILJAIL_E2E_BIN" // test this mailjail binary instead of building ./cmd/mailjail
	defaultMapFile = "/var/lib/mailjail-e2e/ip_blacklist_ratelimit.map"
	rspamdLogPath  = "/var/log/rspamd/rspamd.log"
	mapRuleName    = "IP_BLACKLIST_RATELIMIT"
	smtpHost       = "127.0.0.1"
	smtpPort       = "25"
	redisHost      = "127.0.0.1"
	redisPort      = "6379"

	// pollEvery is how often waitFor and holdsFor test their conditions.
	pollEvery = 2 * time.Millisecond
)

func TestMain(m *testing.M) {
	code := m.Run()
	if bin.dir != "" {
		_ = os.RemoveAll(bin.dir)
	}
	os.Exit(code)
}

// requireE2E skips the test unless the suite is enabled.
func requireE2E(t *testing.T) {
	t.Helper()
	if os.Getenv(envEnable) == "" {
		t.Skipf("end-to-end test needs real Postfix, rspamd and redis: run e2e/setup.sh as root, then set %s=1", envEnable)
	}
}

// mapFilePath is the map file that rspamd's IP_BLACKLIST_RATELIMIT rule reads.
func mapFilePath() string {
	if p := os.Getenv(envMapFile); p != "" {
		return p
	}
	return defaultMapFile
}

// waitFor polls cond until it holds or timeout passes; it reports whether it held.
func waitFor(cond func() bool, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pollEvery)
	}
}

// holdsFor polls cond for the whole duration d and reports whether it held every time.
func holdsFor(cond func() bool, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if !cond() {
			return false
		}
		time.Sleep(pollEvery)
	}
	return cond()
}

// ---------------------------------------------------------------------------------------------
// Mail through Postfix -> rspamd

// xclientAddr renders a client address for swaks --xclient-addr (Postfix wants IPV6:addr).
func xclientAddr(addr string) (string, error) {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return "", fmt.Errorf("client address %q: %w", addr, err)
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String(), nil
	}
	return "IPV6:" + a.String(), nil
}

// sendMail sends one message through Postfix on loopback, posing as client addr via
// XCLIENT, and returns the server's final reply (normally the one to the end of DATA).
func sendMail(t *testing.T, addr string) (code int, reply string) {
	t.Helper()
	return sendMailFrom(t, addr, "e2e-sender@example.org")
}

// sendMailFrom is sendMail with the envelope sender from.
func sendMailFrom(t *testing.T, addr, from string) (code int, reply string) {
	t.Helper()
	x, err := xclientAddr(addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "swaks",
		"--server", smtpHost, "--port", smtpPort,
		"--xclient-addr", x,
		"--helo", "client.example.org",
		"--from", from,
		"--to", "e2e@localhost",
		"--header", "Subject: mailjail e2e from "+addr,
	)
	out, runErr := cmd.CombinedOutput()
	code, reply, err = parseSwaks(out)
	if err != nil {
		t.Fatalf("swaks as client %s: %v (swaks: %v)\n%s", addr, err, runErr, out)
	}
	return code, reply
}

// parseSwaks returns the last server reply before QUIT from a swaks transcript.
func parseSwaks(out []byte) (int, string, error) {
	var last string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, " -> QUIT") || strings.HasPrefix(line, " ~> QUIT") {
			break
		}
		for _, p := range []string{"<-  ", "<** ", "<~  ", "<~* "} {
			if strings.HasPrefix(line, p) {
				last = strings.TrimPrefix(line, p)
			}
		}
	}
	if len(last) < 3 {
		return 0, "", errors.New("no SMTP reply in the transcript")
	}
	code, err := strconv.Atoi(last[:3])
	if err != nil {
		return 0, "", fmt.Errorf("reply %q: %w", last, err)
	}
	return code, last, nil
}

// flushRatelimit deletes rspamd's ratelimit buckets (keys RL*) from redis, so every client
// starts with a full burst again.
func flushRatelimit(t *testing.T) {
	t.Helper()
	const script = `local n = 0
for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k); n = n + 1 end
return n`
	out, err := exec.Command("redis-cli", "-h", redisHost, "-p", redisPort, "EVAL", script, "0", "RL*").CombinedOutput()
	if err != nil {
		t.Fatalf("flushing ratelimit keys with redis-cli: %v\n%s", err, out)
	}
	if _, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(string(out), "(integer)"))); err != nil {
		t.Fatalf("flushing ratelimit keys with redis-cli: unexpected answer %q", out)
	}
}

// strikeResult tells how a client fared while being rate limited.
type strikeResult struct {
	Passed  int         // messages accepted (250) before the first 451
	Rejects []time.Time // when each 451 reply came back
}

// rateLimit sends mail as addr until rspamd has soft-rejected it `strikes` times
// (451 Ratelimit "ip" exceeded). Any other reply fails the test.
func rateLimit(t *testing.T, addr string, strikes int) strikeResult {
	t.Helper()
	var r strikeResult
	for sent := 0; len(r.Rejects) < strikes; sent++ {
		if sent > strikes+20 {
			t.Fatalf("client %s: %d messages sent, still only %d of %d ratelimit rejections", addr, sent, len(r.Rejects), strikes)
		}
		code, reply := sendMail(t, addr)
		switch {
		case code == 250 && len(r.Rejects) == 0:
			r.Passed++
		case code == 451 && strings.Contains(reply, `Ratelimit "ip" exceeded`):
			r.Rejects = append(r.Rejects, time.Now())
		default:
			t.Fatalf("client %s, message %d: unexpected reply %q (want 250 until rate limited, then 451 Ratelimit \"ip\" exceeded)", addr, sent+1, reply)
		}
	}
	return r
}

// expectReply flushes the ratelimit buckets and sends as addr until the reply has code want
// and contains substr, for at most timeout (rspamd rereads the map a few ms after it
// changes). It returns the number of messages it took.
func expectReply(t *testing.T, addr string, want int, substr string, timeout time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for n := 1; ; n++ {
		flushRatelimit(t)
		code, reply := sendMail(t, addr)
		if code == want && strings.Contains(reply, substr) {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("client %s: got %q after %d tries over %v, want %d %s", addr, reply, n, timeout, want, substr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ---------------------------------------------------------------------------------------------
// Change notification: fsnotify wake-ups, with polling as a fallback

// waker delivers the time of every fsnotify event for the watched names, so a reader can
// stamp what it then reads with the moment the change was announced.
type waker struct {
	w     *fsnotify.Watcher
	names map[string]bool
	C     chan time.Time
}

// newWaker watches dir and reports events about the given files in it (all files if none).
func newWaker(dir string, files ...string) (*waker, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("fsnotify: %w", err)
	}
	if err := w.Add(dir); err != nil {
		w.Close()
		return nil, fmt.Errorf("fsnotify: watching %s: %w", dir, err)
	}
	k := &waker{w: w, names: map[string]bool{}, C: make(chan time.Time, 1)}
	for _, f := range files {
		k.names[filepath.Clean(f)] = true
	}
	go func() {
		defer close(k.C)
		for {
			select {
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if len(k.names) > 0 && !k.names[filepath.Clean(ev.Name)] {
					continue
				}
				select {
				case k.C <- time.Now():
				default: // a wake-up is already pending
				}
			case _, ok := <-w.Errors:
				if !ok {
					return
				}
			}
		}
	}()
	return k, nil
}

// wait returns when a change is announced (with its time), after fallback at the latest
// (with the current time), or reports false when stop is closed.
func (k *waker) wait(stop <-chan struct{}, fallback time.Duration) (time.Time, bool) {
	timer := time.NewTimer(fallback)
	defer timer.Stop()
	select {
	case <-stop:
		return time.Time{}, false
	case at, ok := <-k.C:
		if !ok {
			<-stop
			return time.Time{}, false
		}
		return at, true
	case <-timer.C:
		return time.Now(), true
	}
}

func (k *waker) close() { k.w.Close() }

// fallbackPoll is how often files are read when no fsnotify event arrives.
const fallbackPoll = 20 * time.Millisecond

// ---------------------------------------------------------------------------------------------
// The rspamd log, read as the daemon reads it

// logLine is one line of the rspamd log and when the test saw it appear.
type logLine struct {
	At   time.Time // when fsnotify announced the write that completed the line
	End  int64     // offset just past the line's newline
	Text string
}

// logTailer follows a log file from the offset where it was started.
type logTailer struct {
	path string
	stop chan struct{}
	done chan struct{}

	mu    sync.Mutex
	lines []logLine
	err   error
}

// tailLog follows path from its current end until the test ends.
func tailLog(t *testing.T, path string) *logTailer {
	t.Helper()
	k, err := newWaker(filepath.Dir(path), path)
	if err != nil {
		t.Fatalf("following %s: %v", path, err)
	}
	f, err := os.Open(path)
	if err != nil {
		k.close()
		t.Fatalf("following %s: %v", path, err)
	}
	off, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		k.close()
		f.Close()
		t.Fatalf("following %s: %v", path, err)
	}
	lt := &logTailer{path: path, stop: make(chan struct{}), done: make(chan struct{})}
	go lt.run(f, off, k)
	t.Cleanup(func() {
		close(lt.stop)
		<-lt.done
		if err := lt.failure(); err != nil {
			t.Errorf("following %s: %v", path, err)
		}
	})
	return lt
}

func (lt *logTailer) run(f *os.File, off int64, k *waker) {
	defer close(lt.done)
	defer f.Close()
	defer k.close()
	var partial []byte
	buf := make([]byte, 64<<10)
	at := time.Now()
	for {
		n, err := f.ReadAt(buf, off)
		if n > 0 {
			start := off - int64(len(partial))
			off += int64(n)
			partial = append(partial, buf[:n]...)
			var got []logLine
			for {
				i := bytes.IndexByte(partial, '\n')
				if i < 0 {
					break
				}
				start += int64(i + 1)
				got = append(got, logLine{At: at, End: start, Text: string(partial[:i])})
				partial = partial[i+1:]
			}
			lt.mu.Lock()
			lt.lines = append(lt.lines, got...)
			lt.mu.Unlock()
			if n == len(buf) {
				continue
			}
		}
		if err != nil && !errors.Is(err, io.EOF) {
			lt.mu.Lock()
			lt.err = fmt.Errorf("reading at offset %d: %w", off, err)
			lt.mu.Unlock()
			return
		}
		var ok bool
		if at, ok = k.wait(lt.stop, fallbackPoll); !ok {
			return
		}
	}
}

func (lt *logTailer) failure() error {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	return lt.err
}

// matching returns the lines seen at or after since for which keep is true.
func (lt *logTailer) matching(keep func(string) bool, since time.Time) []logLine {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	var out []logLine
	for _, l := range lt.lines {
		if !l.At.Before(since) && keep(l.Text) {
			out = append(out, l)
		}
	}
	return out
}

// ratelimitEvents returns rspamd's summary lines for messages from addr that were
// soft-rejected by the "ip" bucket and that appeared at or after since. One message is
// one summary line.
func (lt *logTailer) ratelimitEvents(addr string, since time.Time) []logLine {
	ipField := ", ip: " + addr + ","
	return lt.matching(func(s string) bool {
		return strings.Contains(s, "rspamd_task_write_log:") && strings.Contains(s, ipField) &&
			strings.Contains(s, `forced: soft reject "Ratelimit "ip" exceeded"`)
	}, since)
}

// ---------------------------------------------------------------------------------------------
// The rspamd map file, watched as rspamd watches it

// mapSnapshot is one observed content of the map file.
type mapSnapshot struct {
	At      time.Time       // when fsnotify announced the change (or the poll that saw it)
	LogSize int64           // size of the rspamd log just after the map was read
	Addrs   map[string]bool // normalised entries (address, or CIDR when not a single host)
	Bad     []string        // lines that are not an address, a CIDR, blank or a comment
	Mode    os.FileMode
	UID     uint32
	Gone    bool // the file did not exist
}

// has reports whether the snapshot lists addr.
func (s mapSnapshot) has(addr string) bool { return s.Addrs[normAddr(addr)] }

// String lists the entries, sorted.
func (s mapSnapshot) String() string {
	if s.Gone {
		return "(no map file)"
	}
	keys := make([]string, 0, len(s.Addrs))
	for k := range s.Addrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return "[" + strings.Join(keys, " ") + "]"
}

func normAddr(s string) string {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().String()
	}
	if p, err := netip.ParsePrefix(s); err == nil {
		if p.IsSingleIP() {
			return p.Addr().Unmap().String()
		}
		return p.Masked().String()
	}
	return ""
}

// parseMap reads the multimap ip file format: one address or CIDR per line, '#' comments.
func parseMap(data []byte) (addrs map[string]bool, bad []string) {
	addrs = map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		n := normAddr(f[0])
		if n == "" {
			bad = append(bad, line)
			continue
		}
		addrs[n] = true
	}
	return addrs, bad
}

// mapWatcher records every content of the map file it sees.
type mapWatcher struct {
	path    string
	logPath string
	stop    chan struct{}
	done    chan struct{}

	mu    sync.Mutex
	snaps []mapSnapshot
}

// watchMap records the map file's contents until the test ends, each with the size the
// rspamd log (logPath) had right after.
func watchMap(t *testing.T, path, logPath string) *mapWatcher {
	t.Helper()
	k, err := newWaker(filepath.Dir(path), path)
	if err != nil {
		t.Fatalf("watching the map: %v", err)
	}
	w := &mapWatcher{path: path, logPath: logPath, stop: make(chan struct{}), done: make(chan struct{})}
	w.poll(time.Now()) // the state at the start is known before watchMap returns
	go func() {
		defer close(w.done)
		defer k.close()
		for {
			at, ok := k.wait(w.stop, fallbackPoll)
			if !ok {
				return
			}
			w.poll(at)
		}
	}()
	t.Cleanup(func() { close(w.stop); <-w.done })
	return w
}

func (w *mapWatcher) poll(at time.Time) {
	s := mapSnapshot{At: at}
	data, err := os.ReadFile(w.path)
	if fi, err := os.Stat(w.logPath); err == nil {
		s.LogSize = fi.Size()
	}
	if err != nil {
		s.Gone, s.Addrs = true, map[string]bool{}
	} else {
		s.Addrs, s.Bad = parseMap(data)
		if fi, err := os.Stat(w.path); err == nil {
			s.Mode = fi.Mode()
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				s.UID = st.Uid
			}
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if n := len(w.snaps); n > 0 {
		p := w.snaps[n-1]
		if p.Gone == s.Gone && p.Mode == s.Mode && p.String() == s.String() && slices.Equal(p.Bad, s.Bad) {
			return
		}
	}
	w.snaps = append(w.snaps, s)
}

// history returns every content seen so far, oldest first.
func (w *mapWatcher) history() []mapSnapshot {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.snaps)
}

// current returns the latest content seen.
func (w *mapWatcher) current() mapSnapshot {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.snaps[len(w.snaps)-1]
}

// since returns the content in force at time from and every content seen after it.
func (w *mapWatcher) since(from time.Time) []mapSnapshot {
	h := w.history()
	i := sort.Search(len(h), func(i int) bool { return h[i].At.After(from) })
	if i > 0 {
		i--
	}
	return h[i:]
}

// waitUntil waits for a content, in force at or after from, for which cond holds, and
// returns the first such content (its At is when the test first saw it).
func (w *mapWatcher) waitUntil(from time.Time, timeout time.Duration, cond func(mapSnapshot) bool) (mapSnapshot, bool) {
	var found mapSnapshot
	ok := waitFor(func() bool {
		for _, s := range w.since(from) {
			if cond(s) {
				found = s
				return true
			}
		}
		return false
	}, timeout)
	return found, ok
}

// resetMap atomically replaces the map file with an empty one readable by rspamd.
func resetMap(t *testing.T, path string) {
	t.Helper()
	tmp := path + ".e2e-reset"
	if err := os.WriteFile(tmp, nil, 0o644); err != nil {
		t.Fatalf("resetting map file: %v", err)
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		t.Fatalf("resetting map file: %v", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatalf("resetting map file: %v", err)
	}
}

// ---------------------------------------------------------------------------------------------
// The daemon under test

var bin struct {
	once sync.Once
	dir  string
	path string
	took time.Duration
	err  error

	logged bool
}

// repoRoot is the module root (the parent of this package's directory).
func repoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding the repository root: %w", err)
	}
	root := filepath.Dir(wd)
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return "", fmt.Errorf("finding the repository root from %s: %w", wd, err)
	}
	return root, nil
}

// mailjailBinary builds ./cmd/mailjail once per test binary (with -race when the tests run
// with it) and returns its path; MAILJAIL_E2E_BIN names a binary to use instead.
func mailjailBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv(envBinary); p != "" {
		return p
	}
	bin.once.Do(func() {
		root, err := repoRoot()
		if err != nil {
			bin.err = err
			return
		}
		bin.dir, err = os.MkdirTemp("", "mailjail-e2e-bin-")
		if err != nil {
			bin.err = fmt.Errorf("creating a directory for the daemon binary: %w", err)
			return
		}
		bin.path = filepath.Join(bin.dir, "mailjail")
		args := []string{"build"}
		if raceEnabled {
			args = append(args, "-race")
		}
		args = append(args, "-o", bin.path, "./cmd/mailjail")
		start := time.Now()
		// go test puts its own GOROOT/bin first in PATH, so this is the go running the tests.
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		bin.took = time.Since(start)
		if err != nil {
			bin.err = fmt.Errorf("go %s (in %s): %w\n%s", strings.Join(args, " "), root, err, out)
		}
	})
	if bin.err != nil {
		t.Fatalf("building the daemon: %v", bin.err)
	}
	if !bin.logged {
		bin.logged = true
		t.Logf("built %s in %v (race detector: %v)", bin.path, bin.took.Round(time.Millisecond), raceEnabled)
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
	fmt.Fprintf(&b, "map_file = %s\n", strconv.Quote(c.MapFile))
	fmt.Fprintf(&b, "socket   = %s\n", strconv.Quote(c.Socket))
	fmt.Fprintf(&b, "ignoreip = %s\n\n", list(c.IgnoreIP))
	fmt.Fprintf(&b, "[jail.rspamd-ratelimit]\n")
	fmt.Fprintf(&b, "filter   = \"rspamd-ratelimit\"\n")
	fmt.Fprintf(&b, "logpath  = %s\n", list(c.LogPath))
	fmt.Fprintf(&b, "maxretry = %d\n", c.MaxRetry)
	fmt.Fprintf(&b, "findtime = %s\n", strconv.Quote(c.FindTime))
	fmt.Fprintf(&b, "bantime  = %s\n", strconv.Quote(c.BanTime))
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
	cmd := exec.Command(binPath, "run", "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = out, out
	env := slices.DeleteFunc(os.Environ(), func(s string) bool {
		return strings.HasPrefix(s, "NOTIFY_SOCKET=") || strings.HasPrefix(s, "LISTEN_")
	})
	cmd.Env = append(env, "NOTIFY_SOCKET="+sock)
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

// ---------------------------------------------------------------------------------------------
// Latency bookkeeping

// latencyLine formats samples as the greppable summary line of the suite.
func latencyLine(samples []time.Duration) string {
	if len(samples) == 0 {
		return "E2E-LATENCY median=n/a max=n/a n=0"
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	var med time.Duration
	if len(s)%2 == 1 {
		med = s[len(s)/2]
	} else {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	ms := func(d time.Duration) string {
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + "ms"
	}
	return fmt.Sprintf("E2E-LATENCY median=%s max=%s min=%s n=%d", ms(med), ms(s[len(s)-1]), ms(s[0]), len(s))
}

// banLatency measures how long after the ban-triggering log line (the maxretry-th ratelimit
// event of addr at or after since) the map first listed addr. It fails the test if the map
// listed addr when the rspamd log held fewer than maxretry events for it, or never within
// timeout.
func banLatency(t *testing.T, lt *logTailer, mw *mapWatcher, addr string, since time.Time, maxretry int, timeout time.Duration) (time.Duration, mapSnapshot) {
	t.Helper()
	var ev []logLine
	if !waitFor(func() bool { ev = lt.ratelimitEvents(addr, since); return len(ev) >= maxretry }, 5*time.Second) {
		t.Fatalf("client %s: %d ratelimit summary lines in %s, want %d", addr, len(ev), rspamdLogPath, maxretry)
	}
	trigger := ev[maxretry-1]
	snap, ok := mw.waitUntil(since, timeout, func(s mapSnapshot) bool { return s.has(addr) })
	if !ok {
		t.Fatalf("client %s: not in the map %v after its %d. ratelimit event; map now %v",
			addr, timeout, maxretry, mw.current())
	}
	logged := 0
	for _, e := range ev {
		if e.End <= snap.LogSize {
			logged++
		}
	}
	if logged < maxretry {
		t.Fatalf("client %s: banned when the rspamd log held %d of its ratelimit events, want %d (maxretry)",
			addr, logged, maxretry)
	}
	return snap.At.Sub(trigger.At), snap
}
