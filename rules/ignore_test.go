package rules

import (
	"math/rand/v2"
	"net/netip"
	"os"
	"strings"
	"testing"
)

func TestParseIgnoreEntry(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want IgnoreEntry
		err  string
	}{
		{in: "192.0.2.1", want: IgnoreEntry{Prefix: netip.MustParsePrefix("192.0.2.1/32")}},
		{in: " 2001:db8::/64 ", want: IgnoreEntry{Prefix: netip.MustParsePrefix("2001:db8::/64")}},
		{in: "file:/etc/mailjail/gateways", want: IgnoreEntry{File: "/etc/mailjail/gateways"}},
		{in: "MX2.Example.NET.", want: IgnoreEntry{Host: "mx2.example.net"}},
		{in: "localhost", want: IgnoreEntry{Host: "localhost"}},
		{in: "cafe", want: IgnoreEntry{Host: "cafe"}},
		{in: "file:gateways", err: "absolute path"},
		{in: "192.0.2.300", err: "invalid address"},
		{in: "192.0.2.1/24", err: "host bits set"},
		{in: "-bad.example", err: "invalid address"},
		{in: "exa_mple.net", err: "invalid address"},
		{in: "", err: "invalid address"},
		{in: strings.Repeat("a", 64) + ".net", err: "invalid address"},
	} {
		got, err := ParseIgnoreEntry(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseIgnoreList(t *testing.T) {
	f, err := os.Open("testdata/ignore/gateways.list")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := ParseIgnoreList(f, "gateways.list")
	if err != nil {
		t.Fatal(err)
	}
	want := []IgnoreEntry{
		{Prefix: netip.MustParsePrefix("192.0.2.10/32")},
		{Prefix: netip.MustParsePrefix("198.51.100.0/24")},
		{Prefix: netip.MustParsePrefix("2001:db8:1::/48")},
		{Host: "mx2.example.net"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestParseIgnoreListErrorsNameEachLine(t *testing.T) {
	in := "192.0.2.1\n192.0.2.300\n\nfile:/etc/other\n10.0.0.1/8\n"
	got, err := ParseIgnoreList(strings.NewReader(in), "/etc/mailjail/gw")
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"/etc/mailjail/gw:2: invalid address", "/etc/mailjail/gw:4: \"file:/etc/other\": a list file cannot name another file", "/etc/mailjail/gw:5: invalid CIDR"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if len(got) != 1 {
		t.Errorf("good entries kept: %+v", got)
	}
}

func TestNewIgnoreSet(t *testing.T) {
	res := Resolved{
		"file:/etc/gw":    {netip.MustParsePrefix("198.51.100.0/24")},
		"mx2.example.net": {netip.MustParsePrefix("203.0.113.7/32")},
		SelfKey:           {netip.MustParsePrefix("10.1.2.3/32")},
	}
	entries := []string{"192.0.2.1", "file:/etc/gw", "mx2.example.net", "never.example.net"}
	for _, tc := range []struct {
		self bool
		addr string
		want bool
	}{
		{false, "192.0.2.1", true},
		{false, "198.51.100.77", true},
		{false, "203.0.113.7", true},
		{false, "203.0.113.8", false},
		{false, "10.1.2.3", false},
		{true, "10.1.2.3", true},
	} {
		s, err := NewIgnoreSet(entries, res, tc.self)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Contains(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("self=%v %s: %v, want %v", tc.self, tc.addr, got, tc.want)
		}
	}
	if _, err := NewIgnoreSet([]string{"192.0.2.300"}, nil, false); err == nil {
		t.Error("bad entry accepted")
	}
}

// A long set is looked up per prefix length: it must answer exactly as
// the scan of every prefix does.
func TestIPSetIndexAgreesWithScan(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var entries []string
	for range 500 {
		var a [16]byte
		for i := range a {
			a[i] = byte(r.IntN(4)) // few distinct values, so lookups hit
		}
		addr := netip.AddrFrom16(a)
		bits := 96 + r.IntN(33)
		if r.IntN(2) == 0 {
			addr = netip.AddrFrom4([4]byte{a[0], a[1], a[2], a[3]})
			bits = r.IntN(33)
		}
		entries = append(entries, netip.PrefixFrom(addr, bits).Masked().String())
	}
	set, err := NewIPSet(entries)
	if err != nil {
		t.Fatal(err)
	}
	if set.byLen == nil {
		t.Fatal("a long set is not indexed")
	}
	scan := &IPSet{prefixes: set.prefixes}
	for range 20000 {
		var a [16]byte
		for i := range a {
			a[i] = byte(r.IntN(4))
		}
		for _, addr := range []netip.Addr{netip.AddrFrom16(a), netip.AddrFrom4([4]byte{a[0], a[1], a[2], a[3]})} {
			if got, want := set.Contains(addr), scan.Contains(addr); got != want {
				t.Fatalf("%s: indexed %v, scan %v", addr, got, want)
			}
		}
	}
}

func FuzzParseIgnoreList(f *testing.F) {
	f.Add("192.0.2.1\n# c\nmx.example.net # x\n2001:db8::/32\n")
	f.Add("file:/x\n\x00\n")
	f.Fuzz(func(t *testing.T, in string) {
		entries, _ := ParseIgnoreList(strings.NewReader(in), "f")
		for _, e := range entries {
			if e.File != "" || (!e.Prefix.IsValid() && e.Host == "") {
				t.Fatalf("bad entry %+v", e)
			}
		}
	})
}

func BenchmarkIPSetContains(b *testing.B) {
	var entries []string
	for i := range 10000 {
		entries = append(entries, netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}).String()+"/24")
	}
	set, err := NewIPSet(entries)
	if err != nil {
		b.Fatal(err)
	}
	scan := &IPSet{prefixes: set.prefixes}
	a := netip.MustParseAddr("192.0.2.1") // not in the set: the worst case
	b.Run("indexed", func(b *testing.B) {
		for b.Loop() {
			set.Contains(a)
		}
	})
	b.Run("scan", func(b *testing.B) {
		for b.Loop() {
			scan.Contains(a)
		}
	})
}
