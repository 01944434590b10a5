package engine

import (
	"context"
	"net/netip"
	"time"

	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/rules"
)

// Mirrored is what other cluster nodes changed, for Mirror.
type Mirrored struct {
	Bans        []store.Ban
	Lifts       []Lift
	Suspensions []store.Suspension
	Releases    []Release
}

// Lift is an unban another cluster node made: the ban of Jail and Prefix
// made at or before At ends.
type Lift struct {
	Jail   string
	Prefix netip.Prefix
	At     time.Time
	By     string // who lifted it there
	Node   string // where
}

// Release is a release another cluster node made: the suspension of
// Account in Jail made at or before At ends.
type Release struct {
	Jail, Account string
	At            time.Time
	By, Node      string
}

// LiftedByCluster prefixes the lifted_by of a ban or suspension lifted
// because another node lifted it ("cluster:NODE:BY"): such lifts are
// that node's to share, not this one's.
const LiftedByCluster = "cluster:"

// Mirror applies, in one transaction, what other cluster nodes did: a ban
// or suspension becomes a local one of the same jail and key with its
// node as Origin (replacing an older local one of the same key); an unban
// or release lifts the local one it is newer than. One that has ended is
// skipped, and so is a ban of an address this node's ignoreip holds or a
// suspension of an account its allow list holds: the local lists win
// over any peer's.
func (e *Engine) Mirror(ctx context.Context, m Mirrored, now time.Time) (Change, error) {
	bans := keep(m.Bans, func(b store.Ban) bool {
		cur, ok := e.activeBan(b.Jail, b.Prefix)
		return !ended(b.Until, now) && !e.ignoreOf(b.Jail).Overlaps(b.Prefix) && (!ok || cur.Since.Before(b.Since))
	})
	lifts := keep(m.Lifts, func(l Lift) bool {
		cur, ok := e.activeBan(l.Jail, l.Prefix)
		return ok && !cur.Since.After(l.At)
	})
	susps := keep(m.Suspensions, func(s store.Suspension) bool {
		cur, ok := e.activeSuspension(s.Jail, s.Account)
		return !ended(s.Until, now) && !e.allow.Contains(s.Account) && (!ok || cur.Since.Before(s.Since))
	})
	rels := keep(m.Releases, func(r Release) bool {
		cur, ok := e.activeSuspension(r.Jail, r.Account)
		return ok && !cur.Since.After(r.At)
	})
	if len(bans)+len(lifts)+len(susps)+len(rels) == 0 {
		return Change{}, nil
	}
	ch, err := e.update(ctx, now, func(tx *store.Tx) (ch Change, err error) {
		for i := range bans {
			if bans[i].ID, err = tx.AddBan(bans[i]); err != nil {
				return ch, err
			}
		}
		for _, l := range lifts {
			lifted, err := tx.LiftBans(l.Prefix, l.Jail, l.At, LiftedByCluster+l.Node+":"+l.By)
			if err != nil {
				return ch, err
			}
			ch.Lifted = append(ch.Lifted, lifted...)
		}
		for i := range susps {
			if susps[i].ID, err = tx.AddSuspension(susps[i]); err != nil {
				return ch, err
			}
		}
		for _, r := range rels {
			released, err := tx.LiftSuspensions(r.Account, r.Jail, r.At, LiftedByCluster+r.Node+":"+r.By)
			if err != nil {
				return ch, err
			}
			ch.Released = append(ch.Released, released...)
		}
		ch.Bans, ch.Suspended = bans, susps
		return ch, nil
	})
	if err != nil {
		return Change{}, err
	}
	e.committed(ch)
	for _, b := range ch.Bans {
		// As if banned here: the jail ignores the address's events
		// meanwhile, and the ban counts for escalation.
		if j := e.jail(b.Jail); j != nil && j.acct == nil {
			j.Policy.MarkBanned(rules.KeyOf(b.Prefix.Addr()), b.Since, b.Until)
		}
	}
	for _, s := range ch.Suspended {
		if j := e.jail(s.Jail); j != nil && j.acct != nil {
			j.acct.policy.MarkBanned(s.Account, s.Since, s.Until)
		}
	}
	e.forget(ch.Lifted)
	e.forgetSuspensions(ch.Released)
	return ch, nil
}

func ended(until, now time.Time) bool { return !until.IsZero() && !until.After(now) }

// keep returns the items of xs that ok accepts, in a new slice.
func keep[T any](xs []T, ok func(T) bool) []T {
	var out []T
	for _, x := range xs {
		if ok(x) {
			out = append(out, x)
		}
	}
	return out
}

// activeBan is the active ban of jail and p, from memory.
func (e *Engine) activeBan(jail string, p netip.Prefix) (store.Ban, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	b, ok := e.bans[banKey{jail, p}]
	return b, ok
}

// activeSuspension is the active suspension of account in jail, from
// memory.
func (e *Engine) activeSuspension(jail, account string) (store.Suspension, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.susp[suspKey{jail, account}]
	return s, ok
}

// committed puts a committed change's bans and suspensions in the cache
// and the shared escalation histories.
func (e *Engine) committed(ch Change) {
	e.put(ch.Bans...)
	e.putSuspensions(ch.Suspended...)
	e.recordShared(ch.Bans, ch.Suspended)
}
