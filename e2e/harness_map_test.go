package e2e

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

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

// startMapDaemon starts a daemon on cfg (its state in dir) that writes the real map, from an
// empty map and empty ratelimit buckets, and watches the map; when the test ends the daemon is
// stopped and the map emptied. It returns the daemon, the watcher and the configuration's path.
func startMapDaemon(t *testing.T, dir string, cfg daemonConfig) (*daemon, *mapWatcher, string) {
	t.Helper()
	cfgPath := writeConfig(t, dir, cfg)
	flushRatelimit(t)
	resetMap(t, cfg.MapFile)
	mw := watchMap(t, cfg.MapFile, rspamdLogPath)
	d := startDaemon(t, dir, cfgPath, 1)
	t.Cleanup(func() {
		d.stop()
		resetMap(t, cfg.MapFile)
	})
	return d, mw, cfgPath
}
