package watcher

import (
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// Globs are re-expanded as files appear, and a file reachable through two
// patterns (or a symlink) is read once.
func TestGlobsReadEachFileOnce(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")
	fa, fb := appendFile(t, a), appendFile(t, b)
	if err := os.Symlink(a, filepath.Join(dir, "link.log")); err != nil {
		t.Fatal(err)
	}
	h := startFollow(t, []string{filepath.Join(dir, "*.log"), a, a}, nil, testOptions(newFakeClock()))
	wa, wb, wc := newLogWriter(9, "a"), newLogWriter(10, "b"), newLogWriter(11, "c")

	wa.write(t, fa, 500)
	wb.write(t, fb, 500)
	fc := appendFile(t, filepath.Join(dir, "c.log")) // appears later: read from 0
	wc.write(t, fc, 500)
	wa.write(t, fa, 500)
	fa.Close()
	fb.Close()
	fc.Close()
	want := append(append(wa.lines(), wb.lines()...), wc.lines()...)
	h.drain(t, len(want))
	got := h.c.snapshot()
	sort.Strings(want)
	sort.Strings(got)
	sameLines(t, want, got)
	h.c.mu.Lock()
	sameLines(t, wa.lines(), h.c.byPath[a]) // per path, in order
	h.c.mu.Unlock()
	if n := len(h.Stats().Files); n != 4 {
		t.Errorf("followed %d paths, want 4 (a, b, c, link)", n)
	}
}

func TestBadPattern(t *testing.T) {
	if _, err := Follow(t.Context(), []string{"/tmp/[x"}, nil, Options{}); err == nil {
		t.Fatal("want error for a malformed pattern")
	}
	if _, err := Follow(t.Context(), nil, nil, Options{}); err == nil {
		t.Fatal("want error for no paths")
	}
}
