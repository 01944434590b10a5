package engine

import (
	"net/netip"

	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/rules"
)

// A jail in mode = "log-only" makes would-be bans: recorded with
// store.Ban.LogOnly, alerted and listed, but given to no target
// (enforce.Given) and running no action. A would-be ban still counts as
// "banned in this jail" for its length, through the jail's policy (which
// marks the key), so one misbehaving address is one would-be ban; it does
// not stop other jails, which may ban the address for real.

// stageBan adds a jail's ban decision on a to the pending batch: flagged
// when the jail is log-only, else seen by the later lines of the batch
// before Commit (the map must not see it until it is in the database;
// other addresses of a banned IPv6 prefix are stopped by the policy,
// which marks the key) and counted by the circuit breaker.
func (e *Engine) stageBan(j *Jail, a netip.Addr, b store.Ban) {
	b.LogOnly = j.Cfg.LogOnly()
	e.pending.bans = append(e.pending.bans, b)
	if b.LogOnly {
		return
	}
	e.staged[a] = struct{}{}
	e.breakerCount(len(e.pending.bans)-1, b.Since)
}

// restoreWouldBans marks the active would-be bans of jails that are still
// log-only as bans in their jail's policy: nothing else stops the jail
// from counting the address again after a restart. A jail that now bans
// for real may ban the address at once; its would-be ban stays recorded
// until it ends.
func (e *Engine) restoreWouldBans(bans []store.Ban) {
	for _, b := range bans {
		if j := e.jail(b.Jail); b.LogOnly && j != nil && j.Cfg.LogOnly() {
			j.Policy.MarkActive(rules.KeyOf(j.key(b.Prefix.Addr())), b.Until)
		}
	}
}

// wouldSuspension reports whether s, an active suspension, is another
// jail's would-be suspension, which does not stop j counting the account;
// e.mu is held.
func (e *Engine) wouldSuspension(j *Jail, s store.Suspension) bool {
	if s.Enforced || s.Jail == j.Cfg.Name {
		return false
	}
	other := e.jail(s.Jail)
	return other != nil && other.Cfg.LogOnly()
}
