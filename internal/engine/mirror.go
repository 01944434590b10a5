package engine

import (
	"context"
	"net/netip"
	"time"

	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/rules"
)

// Lift is an unban another cluster node made: the ban of Jail and Prefix
// made at or before At ends.
type Lift struct {
	Jail   string
	Prefix netip.Prefix
	At     time.Time
	By     string // who lifted it there
	Node   string // where
}

// LiftedByCluster prefixes the lifted_by of a ban lifted because another
// node lifted it ("cluster:NODE:BY"): such lifts are that node's to
// share, not this one's.
const LiftedByCluster = "cluster:"

// Mirror applies, in one transaction, bans and unbans that other cluster
// nodes made: a ban becomes a local ban of its jail and prefix with its
// node as Origin (replacing an older local one of the same key); an unban
// lifts the local ban it is newer than. A ban that has ended, or of an
// address this node's ignoreip holds, is skipped: the local ignore list
// wins over any peer's.
func (e *Engine) Mirror(ctx context.Context, bans []store.Ban, lifts []Lift, now time.Time) (Change, error) {
	var add []store.Ban
	for _, b := range bans {
		if !b.Until.IsZero() && !b.Until.After(now) || e.ignoreOf(b.Jail).Overlaps(b.Prefix) {
			continue
		}
		if cur, ok := e.activeBan(b.Jail, b.Prefix); ok && !cur.Since.Before(b.Since) {
			continue
		}
		add = append(add, b)
	}
	var lift []Lift
	for _, l := range lifts {
		if cur, ok := e.activeBan(l.Jail, l.Prefix); ok && !cur.Since.After(l.At) {
			lift = append(lift, l)
		}
	}
	if len(add) == 0 && len(lift) == 0 {
		return Change{}, nil
	}
	ch, err := e.update(ctx, now, func(tx *store.Tx) (ch Change, err error) {
		for i := range add {
			if add[i].ID, err = tx.AddBan(add[i]); err != nil {
				return ch, err
			}
		}
		for _, l := range lift {
			lifted, err := tx.LiftBans(l.Prefix, l.Jail, l.At, LiftedByCluster+l.Node+":"+l.By)
			if err != nil {
				return ch, err
			}
			ch.Lifted = append(ch.Lifted, lifted...)
		}
		ch.Bans = add
		return ch, nil
	})
	if err != nil {
		return Change{}, err
	}
	e.put(ch.Bans...)
	for _, b := range ch.Bans {
		// As if banned here: the jail ignores the address's events
		// meanwhile, and the ban counts for escalation.
		if j := e.jail(b.Jail); j != nil && j.acct == nil {
			j.Policy.MarkBanned(rules.KeyOf(b.Prefix.Addr()), b.Since, b.Until)
		}
	}
	e.forget(ch.Lifted)
	return ch, nil
}

// activeBan is the active ban of jail and p, from memory.
func (e *Engine) activeBan(jail string, p netip.Prefix) (store.Ban, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	b, ok := e.bans[banKey{jail, p}]
	return b, ok
}
