package engine

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/rules"
)

// Two kinds of jail read no log but mailjail's own bans (config's
// reserved filter names). Each ban a log jail stages is an event for them
// at the ban's time, in the same batch, so that what they decide commits
// with the ban that caused it:
//
//   - recidive counts the bans of one address (or range) in any jail and,
//     at maxretry of them inside findtime, bans it for bantime (fail2ban's
//     recidive, without reading a log);
//   - network counts the distinct addresses banned in one network
//     (ipv4_prefix, ipv6_prefix) and, at maxretry inside findtime, bans the
//     network, never one that holds an address of its ignoreip.
//
// Bans that count are those of the jails that read logs (rate and account
// jails included): not manual ones (the operator chose their length) nor
// entries taken over from an existing map (not decided here), not
// those of recidive and network jails (decided from bans already counted),
// not the would-be bans of a jail in mode = "log-only" (nothing was
// banned). An unban by hand takes the address's bans out of the count.

// networkState is a network jail's window: per network, the banned
// addresses (or narrower prefixes) inside it and when each was banned.
type networkState struct {
	members map[netip.Prefix]map[netip.Prefix]time.Time
}

// countOnBans counts b, just staged, in the recidive and network
// jails, when it is a ban they count.
func (e *Engine) countOnBans(b store.Ban) {
	if !e.countsOnBans(b) {
		return
	}
	for _, h := range e.jails {
		switch {
		case h.Cfg.Recidive():
			e.recidiveStrike(h, b, b.Since)
		case h.Cfg.Network():
			e.networkStrike(h, b, b.Since)
		}
	}
}

// countsOnBans reports whether b is one that recidive and network
// jails count.
func (e *Engine) countsOnBans(b store.Ban) bool {
	// Offense 0: not decided by a jail's policy (manual, or an entry
	// taken over from an existing map, which keeps its jail's name). A
	// ban mirrored from another cluster node is counted by that node's
	// recidive and network jails, whose bans are mirrored in turn.
	if b.Jail == ManualJail || b.LogOnly || b.Offense == 0 || b.Origin != "" {
		return false
	}
	jc := e.cfg.Jail(b.Jail)
	return jc == nil || !jc.OnBans()
}

// recidiveStrike counts b in the recidive jail h.
func (e *Engine) recidiveStrike(h *Jail, b store.Ban, now time.Time) {
	if h.ignore.Overlaps(b.Prefix) {
		e.stats.Ignored++
		return
	}
	if e.bannedIn(h.Cfg.Name, b.Prefix.Addr(), now) {
		return
	}
	d := h.Policy.Strike(rules.KeyOf(b.Prefix.Addr()), b.Since, now)
	if !d.Counted {
		return
	}
	e.stats.Strikes++
	h.counters.Strikes++
	if !d.Ban {
		return
	}
	reason := fmt.Sprintf("%d %s in %s, the latest in jail %s", d.Count, plural(d.Count, "ban", "bans"), config.FormatDuration(h.Cfg.FindTime), b.Jail)
	e.stats.Bans++
	e.stageBan(h, b.Prefix.Addr(), derivedBan(h, b.Prefix, d, reason, now))
}

// networkStrike counts b in the network jail h: its network holds one
// more banned address.
func (e *Engine) networkStrike(h *Jail, b store.Ban, now time.Time) {
	n, ok := h.network(b.Prefix)
	if !ok || e.hasBan(h.Cfg.Name, n, now) {
		return
	}
	count := h.net.add(n, b.Prefix, b.Since, now.Add(-h.Cfg.FindTime))
	e.stats.Strikes++
	h.counters.Strikes++
	if count < h.Cfg.MaxRetry {
		return
	}
	if h.ignore.Overlaps(n) {
		e.stats.Ignored++
		return
	}
	delete(h.net.members, n)
	d := h.Policy.Ban(rules.KeyOf(n.Addr()), now, count)
	reason := fmt.Sprintf("%d addresses of %s banned in %s, the latest by jail %s", count, rules.FormatPrefix(n), config.FormatDuration(h.Cfg.FindTime), b.Jail)
	e.stats.Bans++
	e.stageBan(h, n.Addr(), derivedBan(h, n, d, reason, now))
}

// derivedBan is the ban a recidive or network jail decided.
func derivedBan(h *Jail, p netip.Prefix, d rules.Decision, reason string, now time.Time) store.Ban {
	if d.Offense > 1 {
		reason += fmt.Sprintf(", offense %d", d.Offense)
	}
	return store.Ban{Jail: h.Cfg.Name, Prefix: p, Since: now, Until: d.Until, Strikes: d.Count, Reason: reason, Offense: d.Offense}
}

// network is the network of the network jail j that holds p, if j groups
// p's family and p is narrower than it.
func (j *Jail) network(p netip.Prefix) (netip.Prefix, bool) {
	bits := j.Cfg.IPv6Prefix
	if p.Addr().Is4() {
		bits = j.Cfg.IPv4Prefix
	}
	if bits >= p.Bits() {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(p.Addr(), bits).Masked(), true
}

// add records unit banned at at inside network n, drops the members
// banned before cut and returns how many are left.
func (s *networkState) add(n, unit netip.Prefix, at, cut time.Time) int {
	m := s.members[n]
	if m == nil {
		m = map[netip.Prefix]time.Time{}
		s.members[n] = m
	}
	if at.After(m[unit]) {
		m[unit] = at
	}
	dropBefore(m, cut)
	return len(m)
}

// prune forgets the networks whose members were all banned before cut.
func (s *networkState) prune(cut time.Time) {
	for n, m := range s.members {
		if dropBefore(m, cut); len(m) == 0 {
			delete(s.members, n)
		}
	}
}

// dropBefore removes the members of one network banned before cut.
func dropBefore(m map[netip.Prefix]time.Time, cut time.Time) {
	for u, t := range m {
		if t.Before(cut) {
			delete(m, u)
		}
	}
}

// strikeWindow is how long j's strikes in the database count: findtime,
// or none for a jail on mailjail's own bans (it has no strikes there; its
// day-long findtime must not make a restart read a day of other jails'
// strikes).
func (j *Jail) strikeWindow() time.Duration {
	if j.Cfg.OnBans() {
		return 0
	}
	return j.Cfg.FindTime
}

// pruneNetwork drops what a network jail's window no longer counts.
func (j *Jail) pruneNetwork(now time.Time) {
	if j.net != nil {
		j.net.prune(now.Add(-j.Cfg.FindTime))
	}
}

// unbannedOnBans takes bans lifted by hand out of the recidive and
// network counts: the operator said they were wrong. (After a restart
// restoreOnBans skips them the same way.)
func (e *Engine) unbannedOnBans(lifted []store.Ban) {
	for _, b := range lifted {
		for _, h := range e.jails {
			switch {
			case h.Cfg.Recidive():
				h.Policy.Lift(rules.KeyOf(b.Prefix.Addr()))
			case h.Cfg.Network():
				if n, ok := h.network(b.Prefix); ok {
					delete(h.net.members[n], b.Prefix)
				}
			}
		}
	}
}

// restoreOnBans rebuilds the recidive and network windows from the ban
// history after a restart: the bans that count, inside each jail's
// findtime, except those made before or during the jail's own ban of the
// same address or network (used up by it, or ignored while it held) and
// those before the latest unban by hand of the same address (taken out
// of the count), as the running engine did.
func (e *Engine) restoreOnBans(now time.Time) error {
	var maxFind time.Duration
	for _, j := range e.jails {
		if j.Cfg.OnBans() {
			maxFind = max(maxFind, j.Cfg.FindTime)
		}
	}
	if maxFind == 0 {
		return nil
	}
	past, err := e.st.BansSince(now.Add(-maxFind))
	if err != nil {
		return err
	}
	handLift := map[netip.Prefix]time.Time{}
	used := map[banKey]time.Time{} // until when a recidive or network jail's own bans of a prefix held it
	for _, b := range past {
		if !b.Lifted.IsZero() && b.LiftedBy != liftedExpired && b.Lifted.After(handLift[b.Prefix]) {
			handLift[b.Prefix] = b.Lifted
		}
		if k := (banKey{b.Jail, b.Prefix}); !e.countsOnBans(b) && heldUntil(b).After(used[k]) {
			used[k] = heldUntil(b)
		}
	}
	for _, b := range past {
		if !e.countsOnBans(b) || !b.Since.After(handLift[b.Prefix]) {
			continue
		}
		for _, h := range e.jails {
			if now.Sub(b.Since) > h.Cfg.FindTime {
				continue
			}
			switch {
			case h.Cfg.Recidive():
				if b.Since.After(used[banKey{h.Cfg.Name, b.Prefix}]) {
					h.Policy.Restore(rules.KeyOf(b.Prefix.Addr()), b.Since, now)
				}
			case h.Cfg.Network():
				if n, ok := h.network(b.Prefix); ok && b.Since.After(used[banKey{h.Cfg.Name, n}]) {
					h.net.add(n, b.Prefix, b.Since, now.Add(-h.Cfg.FindTime))
				}
			}
		}
	}
	return nil
}

// liftedExpired is the lifted_by of a ban that ended (store's ExpireBans).
const liftedExpired = "expired"

// heldUntil is when b stopped holding its prefix: lifted, else its end,
// else (permanent and active) never.
func heldUntil(b store.Ban) time.Time {
	switch {
	case !b.Lifted.IsZero():
		return b.Lifted
	case !b.Until.IsZero():
		return b.Until
	}
	return time.Unix(1<<62, 0)
}
