package engine

import (
	"net/netip"
	"slices"
	"time"

	"github.com/mailjail/mailjail/internal/store"
)

// prefixLengths counts bans per prefix length, IPv4 and IPv6 apart, so
// that "is this address covered by a ban" costs one map lookup per length
// in use (a /32, a /24 and a /64 are three) instead of a scan of every
// range ban: with a network rule and ipv6_prefix there can be a hundred
// thousand of them, looked up for every event.
type prefixLengths struct {
	n4   [33]int
	n6   [129]int
	use4 []int // lengths with a count, longest first
	use6 []int
}

// add counts p (delta 1) or uncounts it (delta -1).
func (l *prefixLengths) add(p netip.Prefix, delta int) {
	n, use := l.n6[:], &l.use6
	if p.Addr().Is4() {
		n, use = l.n4[:], &l.use4
	}
	bits := p.Bits()
	before := n[bits]
	n[bits] = max(0, n[bits]+delta)
	if (before == 0) == (n[bits] == 0) {
		return
	}
	// A length comes into use or goes out of it: rare, so the list is
	// rebuilt rather than kept in place.
	*use = (*use)[:0]
	for b := len(n) - 1; b >= 0; b-- {
		if n[b] > 0 {
			*use = append(*use, b)
		}
	}
}

// of is the lengths in use for a's family, longest first.
func (l *prefixLengths) of(a netip.Addr) []int {
	if a.Is4() {
		return l.use4
	}
	return l.use6
}

func (l *prefixLengths) reset() { *l = prefixLengths{use4: l.use4[:0], use6: l.use6[:0]} }

// bannedIn reports whether a is covered, at now, by an active or staged
// ban of jail or of a jail whose bans cover every jail (coverAll). A
// jail's own ban covering a is the ban working (rspamd keeps answering
// 451 while its bucket is full), not new misbehaviour; the same address
// failing elsewhere (SASL failures in Postfix's log) still counts there.
// A would-be ban of a log-only jail is in neither index: nothing was
// banned, and its own jail's policy marks the key.
func (e *Engine) bannedIn(jail string, a netip.Addr, now time.Time) bool {
	a = a.Unmap()
	if e.stagedIn(jail, a) {
		return true
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, bits := range e.lengths.of(a) {
		p := netip.PrefixFrom(a, bits).Masked()
		if b, ok := e.bans[banKey{jail, p}]; ok && !b.LogOnly && activeAt(b, now) {
			return true
		}
		for _, c := range e.coverAll {
			if b, ok := e.bans[banKey{c, p}]; ok && !b.LogOnly && activeAt(b, now) {
				return true
			}
		}
	}
	return false
}

// stagedIn is bannedIn for the bans of the pending batch: they are seen by
// the later lines of the batch before the database (and the map) has them.
func (e *Engine) stagedIn(jail string, a netip.Addr) bool {
	for _, bits := range e.stagedLengths.of(a) {
		p := netip.PrefixFrom(a, bits).Masked()
		if _, ok := e.staged[banKey{jail, p}]; ok {
			return true
		}
		for _, c := range e.coverAll {
			if _, ok := e.staged[banKey{c, p}]; ok {
				return true
			}
		}
	}
	return false
}

// hasBan reports whether jail holds an active or staged ban of exactly p.
func (e *Engine) hasBan(jail string, p netip.Prefix, now time.Time) bool {
	k := banKey{jail, p}
	if e.isStaged(k) {
		return true
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	b, ok := e.bans[k]
	return ok && activeAt(b, now)
}

func activeAt(b store.Ban, now time.Time) bool { return b.Until.IsZero() || b.Until.After(now) }

// stageBan adds j's ban decision b (of a, in b.Prefix) to the pending
// batch: flagged when the jail is log-only, else seen at once by the later
// lines of the batch (bannedIn; the targets see it only after Commit) and
// counted by the circuit breaker; then it is counted in the recidive and
// network jails.
func (e *Engine) stageBan(j *Jail, a netip.Addr, b store.Ban) {
	b.LogOnly = j.Cfg.LogOnly()
	e.pending.bans = append(e.pending.bans, b)
	if !b.LogOnly {
		if k := (banKey{b.Jail, b.Prefix}); !e.isStaged(k) {
			e.staged[k] = struct{}{}
			e.stagedLengths.add(b.Prefix, 1)
		}
		e.breakerCount(len(e.pending.bans)-1, b.Since)
	}
	e.countOnBans(b)
}

func (e *Engine) isStaged(k banKey) bool {
	_, ok := e.staged[k]
	return ok
}

// index counts the cached ban b in the lengths bannedIn reads, unindex
// undoes it; e.mu is held. A would-be ban is not counted.
func (e *Engine) index(b store.Ban) {
	if !b.LogOnly {
		e.lengths.add(b.Prefix, 1)
	}
}

func (e *Engine) unindex(b store.Ban) {
	if !b.LogOnly {
		e.lengths.add(b.Prefix, -1)
	}
}

// clearStaged forgets the staged bans once they are committed (and so
// active) or dropped.
func (e *Engine) clearStaged() {
	clear(e.staged)
	e.stagedLengths.reset()
}

// coverAllJails names the jails whose bans cover every jail: manual bans
// (the operator said "out") and the bans of the jails that judge
// mailjail's own history (recidive, network), decided from other jails'
// bans, so that the address's events anywhere are that ban working.
func coverAllJails(jails []*Jail) []string {
	out := []string{ManualJail}
	for _, j := range jails {
		if j.Cfg.OnBans() && !slices.Contains(out, j.Cfg.Name) {
			out = append(out, j.Cfg.Name)
		}
	}
	return out
}
