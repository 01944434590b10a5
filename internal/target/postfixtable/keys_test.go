package postfixtable

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestKeys(t *testing.T) {
	seq := func(format string, from, to int) []string {
		var out []string
		for i := from; i <= to; i++ {
			out = append(out, fmt.Sprintf(format, i))
		}
		return out
	}
	tests := []struct {
		prefix string
		want   []string
		err    string // substring of the error; "" for none
	}{
		{prefix: "198.51.100.7/32", want: []string{"198.51.100.7"}},
		{prefix: "198.51.100.0/24", want: []string{"198.51.100"}},
		{prefix: "198.51.0.0/16", want: []string{"198.51"}},
		{prefix: "10.0.0.0/8", want: []string{"10"}},
		{prefix: "198.51.96.0/20", want: seq("198.51.%d", 96, 111)},
		{prefix: "198.51.100.128/25", want: seq("198.51.100.%d", 128, 255)},
		{prefix: "198.51.100.6/31", want: []string{"198.51.100.6", "198.51.100.7"}},
		{prefix: "0.0.0.0/0", want: seq("%d", 0, 255)},
		{prefix: "::ffff:198.51.100.7/128", want: []string{"198.51.100.7"}},
		{prefix: "::ffff:198.51.100.0/120", want: []string{"198.51.100"}},

		// A /64 whose groups are all non-zero: never compressed before its end.
		{prefix: "2001:db8:1:2::/64", want: []string{"2001:db8:1:2"}},
		{prefix: "2001:db8::/32", want: []string{"2001:db8"}},
		// Zero groups at the end of the prefix: "2001:db8:0:0:1::" and "2001:db8::1:2:3:4".
		{prefix: "2001:db8::/64", want: []string{"2001:db8:0:0", "2001:db8:"}},
		{prefix: "2001:db8:1::/64", want: []string{"2001:db8:1:0", "2001:db8:1:"}},
		{prefix: "2001:db8::/48", want: []string{"2001:db8:0", "2001:db8:"}},
		{prefix: "2001:db8:100::/40", want: seq("2001:db8:%x", 0x100, 0x1ff)},
		{prefix: "2001:db8:1:2::/63", want: []string{"2001:db8:1:2", "2001:db8:1:3"}},
		// "2001::5:1:2:3:4" is 2001:0:0:5:1:2:3:4, but "2001::5" also matches 2001:0:0:0:0:5:x:y.
		{prefix: "2001:0:0:5::/64", err: `written with "::" from group 2 on`},
		{prefix: "2001:db8::/80", err: `written with "::" from group 3 on`},
		{prefix: "2001:db8::/33", err: "needs 32768 keys of /48"},

		{prefix: "2001:db8:1:2:3:4:5:6/128", want: []string{"2001:db8:1:2:3:4:5:6"}},
		{prefix: "2001:db8:1:2::5/128", want: []string{"2001:db8:1:2::5"}},
		{prefix: "2001:db8::5/128", want: []string{"2001:db8::5"}},
		{prefix: "2001:db8:1:2::/128", want: []string{"2001:db8:1:2::"}},
		{prefix: "2001::5/128", err: "outside its /64"},
		{prefix: "::1/128", err: "::/80"},
		{prefix: "::/0", err: "more than 4096"},
		{prefix: "::/16", err: "::/80"},
	}
	for _, tc := range tests {
		t.Run(tc.prefix, func(t *testing.T) {
			got, err := Keys(netip.MustParsePrefix(tc.prefix))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Keys = %q, %v; want error containing %q", got, err, tc.err)
				}
				if !strings.Contains(err.Error(), tc.prefix) && !strings.Contains(err.Error(), "written") {
					t.Errorf("error %q does not name the prefix", err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("Keys = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// lookups is what smtpd looks up for a client address it formatted as s
// (smtpd_check.c, check_addr_access): s, then s cut at its last delimiter,
// again, until there is none left (split_at_right).
func lookups(s string) []string {
	delim := "."
	if strings.Contains(s, ":") {
		delim = ":"
	}
	out := []string{s}
	for {
		i := strings.LastIndex(s, delim)
		if i < 0 {
			return out
		}
		s = s[:i]
		out = append(out, s)
	}
}

// smtpdForm is how smtpd writes a client address; ok is false for the
// ::/80 forms it writes otherwise (dotted, or as IPv4).
func smtpdForm(a netip.Addr) (string, bool) {
	if a.Is4() {
		return a.String(), true
	}
	g := groups(a)
	if zero(g[:5]) {
		return "", false
	}
	s, l := bestRun(g)
	return format6(g, s, l), true
}

func matches(keys []string, a netip.Addr) bool {
	form, _ := smtpdForm(a)
	for _, l := range lookups(form) {
		if slices.Contains(keys, l) {
			return true
		}
	}
	return false
}

// TestKeysMatchWithRealFormsOfSmtpd checks, with the lookups smtpd makes,
// that the keys of each prefix match the clients inside it and none
// outside, on addresses chosen at the edges of the zero runs.
func TestKeysMatchWithRealFormsOfSmtpd(t *testing.T) {
	for _, tc := range []struct {
		prefix string
		in     []string
		out    []string
	}{
		{"2001:db8::/64", []string{"2001:db8::1", "2001:db8::1:2:3:4", "2001:db8:0:0:1::", "2001:db8::"},
			[]string{"2001:db8:0:1::1", "2001:db8:0:5:1:2:3:4", "2001:db8:1::"}},
		{"2001:db8:1:2::/64", []string{"2001:db8:1:2::", "2001:db8:1:2:3:4:5:6", "2001:db8:1:2::6"},
			[]string{"2001:db8:1:3::", "2001:db8:1:20::1"}},
		{"198.51.96.0/20", []string{"198.51.96.1", "198.51.111.255"}, []string{"198.51.112.0", "198.51.95.255", "198.51.9.1"}},
		{"198.51.100.7/32", []string{"198.51.100.7"}, []string{"198.51.100.70", "198.51.100.8"}},
	} {
		p := netip.MustParsePrefix(tc.prefix)
		keys, err := Keys(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range tc.in {
			if !matches(keys, netip.MustParseAddr(a)) {
				t.Errorf("%s (keys %q): %s not matched", p, keys, a)
			}
		}
		for _, a := range tc.out {
			if matches(keys, netip.MustParseAddr(a)) {
				t.Errorf("%s (keys %q): %s matched", p, keys, a)
			}
		}
	}
}

// FuzzKeys: for any prefix Keys accepts, smtpd's lookups of a client
// inside it hit one of its keys, and of a client outside hit none, but for
// the documented case of a compressed single address (the other addresses
// matched are in its /64). Also: the formatter is inet_ntop's (Go's netip
// writes the same form outside ::/80).
func FuzzKeys(f *testing.F) {
	for _, s := range []struct {
		addr  string
		bits  uint8
		probe string
	}{
		{"198.51.100.0", 20, "0.0.15.1"}, {"2001:db8::", 64, "::1"}, {"2001:db8:1::", 56, "0:0:0:ff:0:1::"},
		{"2001:db8::5", 128, "::5:0"}, {"2001:db8:1:2::", 62, "::3:0:0:0:0"}, {"10.0.0.0", 7, "1.0.0.0"},
	} {
		a := netip.MustParseAddr(s.addr)
		f.Add(a.AsSlice(), s.bits, netip.MustParseAddr(s.probe).AsSlice())
	}
	f.Fuzz(func(t *testing.T, addr []byte, bits uint8, probe []byte) {
		a, ok := netip.AddrFromSlice(addr)
		if !ok || int(bits) > a.BitLen() || len(probe) != len(addr) {
			return
		}
		p := netip.PrefixFrom(a, int(bits)).Masked()
		keys, err := Keys(p)
		if err != nil {
			return
		}
		if len(keys) > MaxKeysPerPrefix*2 {
			t.Fatalf("%s: %d keys", p, len(keys))
		}
		pa := p.Addr().AsSlice()
		near := make([]byte, len(pa))
		inside := make([]byte, len(pa))
		for i := range pa {
			near[i] = pa[i] ^ probe[i]
			// inside: p's network bits, probe's host bits
			netBits := min(max(p.Bits()-8*i, 0), 8)
			m := byte(0xff << (8 - netBits))
			inside[i] = pa[i]&m | probe[i]&^m
		}
		for _, q := range [][]byte{near, inside} {
			c, _ := netip.AddrFromSlice(q)
			if p.Addr().Is4In6() {
				continue // smtpd looks such a client up as IPv4
			}
			form, ok := smtpdForm(c)
			if !ok {
				continue
			}
			if c.Is6() && form != c.String() {
				t.Fatalf("format of %s: %q, netip writes %q", c, form, c.String())
			}
			got, want := matches(keys, c), p.Contains(c)
			if got == want {
				continue
			}
			if got && roundUp(p.Bits(), 16) == 128 && c.Is6() &&
				netip.PrefixFrom(p.Addr(), 64).Masked().Contains(c) {
				continue // documented: a compressed single address also matches longer forms in its /64
			}
			t.Fatalf("%s (keys %q): client %s (%s) matched=%v, inside=%v", p, keys, c, form, got, want)
		}
	})
}

// TestKeysOverEveryZeroPattern tries every prefix and client made of
// groups 0 and 1 (after a first group 2001 or 2002, outside ::/80): where
// "::" falls is all that decides how smtpd's lookups are cut, so these are
// all the cases the hash keys of IPv6 prefixes must get right.
func TestKeysOverEveryZeroPattern(t *testing.T) {
	addr := func(first uint16, bits int) netip.Addr {
		var b [16]byte
		b[0], b[1] = byte(first>>8), byte(first)
		for i := 1; i < 8; i++ {
			b[2*i+1] = byte(bits >> (i - 1) & 1)
		}
		return netip.AddrFrom16(b)
	}
	var clients []netip.Addr
	for first := uint16(0x2001); first <= 0x2002; first++ {
		for bits := range 1 << 7 {
			clients = append(clients, addr(first, bits))
		}
	}
	accepted, refused := 0, 0
	for n := 1; n <= 8; n++ {
		for bits := range 1 << (n - 1) {
			p := netip.PrefixFrom(addr(0x2001, bits), 16*n).Masked()
			keys, err := Keys(p)
			if err != nil {
				refused++
				continue
			}
			accepted++
			for _, c := range clients {
				got, want := matches(keys, c), p.Contains(c)
				if got != want && !(got && n == 8 && netip.PrefixFrom(p.Addr(), 64).Masked().Contains(c)) {
					t.Errorf("%s (keys %q): client %s matched=%v, inside=%v", p, keys, c, got, want)
				}
			}
		}
	}
	t.Logf("%d prefixes accepted, %d refused", accepted, refused)
}
