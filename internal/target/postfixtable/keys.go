package postfixtable

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// MaxKeysPerPrefix bounds the expansion of one prefix that is not aligned
// to what a hash table can look up (octets for IPv4, 16-bit groups for
// IPv6). IPv4 never needs more than 128 keys (a /25 or a /17); an IPv6 /52
// needs 4,096 /64 keys, a /50 would need 16,384: such a ban belongs in a
// cidr table, and Keys says so rather than write a table of a million lines.
const MaxKeysPerPrefix = 4096

// Keys returns the keys of a Postfix hash (or any other exact-match)
// access table that make check_client_access match the clients in p.
//
// Postfix looks a client address up as smtpd formats it and then
// truncated at its last '.' (IPv4) or ':' (IPv6), again and again
// (smtpd_check.c, check_addr_access): 198.51.100.7, 198.51.100, 198.51,
// 198. So a single address is its own key, an octet-aligned prefix is its
// leading octets (198.51.100.0/24 is "198.51.100"), and another prefix is
// expanded into the aligned ones it covers (a /20 into 16 /24 keys).
//
// IPv6 is formatted by getnameinfo (glibc inet_ntop: lower case, no leading
// zeros, the longest run of two or more zero groups, the first on a tie,
// written "::"), both for a real peer and for XCLIENT (normalize_mailhost_addr).
// A group-aligned prefix whose leading groups are never written with "::"
// is its groups: 2001:db8:1:2::/64 is "2001:db8:1:2", which matches
// 2001:db8:1:2:3:4:5:6 and 2001:db8:1:2::6 alike. Where the "::" of a client
// in p can start inside the prefix, the truncation depends on the client:
// 2001:db8::/64 needs "2001:db8:0:0" (for 2001:db8:0:0:1::, whose longest
// zero run is later) and "2001:db8:" (the truncation of "2001:db8::1:2:3:4",
// which holds exactly the addresses compressed from their third group on).
// Keys works these out by trying every pattern of zero and non-zero groups
// after the prefix. When the "::" can start two or more groups before the
// prefix ends (2001:0:0:5::/64 is written "2001::5:..."), no key matches
// exactly the prefix: "2001::5" also matches 2001::5:6:7 (2001:0:0:0:0:5:6:7).
// Keys then returns an error naming the prefix; a cidr table holds it.
//
// A single IPv6 address written with "::" before its last group
// (2001:db8:1:2::5) is its own key, and that key is also a truncation of the
// longer forms that begin with it (2001:db8:1:2::5:6, i.e. 2001:db8:1:2:0:0:5:6):
// a hash table cannot match one such address alone. Keys accepts it when
// the run starts at the third group or later, which keeps every address
// that also matches inside the banned address's /64 (the prefix the daemon
// bans for IPv6 clients anyway); an address compressed earlier
// (2001::5) is an error. Addresses in ::/80 (IPv4-compatible and
// IPv4-mapped forms, which smtpd writes dotted or as IPv4) are an error
// too; an IPv4-mapped prefix is taken as the IPv4 prefix it maps.
func Keys(p netip.Prefix) ([]string, error) {
	if !p.IsValid() {
		return nil, fmt.Errorf("invalid prefix %v", p)
	}
	p = p.Masked()
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	if p.Addr().Is4() {
		return keys4(p)
	}
	return keys6(p)
}

// expansion is how many prefixes of the aligned length al cover one of
// bits, or an error when that is more than MaxKeysPerPrefix.
func expansion(p netip.Prefix, al int) (int, error) {
	if al-p.Bits() > 12 { // 1<<12 == MaxKeysPerPrefix
		return 0, fmt.Errorf("%v: a hash table needs %d keys of /%d for it (more than %d); use a cidr table",
			p, 1<<(al-p.Bits()), al, MaxKeysPerPrefix)
	}
	return 1 << (al - p.Bits()), nil
}

// roundUp is bits rounded up to a multiple of step, and at least step:
// Postfix never looks up an empty key, so /0 is expanded to /8 or /16.
func roundUp(bits, step int) int {
	return max(step, (bits+step-1)/step*step)
}

func keys4(p netip.Prefix) ([]string, error) {
	al := roundUp(p.Bits(), 8)
	n, err := expansion(p, al)
	if err != nil {
		return nil, err
	}
	base := p.Addr().As4()
	v := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
	out := make([]string, 0, n)
	buf := make([]byte, 0, 16)
	for i := range n {
		w := v + uint32(i)<<(32-al)
		buf = buf[:0]
		for o := range al / 8 {
			if o > 0 {
				buf = append(buf, '.')
			}
			buf = strconv.AppendUint(buf, uint64(byte(w>>(24-8*o))), 10)
		}
		out = append(out, string(buf))
	}
	return out, nil
}

func keys6(p netip.Prefix) ([]string, error) {
	al := roundUp(p.Bits(), 16)
	n, err := expansion(p, al)
	if err != nil {
		return nil, err
	}
	base := groups(p.Addr())
	out := make([]string, 0, n)
	for i := range n {
		g := base
		// al-p.Bits() <= 12 < 16: the prefixes differ in the low bits
		// of the last group of the aligned length, which are zero in p.
		g[al/16-1] += uint16(i)
		ks, err := alignedKeys6(g, al/16)
		if err != nil {
			return nil, fmt.Errorf("%v: %w", p, err)
		}
		out = append(out, ks...)
	}
	return out, nil
}

// alignedKeys6 is the keys of the prefix made of the first n groups of g
// (the rest of g is zero).
func alignedKeys6(g [8]uint16, n int) ([]string, error) {
	if zero(g[:min(n, 5)]) {
		return nil, fmt.Errorf("inside or around ::/80 (IPv4-compatible and -mapped forms), which smtpd does not look up as groups")
	}
	if n == 8 {
		s, l := bestRun(g)
		if l > 0 && s+l < 8 && s < 2 {
			f := format6(g, s, l)
			return nil, fmt.Errorf("written %s: a hash key for it also matches the addresses written %s:..., "+
				"outside its /64; use a cidr table", f, f)
		}
		return []string{format6(g, s, l)}, nil
	}
	// Which keys the clients of the prefix need depends only on which of
	// their later groups are zero: try every pattern.
	var plain, compressed [8]bool // plain[0]: the uncompressed key; compressed[s]: the "::"-at-s key
	for mask := range 1 << (8 - n) {
		h := g
		for j := n; j < 8; j++ {
			h[j] = uint16(mask >> (j - n) & 1)
		}
		s, l := bestRun(h)
		switch {
		case l == 0 || s >= n:
			plain[0] = true
		case s >= n-2:
			compressed[s] = true
		default:
			return nil, fmt.Errorf("some of its addresses are written with \"::\" from group %d on (%s), "+
				"and no key matches just this prefix; use a cidr table", s+1, format6(h, s, l))
		}
	}
	var out []string
	if plain[0] {
		out = append(out, join6(g[:n]))
	}
	for s, ok := range compressed {
		if ok {
			// The truncation of "head::rest" at its last ':' before the
			// run: "head:" matches exactly the addresses written "head::...".
			out = append(out, join6(g[:s])+":")
		}
	}
	return out, nil
}

func groups(a netip.Addr) [8]uint16 {
	b := a.As16()
	var g [8]uint16
	for i := range g {
		g[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
	}
	return g
}

func zero(g []uint16) bool {
	for _, v := range g {
		if v != 0 {
			return false
		}
	}
	return true
}

// bestRun is the run of zero groups that inet_ntop writes as "::": the
// longest of two or more, the first of equally long ones; l is 0 if none.
func bestRun(g [8]uint16) (s, l int) {
	cs, cl := 0, 0
	for i, v := range g {
		if v != 0 {
			cl = 0
			continue
		}
		if cl == 0 {
			cs = i
		}
		cl++
		if cl > l {
			s, l = cs, cl
		}
	}
	if l < 2 {
		return 0, 0
	}
	return s, l
}

// format6 writes g as inet_ntop does, with the run (s, l) as "::".
func format6(g [8]uint16, s, l int) string {
	if l == 0 {
		return join6(g[:])
	}
	return join6(g[:s]) + "::" + join6(g[s+l:])
}

func join6(g []uint16) string {
	var b strings.Builder
	for i, v := range g {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(strconv.FormatUint(uint64(v), 16))
	}
	return b.String()
}
