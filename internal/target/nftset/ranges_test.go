package nftset

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/store"
)

var at = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// ban is a ban of prefix p ending after d (0: permanent).
func ban(p string, d time.Duration) store.Ban {
	b := store.Ban{Jail: "j", Prefix: netip.MustParsePrefix(p).Masked()}
	if d != 0 {
		b.Until = at.Add(d)
	}
	return b
}

// rng is the Range first..last with timeout d.
func rng(first, last string, d time.Duration) Range {
	return Range{First: netip.MustParseAddr(first), Last: netip.MustParseAddr(last), Timeout: d}
}

func TestRanges(t *testing.T) {
	const h = time.Hour
	tests := []struct {
		name   string
		bans   []store.Ban
		v4, v6 []Range
	}{
		{name: "none"},
		{name: "one address", bans: []store.Ban{ban("192.0.2.5/32", h)},
			v4: []Range{rng("192.0.2.5", "192.0.2.5", h)}},
		{name: "address inside a longer prefix ban is absorbed",
			bans: []store.Ban{ban("192.0.2.0/24", 2*h), ban("192.0.2.5/32", h)},
			v4:   []Range{rng("192.0.2.0", "192.0.2.255", 2*h)}},
		{name: "address outliving its prefix splits it in three",
			bans: []store.Ban{ban("192.0.2.0/24", h), ban("192.0.2.5/32", 2*h)},
			v4: []Range{rng("192.0.2.0", "192.0.2.4", h), rng("192.0.2.5", "192.0.2.5", 2*h),
				rng("192.0.2.6", "192.0.2.255", h)}},
		{name: "permanent beats any finite ban",
			bans: []store.Ban{ban("192.0.2.0/24", 1000*h), ban("192.0.2.0/25", 0)},
			v4:   []Range{rng("192.0.2.0", "192.0.2.127", 0), rng("192.0.2.128", "192.0.2.255", 1000*h)}},
		{name: "same prefix from two jails: the longer",
			bans: []store.Ban{ban("198.51.100.0/24", h), ban("198.51.100.0/24", 3*h)},
			v4:   []Range{rng("198.51.100.0", "198.51.100.255", 3*h)}},
		{name: "adjacent halves with one expiry merge",
			bans: []store.Ban{ban("10.0.0.0/25", h), ban("10.0.0.128/25", h)},
			v4:   []Range{rng("10.0.0.0", "10.0.0.255", h)}},
		{name: "adjacent halves with two expiries stay apart",
			bans: []store.Ban{ban("10.0.0.0/25", h), ban("10.0.0.128/25", 2*h)},
			v4:   []Range{rng("10.0.0.0", "10.0.0.127", h), rng("10.0.0.128", "10.0.0.255", 2*h)}},
		{name: "gap between bans",
			bans: []store.Ban{ban("10.0.0.1/32", h), ban("10.0.0.3/32", h)},
			v4:   []Range{rng("10.0.0.1", "10.0.0.1", h), rng("10.0.0.3", "10.0.0.3", h)}},
		{name: "over and expired bans are skipped",
			bans: []store.Ban{ban("10.0.0.1/32", -time.Second), {Prefix: netip.MustParsePrefix("10.0.0.2/32"), Until: at}},
		},
		{name: "remaining time is rounded up to the millisecond",
			bans: []store.Ban{ban("10.0.0.1/32", time.Nanosecond), ban("10.0.0.2/32", 1500*time.Microsecond)},
			v4: []Range{rng("10.0.0.1", "10.0.0.1", time.Millisecond),
				rng("10.0.0.2", "10.0.0.2", 2*time.Millisecond)}},
		{name: "top of the IPv4 space",
			bans: []store.Ban{ban("255.255.255.0/24", h), ban("255.255.255.255/32", 2*h)},
			v4: []Range{rng("255.255.255.0", "255.255.255.254", h),
				rng("255.255.255.255", "255.255.255.255", 2*h)}},
		{name: "whole IPv4 space", bans: []store.Ban{ban("0.0.0.0/0", 0), ban("1.2.3.4/32", h)},
			v4: []Range{rng("0.0.0.0", "255.255.255.255", 0)}},
		{name: "IPv6 /64 and an address in it",
			bans: []store.Ban{ban("2001:db8:1:2::/64", h), ban("2001:db8:1:2::7/128", 2*h)},
			v6: []Range{rng("2001:db8:1:2::", "2001:db8:1:2::6", h), rng("2001:db8:1:2::7", "2001:db8:1:2::7", 2*h),
				rng("2001:db8:1:2::8", "2001:db8:1:2:ffff:ffff:ffff:ffff", h)}},
		{name: "top of the IPv6 space", bans: []store.Ban{ban("ffff::/16", 0)},
			v6: []Range{rng("ffff::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 0)}},
		{name: "families apart; an IPv4-mapped ban is IPv4",
			bans: []store.Ban{ban("::ffff:192.0.2.9/128", h), ban("2001:db8::1/128", h)},
			v4:   []Range{rng("192.0.2.9", "192.0.2.9", h)},
			v6:   []Range{rng("2001:db8::1", "2001:db8::1", h)}},
		{name: "invalid prefix is skipped", bans: []store.Ban{{Jail: "j"}}},
		{name: "far future is capped, not overflowed",
			bans: []store.Ban{{Prefix: netip.MustParsePrefix("10.9.9.9/32"), Until: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)}},
			v4:   []Range{rng("10.9.9.9", "10.9.9.9", time.Duration(maxMS)*time.Millisecond)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v4, v6 := Ranges(tt.bans, at)
			if !slices.Equal(v4, tt.v4) {
				t.Errorf("v4:\n got %v\nwant %v", v4, tt.v4)
			}
			if !slices.Equal(v6, tt.v6) {
				t.Errorf("v6:\n got %v\nwant %v", v6, tt.v6)
			}
		})
	}
}

// fuzzBases are the blocks the fuzzer bans in: low and at the top of each
// family's space, where "the address after the last" does not exist.
var fuzzBases = [4]netip.Addr{
	netip.MustParseAddr("10.0.0.0"), netip.MustParseAddr("255.255.255.0"),
	netip.MustParseAddr("2001:db8::"), netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff00"),
}

// FuzzRanges checks Ranges against a brute force over the 256 addresses
// of each block: every address gets the longest remaining ban covering
// it, and the ranges are sorted, disjoint and merged.
func FuzzRanges(f *testing.F) {
	f.Add([]byte{0, 5, 8, 100, 0, 0, 0, 50})
	f.Add([]byte{1, 255, 8, 0, 1, 0, 0, 40, 3, 7, 3, 200})
	f.Add([]byte{2, 0, 1, 33, 2, 128, 8, 34, 2, 129, 8, 33})
	f.Fuzz(func(t *testing.T, data []byte) {
		var bans []store.Ban
		for len(data) >= 4 {
			base := fuzzBases[data[0]%4]
			bits := base.BitLen() - int(data[2]%9)
			off := base.As16()
			off[15] = data[1]
			a := netip.AddrFrom16(off)
			if base.Is4() {
				a = a.Unmap()
			}
			b := store.Ban{Prefix: netip.PrefixFrom(a, bits).Masked()}
			if data[3] != 0 {
				// Negative, zero, sub-millisecond and whole remaining times.
				b.Until = at.Add(time.Duration(int(data[3])-32) * 777_777)
			}
			bans = append(bans, b)
			data = data[4:]
		}
		v4, v6 := Ranges(bans, at)
		for _, rs := range [][]Range{v4, v6} {
			for i, r := range rs {
				if r.Last.Less(r.First) || r.First.Is4() != r.Last.Is4() {
					t.Fatalf("range %d %v is not a range", i, r)
				}
				if r.Timeout < 0 || r.Timeout%time.Millisecond != 0 {
					t.Fatalf("range %d %v: timeout not whole ms", i, r)
				}
				if i > 0 {
					p := rs[i-1]
					if !p.Last.Less(r.First) {
						t.Fatalf("ranges %v and %v overlap or are unsorted", p, r)
					}
					if p.Last.Next() == r.First && p.Timeout == r.Timeout {
						t.Fatalf("ranges %v and %v should have merged", p, r)
					}
				}
			}
		}
		for _, base := range fuzzBases {
			rs := v6
			if base.Is4() {
				rs = v4
			}
			a := base
			for range 256 {
				want, covered := bruteTimeout(bans, a)
				got, in := find(rs, a)
				if covered != in || got != want {
					t.Fatalf("%v: got (%v, %v), want (%v, %v); ranges %v; bans %v", a, got, in, want, covered, rs, bans)
				}
				a = a.Next()
			}
		}
	})
}

// bruteTimeout is the longest remaining ban covering a, by definition.
func bruteTimeout(bans []store.Ban, a netip.Addr) (time.Duration, bool) {
	var best time.Duration
	covered := false
	for _, b := range bans {
		if !b.Prefix.Contains(a) {
			continue
		}
		if b.Permanent() {
			return 0, true
		}
		left := b.Until.Sub(at)
		if left <= 0 {
			continue
		}
		d := time.Duration(ceilMS(left)) * time.Millisecond
		best, covered = max(best, d), true
	}
	return best, covered
}

// find is the timeout of the range holding a.
func find(rs []Range, a netip.Addr) (time.Duration, bool) {
	for _, r := range rs {
		if !a.Less(r.First) && !r.Last.Less(a) {
			return r.Timeout, true
		}
	}
	return 0, false
}

func (r Range) String() string { return fmt.Sprintf("%v..%v/%v", r.First, r.Last, r.Timeout) }
