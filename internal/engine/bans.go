package engine

import (
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
			e.unindex(old)
		}
		e.bans[k] = b
		e.index(b)
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
		e.unindex(old)
		delete(e.bans, k)
	}
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
