package mapfile

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

var t0 = time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "render", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n%s\nwant:\n%s", name, got, want)
	}
}

func TestRender(t *testing.T) {
	entries := []Entry{
		{Prefix: netip.MustParsePrefix("2001:db8::42/128"), Until: t0.Add(time.Hour), Jail: "rspamd-ratelimit"},
		{Prefix: netip.MustParsePrefix("198.51.100.23/32"), Until: t0.Add(time.Hour), Jail: "rspamd-ratelimit"},
		{Prefix: netip.MustParsePrefix("198.51.100.23/32"), Until: t0.Add(3 * time.Hour), Jail: "postfix-sasl"},
		{Prefix: netip.MustParsePrefix("198.18.0.0/15"), Jail: "manual"},
		{Prefix: netip.MustParsePrefix("2001:db8:1::/48"), Jail: "imported"},
		{Prefix: netip.MustParsePrefix("192.0.2.9/32"), Until: t0.Add(time.Minute), Jail: "a"},
		{Prefix: netip.MustParsePrefix("192.0.2.9/32"), Jail: "b"},
	}
	var buf bytes.Buffer
	if err := Render(&buf, Normalize(entries), t0); err != nil {
		t.Fatal(err)
	}
	golden(t, "mixed.map", buf.Bytes())
	back, err := Parse(bytes.NewReader(buf.Bytes()), "mixed.map")
	if err != nil || len(back) != 5 {
		t.Fatalf("parse back: %v %v", back, err)
	}
}

func TestRenderEmpty(t *testing.T) {
	var buf bytes.Buffer
	if err := Render(&buf, nil, t0); err != nil {
		t.Fatal(err)
	}
	golden(t, "empty.map", buf.Bytes())
}

func TestParse(t *testing.T) {
	good := "# old fail2ban map\n\n192.0.2.50\n198.51.100.0/24 # spammer\n  2001:db8:1::/64\n::ffff:203.0.113.5\n"
	got, err := Parse(strings.NewReader(good), "old.map")
	if err != nil {
		t.Fatal(err)
	}
	want := "192.0.2.50/32 198.51.100.0/24 2001:db8:1::/64 203.0.113.5/32"
	if s := fmt.Sprint(got); s != "["+want+"]" {
		t.Errorf("got %v", s)
	}
	for in, wantErr := range map[string]string{
		"192.0.2.1\nexample.com\n":   "old.map:2: entry: invalid address",
		"192.0.2.1 value\n":          `old.map:1: entry "192.0.2.1 value": expected one`,
		"\n\n198.51.100.1/24\n":      "old.map:3: entry: invalid CIDR",
		"192.0.2.1\n300.0.0.1 # x\n": "old.map:2:",
	} {
		if _, err := Parse(strings.NewReader(in), "old.map"); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("%q: err = %v, want %q", in, err, wantErr)
		}
	}
}

// Readers that open the map while it is rewritten many times must always
// see a whole file: the header, a count, and exactly that many entries.
func TestWriteIsAtomicForConcurrentReaders(t *testing.T) {
	path := filepath.Join(t.TempDir(), "maps", "ip.map")
	if err := Write(path, nil, t0); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var reads atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				f, err := os.Open(path)
				if err != nil {
					errs <- err
					return
				}
				data, err := io.ReadAll(f)
				f.Close()
				if err != nil {
					errs <- err
					return
				}
				if err := checkWhole(data); err != nil {
					errs <- err
					return
				}
				reads.Add(1)
			}
		}()
	}
	for i := range 200 {
		entries := make([]Entry, (i*37)%500)
		for k := range entries {
			entries[k] = Entry{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(k >> 8), byte(k), 1}), 32), Until: t0, Jail: "j"}
		}
		if err := Write(path, entries, t0); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if reads.Load() == 0 {
		t.Fatal("readers never read")
	}
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o644 {
		t.Fatalf("mode = %v, %v", info.Mode(), err)
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*"))
	if len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

func checkWhole(data []byte) error {
	if !bytes.HasPrefix(data, []byte(Header)) {
		return fmt.Errorf("map without header: %q", data)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	var n int
	if _, err := fmt.Sscanf(lines[2], "# %d entries", &n); err != nil {
		return fmt.Errorf("count line %q: %v", lines[2], err)
	}
	if got := len(lines) - 3; got != n {
		return fmt.Errorf("map says %d entries, has %d", n, got)
	}
	return nil
}

func TestWriteFailureKeepsOldMap(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ip.map")
	one := []Entry{{Prefix: netip.MustParsePrefix("192.0.2.1/32"), Jail: "j"}}
	if err := Write(path, one, t0); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	if os.Getuid() == 0 {
		t.Skip("root ignores directory permissions")
	}
	os.Chmod(dir, 0o555)
	defer os.Chmod(dir, 0o755)
	if err := Write(path, nil, t0); err == nil {
		t.Fatal("write into read-only dir succeeded")
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Fatal("failed write changed the map")
	}
}

func BenchmarkRender100k(b *testing.B) {
	entries := make([]Entry, 100_000)
	for i := range entries {
		entries[i] = Entry{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32), Until: t0, Jail: "rspamd-ratelimit"}
	}
	for b.Loop() {
		Render(io.Discard, Normalize(entries), t0)
	}
}

func BenchmarkWrite100k(b *testing.B) {
	entries := make([]Entry, 100_000)
	for i := range entries {
		entries[i] = Entry{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32), Until: t0, Jail: "rspamd-ratelimit"}
	}
	path := filepath.Join(b.TempDir(), "ip.map")
	for b.Loop() {
		if err := Write(path, entries, t0); err != nil {
			b.Fatal(err)
		}
	}
}
