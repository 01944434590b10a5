package engine

import (
	"math/rand/v2"
	"time"

	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/rules"
)

// How an offense is counted. Each jail's policy keeps the bans of its own
// jail; when a jail counts the bans of every jail (bantime_overalljails),
// the engine also keeps one history shared by its address jails, which
// every one of them records its bans in. Both come from the database at
// a start (RestoreBans), and the shared one again at a reload, so that a
// jail kept and a jail added count the same bans.

// policyConfig is jc's policy with the engine's randomness for
// bantime_rndtime (the core has none of its own).
func policyConfig(jc *config.Jail) rules.PolicyConfig {
	cfg := jc.Policy()
	cfg.Rand = rand.Float64
	return cfg
}

// newSharedHistory returns the history shared by jails when one of them
// counts every jail's bans, else nil (no memory spent on it).
func newSharedHistory(jails []*Jail) *rules.History[rules.AddrKey] {
	var keep time.Duration
	overall := false
	for _, j := range jails {
		if j.acct == nil {
			keep = max(keep, j.Cfg.Lookback)
			overall = overall || j.Cfg.OverallJails
		}
	}
	if !overall {
		return nil
	}
	return rules.NewHistory[rules.AddrKey](keep)
}

// shareHistory makes h the engine's shared history, for every address
// jail's policy.
func (e *Engine) shareHistory(h *rules.History[rules.AddrKey]) {
	e.shared = h
	for _, j := range e.jails {
		if j.acct == nil {
			j.Policy.ShareHistory(h, j.Cfg.OverallJails)
		}
	}
}

// loadSharedHistory builds the shared history of e's jails from the
// database: the bans of every address jail inside the longest lookback.
// A reload uses it, since its kept jails and its fresh ones had different
// shared histories.
func (e *Engine) loadSharedHistory(now time.Time) (*rules.History[rules.AddrKey], error) {
	h := newSharedHistory(e.jails)
	if h == nil {
		return nil, nil
	}
	past, err := e.st.BansSince(now.Add(-e.maxLookback()))
	if err != nil {
		return nil, err
	}
	for _, b := range past {
		if j := e.jail(b.Jail); j != nil && j.acct == nil {
			h.Record(rules.KeyOf(b.Prefix.Addr()), b.Since)
		}
	}
	return h, nil
}

// restoreHistory records the earlier bans escalation counts in the
// policies (and the shared history) of their jails.
func (e *Engine) restoreHistory(past []store.Ban) {
	for _, b := range past {
		if j := e.jail(b.Jail); j != nil {
			j.Policy.RecordPastBan(rules.KeyOf(b.Prefix.Addr()), b.Since)
		}
	}
}

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
	if e.shared != nil {
		e.shared.Prune(now)
	}
}
