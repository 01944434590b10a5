package engine

import (
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/rules"
)

// How an offense is counted. Each jail's policy keeps the bans of its own
// jail; when a jail counts the bans of every jail (bantime_overalljails),
// the engine also keeps one history for the jails of its kind (address
// jails' bans, account jails' suspensions), recorded from what each
// commit stored, so that a ban counts as it will be read back: a
// log-only jail's would-be bans never. Both come from the database at a
// start (RestoreBans), the shared ones again at a reload, so that a jail
// kept and a jail added count the same bans.

// policyConfig is jc's policy with the engine's randomness for
// bantime_rndtime (the core has none of its own).
func policyConfig(jc *config.Jail) rules.PolicyConfig {
	cfg := jc.Policy()
	cfg.Rand = rand.Float64
	return cfg
}

// histories are the engine's shared histories, each nil unless a jail of
// its kind counts every jail's bans (no memory spent on it).
type histories struct {
	addrs *rules.History[rules.AddrKey] // address jails' bans
	accts *rules.History[string]        // account jails' suspensions
}

func newHistories(jails []*Jail) histories {
	var h histories
	if keep, ok := overallKeep(jails, false); ok {
		h.addrs = rules.NewHistory[rules.AddrKey](keep)
	}
	if keep, ok := overallKeep(jails, true); ok {
		h.accts = rules.NewHistory[string](keep)
	}
	return h
}

// overallKeep is the longest lookback of the address (or account) jails,
// and whether one of them counts every jail's bans.
func overallKeep(jails []*Jail, accounts bool) (keep time.Duration, overall bool) {
	for _, j := range jails {
		if (j.acct != nil) == accounts {
			keep = max(keep, j.Cfg.Lookback)
			overall = overall || j.Cfg.OverallJails
		}
	}
	return keep, overall
}

// shareHistory makes h the engine's shared histories, counted by the
// policies of the jails with bantime_overalljails.
func (e *Engine) shareHistory(h histories) {
	e.shared = h
	for _, j := range e.jails {
		switch {
		case !j.Cfg.OverallJails:
		case j.acct == nil:
			j.Policy.ShareHistory(h.addrs)
		default:
			j.acct.policy.ShareHistory(h.accts)
		}
	}
}

// loadSharedHistory builds the shared histories of e's jails from the
// database. A reload uses it, since its kept jails and its fresh ones
// had different shared histories.
func (e *Engine) loadSharedHistory(now time.Time) (histories, error) {
	h := newHistories(e.jails)
	since := now.Add(-e.maxLookback())
	if h.addrs != nil {
		past, err := e.st.BansSince(since)
		if err != nil {
			return histories{}, err
		}
		e.recordBans(h, past)
	}
	return h, e.recordSuspensions(h, since)
}

// recordShared records a committed batch's bans and suspensions in the
// shared histories: only committed ones, with the flags they were
// stored with, as a start reads them back.
func (e *Engine) recordShared(bans []store.Ban, susp []store.Suspension) {
	e.recordBans(e.shared, bans)
	if e.shared.accts == nil {
		return
	}
	for _, s := range susp {
		if j := e.jail(s.Jail); j != nil && j.acct != nil {
			e.shared.accts.Record(s.Account, s.Since)
		}
	}
}

// recordBans records in h.addrs the bans that count toward escalation
// of address jails: neither a log-only jail's would-be bans, nor those of
// jails no longer configured, nor an account jail's bans of sources. A
// ban is recorded under the key of every jail that counts every jail's
// bans: a jail that counts IPv6 clients per /64 sees the bans of the
// addresses in the /64 it would ban.
func (e *Engine) recordBans(h histories, bans []store.Ban) {
	if h.addrs == nil {
		return
	}
	var keys []rules.AddrKey
	for _, b := range bans {
		if j := e.jail(b.Jail); j == nil || j.acct != nil || !counts(b) {
			continue
		}
		a := b.Prefix.Addr()
		keys = append(keys[:0], rules.KeyOf(a))
		for _, o := range e.jails {
			if k := rules.KeyOf(o.key(a)); o.acct == nil && o.Cfg.OverallJails && !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
		for _, k := range keys {
			h.addrs.Record(k, b.Since)
		}
	}
}

// recordSuspensions records in h.accts the account jails' suspensions
// since since, from the database.
func (e *Engine) recordSuspensions(h histories, since time.Time) error {
	if h.accts == nil || e.st == nil {
		return nil
	}
	past, err := e.st.SuspensionsSince(since)
	if err != nil {
		return err
	}
	for _, s := range past {
		if j := e.jail(s.Jail); j != nil && j.acct != nil {
			h.accts.Record(s.Account, s.Since)
		}
	}
	return nil
}

// NextBan is the ban an address would get next in one jail.
type NextBan struct {
	Jail string
	rules.NextBan
}

// NextBans is, for each enabled address jail of cfg that could ban a (a
// not in its ignoreip, res being what its host names and files stand
// for), the ban a would get there next at now, given the
// ban history in st (nil: no database yet, no history): what `mailjail
// show` prints, computed by the same policies as the daemon's, without
// the daemon.
func NextBans(cfg *config.Config, st *store.Store, res rules.Resolved, a netip.Addr, now time.Time) ([]NextBan, error) {
	e, err := New(cfg, st, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	if err := e.SetIgnore(res); err != nil {
		return nil, err
	}
	// The bans a start would read, of the prefixes a jail bans a with
	// (a /64 with ipv6_prefix = 64) and of the addresses inside them.
	since := now.Add(-e.maxLookback())
	var past []store.Ban
	if st != nil {
		all, err := st.BansSince(since)
		if err != nil {
			return nil, err
		}
		for _, b := range all {
			if slices.ContainsFunc(e.jails, func(j *Jail) bool { return j.acct == nil && j.banPrefix(a).Overlaps(b.Prefix) }) {
				past = append(past, b)
			}
		}
	}
	if err := e.restoreHistory(past, since); err != nil {
		return nil, err
	}
	var out []NextBan
	for _, j := range e.jails {
		if j.acct != nil || j.ignore.Contains(a) {
			continue
		}
		out = append(out, NextBan{Jail: j.Cfg.Name, NextBan: j.Policy.Next(rules.KeyOf(j.key(a)), now)})
	}
	return out, nil
}

// restoreHistory records the earlier bans escalation counts in the
// policies of their jails and in the shared histories (the suspensions
// read from the database since since).
func (e *Engine) restoreHistory(past []store.Ban, since time.Time) error {
	for _, b := range past {
		if j := e.jail(b.Jail); j != nil && counts(b) {
			j.Policy.RecordPastBan(rules.KeyOf(b.Prefix.Addr()), b.Since)
		}
	}
	e.recordBans(e.shared, past)
	return e.recordSuspensions(e.shared, since)
}

// counts reports whether an earlier ban counts toward escalation: not a
// log-only jail's would-be ban, which kept nobody out.
func counts(b store.Ban) bool { return !b.LogOnly }

// maxLookback is the longest lookback of e's jails.
func (e *Engine) maxLookback() time.Duration {
	var d time.Duration
	for _, j := range e.jails {
		d = max(d, j.Cfg.Lookback)
	}
	return d
}

// pruneHistory forgets shared ban starts no lookback reads any more.
func (e *Engine) pruneHistory(now time.Time) {
	if e.shared.addrs != nil {
		e.shared.addrs.Prune(now)
	}
	if e.shared.accts != nil {
		e.shared.accts.Prune(now)
	}
}
