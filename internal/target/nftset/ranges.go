package nftset

import (
	"cmp"
	"container/heap"
	"math"
	"net/netip"
	"slices"
	"time"

	"github.com/mailjail/mailjail/internal/store"
)

// Range is one element of an interval set: the addresses First..Last
// (inclusive, one family) and how long the kernel keeps them.
type Range struct {
	First, Last netip.Addr
	// Timeout is the element's timeout, a whole number of milliseconds;
	// zero means permanent (no timeout in a set without a default one).
	Timeout time.Duration
}

// permanent is the sweep's value of a ban without end: it beats any finite
// remaining time.
const permanent = math.MaxInt64

// Ranges turns the bans into the elements of the IPv4 and IPv6 interval
// sets. The kernel refuses overlapping intervals ("interval overlaps"),
// and bans overlap (a /64 and an address in it, the same prefix from two
// jails, manual CIDRs), so the bans are cut into elementary ranges, each
// with the longest remaining ban that covers it (remaining = Until - at,
// rounded up to the millisecond; a permanent ban beats every finite one).
// Bans already over at at are skipped. Adjacent ranges with the same
// timeout are merged, so the union of a prefix's halves is one element.
// Both results are sorted, disjoint and never adjacent with equal timeouts.
func Ranges(bans []store.Ban, at time.Time) (v4, v6 []Range) {
	var in4, in6 []span
	for _, b := range bans {
		p := b.Prefix
		if !p.IsValid() {
			continue
		}
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			// An IPv4 client seen through a dual-stack socket: the
			// kernel matches it as IPv4.
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		p = p.Masked()
		ms := int64(permanent)
		if !b.Permanent() {
			left := b.Until.Sub(at)
			if left <= 0 {
				continue
			}
			ms = min(ceilMS(left), maxMS)
		}
		s := span{first: p.Addr(), last: lastOf(p), ms: ms}
		if s.first.Is4() {
			in4 = append(in4, s)
		} else {
			in6 = append(in6, s)
		}
	}
	return sweep(in4), sweep(in6)
}

// maxMS is the longest timeout a Duration holds in whole milliseconds
// (292 years; the kernel takes up to 584).
const maxMS = int64(math.MaxInt64 / time.Millisecond)

// ceilMS is d in milliseconds, rounded up, so the kernel never lets a
// ban go before the database does.
func ceilMS(d time.Duration) int64 {
	ms := int64(d / time.Millisecond)
	if d%time.Millisecond != 0 {
		ms++
	}
	return ms
}

// span is a ban as a range with its remaining time in milliseconds.
type span struct {
	first, last netip.Addr
	ms          int64
}

// lastOf is the highest address of p.
func lastOf(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// sweep cuts spans of one family into disjoint ranges. Between two
// consecutive boundaries (a span's first address, or the address after a
// span's last) the covering spans do not change, so each such piece gets
// the longest of them: the top of a max-heap from which spans that ended
// before the piece are dropped lazily.
func sweep(spans []span) []Range {
	if len(spans) == 0 {
		return nil
	}
	slices.SortFunc(spans, func(a, b span) int { return a.first.Compare(b.first) })
	points := make([]netip.Addr, 0, 2*len(spans))
	for _, s := range spans {
		points = append(points, s.first)
		if n := s.last.Next(); n.IsValid() { // none after the top address
			points = append(points, n)
		}
	}
	slices.SortFunc(points, netip.Addr.Compare)
	points = slices.Compact(points)

	var out []Range
	var h spanHeap
	next := 0 // spans[next:] have not started yet
	for i, p := range points {
		for next < len(spans) && spans[next].first == p {
			heap.Push(&h, spans[next])
			next++
		}
		for len(h) > 0 && h[0].last.Less(p) {
			heap.Pop(&h)
		}
		if len(h) == 0 {
			continue // a gap between bans
		}
		// Spans that still cover p all end at or after the next point
		// (their end is a point), so the piece ends there, or with them
		// at the top of the address space.
		last := h[0].last
		if i+1 < len(points) {
			last = points[i+1].Prev()
		}
		r := Range{First: p, Last: last}
		if ms := h[0].ms; ms != permanent {
			r.Timeout = time.Duration(ms) * time.Millisecond
		}
		if n := len(out); n > 0 && out[n-1].Timeout == r.Timeout && out[n-1].Last.Next() == r.First {
			out[n-1].Last = r.Last
			continue
		}
		out = append(out, r)
	}
	return out
}

// spanHeap is a max-heap of spans by remaining time.
type spanHeap []span

func (h spanHeap) Len() int           { return len(h) }
func (h spanHeap) Less(i, j int) bool { return cmp.Compare(h[i].ms, h[j].ms) > 0 }
func (h spanHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *spanHeap) Push(x any)        { *h = append(*h, x.(span)) }
func (h *spanHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
