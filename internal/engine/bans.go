package engine

import (
	"net/netip"
	"time"

	"github.com/mailjail/mailjail/internal/store"
)

// put records active bans (replacing one of the same jail and prefix).
func (e *Engine) put(bans ...store.Ban) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, b := range bans {
		k := banKey{b.Jail, b.Prefix}
		if old, ok := e.bans[k]; ok {
			e.unindex(k, old)
		}
		e.bans[k] = b
		e.index(k, b)
		if !b.Until.IsZero() && (e.next.IsZero() || b.Until.Before(e.next)) {
			e.next = b.Until
		}
	}
}

// del forgets active bans.
func (e *Engine) del(bans ...store.Ban) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, b := range bans {
		k := banKey{b.Jail, b.Prefix}
		old, ok := e.bans[k]
		if !ok {
			continue
		}
		if !old.Until.IsZero() && !old.Until.After(e.next) {
			e.nextStale = true
		}
		e.unindex(k, old)
		delete(e.bans, k)
	}
}

// index puts the cached ban b of k into the address and range indexes
// that bannedAt reads; e.mu is held. A would-be ban is in neither: it
// stops only its own jail, whose policy marks the key.
func (e *Engine) index(k banKey, b store.Ban) {
	switch {
	case b.LogOnly:
	case b.Prefix.IsSingleIP():
		e.byAddr[b.Prefix.Addr()]++
	default:
		e.ranges[k] = b
	}
}

// unindex undoes index; e.mu is held.
func (e *Engine) unindex(k banKey, b store.Ban) {
	delete(e.ranges, k)
	if a := b.Prefix.Addr(); b.Prefix.IsSingleIP() && !b.LogOnly {
		if e.byAddr[a]--; e.byAddr[a] <= 0 {
			delete(e.byAddr, a)
		}
	}
}

// bannedAt reports whether a is covered by an active or staged ban at
// now. A banned client's further events are the ban working, not new
// strikes. Single addresses are a map lookup; ranges (manual, few) a scan.
func (e *Engine) bannedAt(a netip.Addr, now time.Time) bool {
	if _, ok := e.staged[a]; ok {
		return true
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.byAddr[a] > 0 {
		return true
	}
	for k, b := range e.ranges {
		if k.prefix.Contains(a) && (b.Until.IsZero() || b.Until.After(now)) {
			return true
		}
	}
	return false
}

// ActiveBans returns the active bans from memory.
func (e *Engine) ActiveBans() []store.Ban {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]store.Ban, 0, len(e.bans))
	for _, b := range e.bans {
		out = append(out, b)
	}
	return out
}

// NextExpiry is the earliest end of an active ban or suspension, or zero.
func (e *Engine) NextExpiry() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	if s := e.nextSuspensionEnd(); !s.IsZero() {
		if b := e.nextBanEnd(); !b.IsZero() && b.Before(s) {
			return b
		}
		return s
	}
	return e.nextBanEnd()
}

// nextBanEnd is the earliest end of an active ban, or zero; e.mu is held.
func (e *Engine) nextBanEnd() time.Time {
	if e.nextStale {
		e.nextStale = false
		e.next = time.Time{}
		for _, b := range e.bans {
			if !b.Until.IsZero() && (e.next.IsZero() || b.Until.Before(e.next)) {
				e.next = b.Until
			}
		}
	}
	return e.next
}
