package mapfile

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
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

// A jail name is written into a comment, and rspamd ends a line at LF and
// at a lone CR even there: a name holding "\n0.0.0.0/0" must not add an
// entry that bans everyone.
func TestRenderedJailNeverAddsAMapLine(t *testing.T) {
	entries := Normalize([]Entry{
		{Prefix: netip.MustParsePrefix("192.0.2.1/32"), Until: t0, Jail: "x\n0.0.0.0/0 "},
		{Prefix: netip.MustParsePrefix("192.0.2.2/32"), Jail: "y\r::/0"},
		{Prefix: netip.MustParsePrefix("192.0.2.3/32"), Jail: "z\x00\x1b[2J\t# 100%"},
		{Prefix: netip.MustParsePrefix("2001:db8::/64"), Jail: "jail=a jail=b"},
	})
	var buf bytes.Buffer
	if err := Render(&buf, entries, t0); err != nil {
		t.Fatal(err)
	}
	golden(t, "hostile-jails.map", buf.Bytes())
	got, err := ParseEntries(bytes.NewReader(buf.Bytes()), "hostile-jails.map")
	if err != nil {
		t.Fatal(err)
	}
	if back := backToEntries(got); !slices.Equal(back, entries) {
		t.Errorf("parsed back %v, want exactly %v", back, entries)
	}
	model := readLikeRspamd(buf.Bytes())
	var want []netip.Prefix
	for _, e := range entries {
		want = append(want, as128(e.Prefix))
	}
	if model.warned || model.odd || !slices.Equal(prefixSet(model.prefixes), prefixSet(want)) {
		t.Errorf("rspamd would read %v (warned %v), want exactly %v", model.prefixes, model.warned, want)
	}
}

// FuzzRenderRoundTrip: whatever the jail is called, the map holds one line
// per entry, which ParseEntries and rspamd read back as that entry alone.
func FuzzRenderRoundTrip(f *testing.F) {
	f.Add("x\n0.0.0.0/0 ", []byte{192, 0, 2, 1}, 32, int64(1796151273))
	f.Add("rspamd-ratelimit", []byte{0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x42}, 128, int64(0))
	f.Add("\r%0A%", []byte{10, 0, 0, 0}, 8, int64(-1))
	f.Fuzz(func(t *testing.T, jail string, ip []byte, bits int, until int64) {
		a, ok := netip.AddrFromSlice(ip)
		if !ok {
			return
		}
		p := netip.PrefixFrom(a.Unmap(), bits%(a.Unmap().BitLen()+1))
		if !p.IsValid() {
			return
		}
		e := Entry{Prefix: p.Masked(), Jail: jail}
		if until > 0 {
			e.Until = time.Unix(until%253402300799, 0).UTC() // years 1970 to 9999
		}
		var buf bytes.Buffer
		if err := Render(&buf, []Entry{e}, t0); err != nil {
			t.Fatal(err)
		}
		got, err := ParseEntries(bytes.NewReader(buf.Bytes()), "fuzz.map")
		if err != nil {
			t.Fatalf("%v: %v\n%s", e, err, buf.Bytes())
		}
		if len(got.Entries) != 1 || got.Entries[0].Prefix != e.Prefix || len(got.Comments) != 0 {
			t.Fatalf("%v read back as %+v\n%s", e, got, buf.Bytes())
		}
		if g := got.Entries[0]; jail != "" && (!g.Own || g.Jail != jail || !g.Until.Equal(e.Until)) {
			t.Fatalf("%v read back as %+v", e, g)
		}
		model := readLikeRspamd(buf.Bytes())
		if model.warned || model.odd || len(model.prefixes) != 1 || model.prefixes[0] != as128(e.Prefix) {
			t.Fatalf("rspamd reads %+v from\n%s", model, buf.Bytes())
		}
	})
}

// WriteFile is the writer of the other files mailjail owns: it keeps the
// old file's mode, and a failing render leaves the old file as it was.
func TestWriteFileKeepsModeAndOldContentOnRenderError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "table")
	if err := os.WriteFile(path, []byte("old\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	boom := fmt.Errorf("boom")
	err := WriteFile(path, func(w io.Writer) error {
		io.WriteString(w, "half")
		return boom
	})
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("render error: got %v", err)
	}
	if got, _ := os.ReadFile(path); string(got) != "old\n" {
		t.Fatalf("failed write changed the file: %q", got)
	}
	if err := WriteFile(path, func(w io.Writer) error { _, err := io.WriteString(w, "new\n"); return err }); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	fi, _ := os.Stat(path)
	if string(got) != "new\n" || fi.Mode().Perm() != 0o640 {
		t.Fatalf("got %q mode %v, want \"new\\n\" 0640", got, fi.Mode().Perm())
	}
}
