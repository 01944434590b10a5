package engine

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/store"
)

// indexEngine is an engine holding only bans, for the lookup.
func indexEngine(bans ...store.Ban) *Engine {
	e := &Engine{cfg: &config.Config{}, bans: map[banKey]store.Ban{}, staged: map[banKey]struct{}{}, coverAll: []string{ManualJail, "net"}}
	e.put(bans...)
	return e
}

func ban(jail, p string, until time.Time) store.Ban {
	return store.Ban{Jail: jail, Prefix: netip.MustParsePrefix(p), Until: until}
}

func TestBannedInByPrefixLength(t *testing.T) {
	later := t0.Add(time.Hour)
	e := indexEngine(ban("a", "198.51.100.0/24", later), ban("b", "203.0.113.7/32", later), ban("net", "192.0.2.0/24", later),
		ban(ManualJail, "2001:db8::/64", time.Time{}), ban("a", "2001:db8:1::/48", later), ban("a", "198.18.0.0/16", t0))
	tests := []struct {
		jail, addr string
		want       bool
	}{
		{"a", "198.51.100.9", true},        // a's /24
		{"b", "198.51.100.9", false},       // a's ban does not cover b
		{"b", "203.0.113.7", true},         // b's own address
		{"a", "203.0.113.7", false},        // b's address, in a
		{"a", "203.0.113.8", false},        // next to it
		{"b", "192.0.2.1", true},           // a network ban covers every jail
		{"b", "2001:db8::5", true},         // a manual ban covers every jail
		{"a", "2001:db8:1:ff::1", true},    // a's /48
		{"a", "2001:db8:2::1", false},      // outside
		{"a", "198.18.1.1", false},         // a's /16 ended at t0
		{"a", "::ffff:198.51.100.9", true}, // mapped: the IPv4 address
	}
	for _, tt := range tests {
		if got := e.bannedIn(tt.jail, netip.MustParseAddr(tt.addr), t0.Add(time.Minute)); got != tt.want {
			t.Errorf("bannedIn(%s, %s) = %v, want %v", tt.jail, tt.addr, got, tt.want)
		}
	}
	if got := e.lengths.of(netip.MustParseAddr("192.0.2.1")); !slices.Equal(got, []int{32, 24, 16}) {
		t.Errorf("IPv4 lengths in use %v, want [32 24 16]", got)
	}
	e.del(ban("a", "198.51.100.0/24", later), ban("net", "192.0.2.0/24", later), ban("a", "198.18.0.0/16", t0))
	if got := e.lengths.of(netip.MustParseAddr("192.0.2.1")); !slices.Equal(got, []int{32}) || e.bannedIn("a", netip.MustParseAddr("198.51.100.9"), t0) {
		t.Errorf("after the unbans: lengths %v, 198.51.100.9 still banned %v", got, e.bannedIn("a", netip.MustParseAddr("198.51.100.9"), t0))
	}
	e.stageBan(&Jail{Cfg: &config.Jail{Name: "c"}}, netip.MustParseAddr("198.51.100.1"), ban("c", "198.51.100.0/24", later))
	if !e.bannedIn("c", netip.MustParseAddr("198.51.100.200"), t0) || e.bannedIn("a", netip.MustParseAddr("198.51.100.200"), t0) {
		t.Error("a staged /24 is not seen by its own jail only")
	}
	e.clearStaged()
	if e.bannedIn("c", netip.MustParseAddr("198.51.100.200"), t0) {
		t.Error("a cleared staged ban still covers")
	}
}

// scanBannedAt is the lookup bannedIn replaced, kept as the benchmark's
// peer: every range ban scanned for each event.
func scanBannedAt(byAddr map[netip.Addr]int, ranges map[banKey]store.Ban, a netip.Addr, now time.Time) bool {
	if byAddr[a] > 0 {
		return true
	}
	for k, b := range ranges {
		if k.prefix.Contains(a) && (b.Until.IsZero() || b.Until.After(now)) {
			return true
		}
	}
	return false
}

// BenchmarkBannedIn looks addresses up among 100,000 prefix bans (half
// /24, half /64) and 50,000 single addresses, in jails a and net (a
// network jail), by prefix length (bannedIn) and by the scan it replaced.
// Half the addresses looked up are covered.
func BenchmarkBannedIn(b *testing.B) {
	until := t0.Add(time.Hour)
	var bans []store.Ban
	var probes []netip.Addr
	for i := range 50_000 {
		v4 := netip.AddrFrom4([4]byte{10 + byte(i>>16), byte(i >> 8), byte(i), 0})
		v6 := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 16), byte(i >> 8), byte(i)})
		host := netip.AddrFrom4([4]byte{100, byte(i >> 16), byte(i >> 8), byte(i)})
		jail := []string{"a", "net"}[i%2]
		bans = append(bans, store.Ban{Jail: jail, Prefix: netip.PrefixFrom(v4, 24), Until: until},
			store.Ban{Jail: jail, Prefix: netip.PrefixFrom(v6, 64), Until: until},
			store.Ban{Jail: "a", Prefix: netip.PrefixFrom(host, 32), Until: until})
		if i%1000 == 0 {
			in4, in6 := v4.As4(), v6.As16()
			in4[3], in6[15] = 77, 77
			out4 := netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)})
			probes = append(probes, netip.AddrFrom4(in4), netip.AddrFrom16(in6), out4, netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb9, byte(i)}))
		}
	}
	e := indexEngine(bans...)
	byAddr, ranges := map[netip.Addr]int{}, map[banKey]store.Ban{}
	for _, bn := range bans {
		if bn.Prefix.IsSingleIP() {
			byAddr[bn.Prefix.Addr()]++
		} else {
			ranges[banKey{bn.Jail, bn.Prefix}] = bn
		}
	}
	b.Run("by-length", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			e.bannedIn("a", probes[i%len(probes)], t0)
		}
	})
	b.Run("scan", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			scanBannedAt(byAddr, ranges, probes[i%len(probes)], t0)
		}
	})
}
