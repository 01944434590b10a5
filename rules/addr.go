package rules

import (
	"fmt"
	"net/netip"
	"strings"
)

// ParseAddr parses a client address as it appears in a log or on the
// command line and normalises it so that one client is one key: IPv4-mapped
// IPv6 (::ffff:192.0.2.1) becomes plain IPv4, IPv6 is zero-compressed by
// netip, and zones are dropped (a zone is local to the host that logged it).
func ParseAddr(s string) (netip.Addr, error) {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "IPv6:"), "IPV6:")
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("invalid address %q", s)
	}
	return a.WithZone("").Unmap(), nil
}

// ParsePrefix parses an address or CIDR ("192.0.2.1", "198.51.100.0/24",
// "2001:db8::/64"). A CIDR must not have host bits set: "192.0.2.1/24" is
// almost always a typo, and banning a different range than the operator
// wrote would be worse than refusing it.
func ParsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid address or CIDR %q", s)
	}
	if p.Addr().Is4In6() {
		bits := p.Bits() - 96
		if bits < 0 {
			return netip.Prefix{}, fmt.Errorf("invalid CIDR %q: mapped IPv4 prefix shorter than /96", s)
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), bits)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("invalid CIDR %q: host bits set (did you mean %s?)", s, p.Masked())
	}
	return p, nil
}

// HostPrefix is the single-address prefix of a (/32 or /128).
func HostPrefix(a netip.Addr) netip.Prefix {
	return netip.PrefixFrom(a, a.BitLen())
}

// FormatPrefix writes a single-address prefix as a bare address, the form
// operators and rspamd's map both expect, and a range as CIDR.
func FormatPrefix(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// IPSet is a set of prefixes, used for ignoreip. Most lists are a
// handful of gateways and networks, scanned in order; a long one (a file
// of entries) is looked up per prefix length instead, so a lookup costs
// the number of distinct lengths, not of entries.
type IPSet struct {
	prefixes []netip.Prefix
	byLen    map[netip.Prefix]struct{} // set when the list is long
	lens     []int                     // distinct lengths in byLen, IPv4 as 0-32, IPv6 as 33+bits
}

// indexFrom is the length from which a set is looked up by prefix length.
const indexFrom = 16

// NewIPSet parses each entry with ParsePrefix. The error names the entry.
func NewIPSet(entries []string) (*IPSet, error) {
	s := &IPSet{}
	for _, e := range entries {
		p, err := ParsePrefix(strings.TrimSpace(e))
		if err != nil {
			return nil, err
		}
		s.prefixes = append(s.prefixes, p)
	}
	s.index()
	return s, nil
}

// index builds the per-length lookup of a long set.
func (s *IPSet) index() {
	if len(s.prefixes) < indexFrom {
		return
	}
	s.byLen = make(map[netip.Prefix]struct{}, len(s.prefixes))
	seen := map[int]bool{}
	for _, p := range s.prefixes {
		s.byLen[p.Masked()] = struct{}{}
		l := p.Bits()
		if p.Addr().Is6() {
			l += 33
		}
		if !seen[l] {
			seen[l] = true
			s.lens = append(s.lens, l)
		}
	}
}

// Contains reports whether a is inside any prefix of the set.
func (s *IPSet) Contains(a netip.Addr) bool {
	if s == nil {
		return false
	}
	a = a.Unmap()
	if s.byLen != nil {
		for _, l := range s.lens {
			if a.Is6() != (l > 32) {
				continue
			}
			if l > 32 {
				l -= 33
			}
			if _, ok := s.byLen[netip.PrefixFrom(a, l).Masked()]; ok {
				return true
			}
		}
		return false
	}
	for _, p := range s.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Overlaps reports whether any address of p is in the set, so that a
// manual ban of a range that covers an ignored gateway can be refused.
func (s *IPSet) Overlaps(p netip.Prefix) bool {
	if s == nil {
		return false
	}
	for _, q := range s.prefixes {
		if q.Overlaps(p) {
			return true
		}
	}
	return false
}

// Prefixes returns the set's prefixes, for display.
func (s *IPSet) Prefixes() []netip.Prefix {
	if s == nil {
		return nil
	}
	return append([]netip.Prefix(nil), s.prefixes...)
}
