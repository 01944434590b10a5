package engine

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/core"
	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/rules"
)

// An account (one SASL login) is a key of its own: a stolen password is
// used from addresses that change, sometimes through the provider's own
// webmail, so banning the client address misses the attacker and may hit
// everyone behind the gateway. Account jails count strikes per login and,
// at maxretry, suspend it (the account map), ban the addresses its
// strikes came from (except ignoreip) and alert.

// accountState is what an account jail adds to a jail.
type accountState struct {
	policy *rules.Policy[string]
	// sources counts, per account holding strikes, the client addresses
	// they came from: the addresses a suspension bans and the alert names.
	sources map[string]map[netip.Addr]int
}

func newAccountState(jc *config.Jail) *accountState {
	return &accountState{policy: rules.NewPolicy[string](policyConfig(jc)), sources: map[string]map[netip.Addr]int{}}
}

type suspKey struct{ jail, account string }

// ActiveSuspensions returns the active suspensions from memory.
func (e *Engine) ActiveSuspensions() []store.Suspension {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]store.Suspension, 0, len(e.susp))
	for _, s := range e.susp {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b store.Suspension) int {
		return cmp.Or(cmp.Compare(a.Account, b.Account), cmp.Compare(a.Jail, b.Jail))
	})
	return out
}

func (e *Engine) putSuspensions(ss ...store.Suspension) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range ss {
		e.susp[suspKey{s.Jail, s.Account}] = s
	}
}

func (e *Engine) forgetSuspensions(ss []store.Suspension) {
	e.mu.Lock()
	for _, s := range ss {
		delete(e.susp, suspKey{s.Jail, s.Account})
	}
	e.mu.Unlock()
	for _, s := range ss {
		for _, j := range e.jails {
			if j.acct != nil && (s.Jail == j.Cfg.Name || s.Jail == ManualJail) {
				j.acct.policy.Lift(s.Account)
				delete(j.acct.sources, s.Account)
			}
		}
	}
}

// suspendedAt reports whether account has an active or staged suspension
// at now, in any jail: its further events in j are the suspension
// working. A log-only jail's would-be suspension stops only that jail.
func (e *Engine) suspendedAt(j *Jail, account string, now time.Time) bool {
	if _, ok := e.stagedAccts[account]; ok {
		return true
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for k, s := range e.susp {
		if k.account == account && (s.Until.IsZero() || s.Until.After(now)) && !e.wouldSuspension(j, s) {
			return true
		}
	}
	return false
}

// nextSuspensionEnd is the earliest end of an active suspension, or zero.
// Suspensions are few (accounts, not botnet addresses): a scan will do.
func (e *Engine) nextSuspensionEnd() time.Time {
	var next time.Time
	for _, s := range e.susp {
		if !s.Until.IsZero() && (next.IsZero() || s.Until.Before(next)) {
			next = s.Until
		}
	}
	return next
}

// Allowed reports whether account is on the rate allow list (of the
// configuration or the database).
func (e *Engine) Allowed(account string) bool { return e.allow.Contains(account) }

// see records the first time mailjail meets account, for
// new_accounts_within.
func (e *Engine) see(account string, at time.Time) {
	if _, ok := e.firstSeen[account]; ok {
		return
	}
	e.firstSeen[account] = at
	if e.pending.seen == nil {
		e.pending.seen = map[string]time.Time{}
	}
	e.pending.seen[account] = at
}

// isNew reports whether account was first seen within d before now.
func (e *Engine) isNew(account string, d time.Duration, now time.Time) bool {
	first, ok := e.firstSeen[account]
	return !ok || now.Sub(first) <= d
}

// strikeAccount counts one event of account (from client, which may be
// invalid) against j's policy, and past maxretry stages the suspension
// and the bans of its sources.
func (e *Engine) strikeAccount(j *Jail, account string, client netip.Addr, bucket string, line []byte, at, now time.Time) {
	if e.allow.Contains(account) {
		e.stats.Allowed++
		return
	}
	if e.suspendedAt(j, account, now) {
		return
	}
	d := j.acct.policy.Strike(account, at, now)
	e.noteStale(j, d, at, now)
	if !d.Counted {
		return
	}
	e.stats.Strikes++
	j.counters.Strikes++
	e.pending.acctStrikes = append(e.pending.acctStrikes, store.AccountStrike{Jail: j.Cfg.Name, Account: account, Client: client, At: at, Bucket: bucket, Line: string(line)})
	if client.IsValid() {
		src := j.acct.sources[account]
		if src == nil {
			src = map[netip.Addr]int{}
			j.acct.sources[account] = src
		}
		src[client]++
	}
	if !d.Ban {
		return
	}
	reason := fmt.Sprintf("%d %s in %s", d.Count, plural(d.Count, "strike", "strikes"), config.FormatDuration(j.Cfg.FindTime))
	if bucket != "" {
		reason += fmt.Sprintf(" (%s exceeded)", bucket)
	}
	e.suspend(j, account, d, reason, now)
}

// suspend stages j's responses to account crossing its limit: the
// suspension (enforced when the jail suspends; recorded either way, so
// it escalates and its further events are ignored for its length) and,
// when the jail bans sources, bans of the addresses its strikes came
// from that are not in ignoreip nor banned already.
func (e *Engine) suspend(j *Jail, account string, d rules.Decision, reason string, now time.Time) {
	if d.Offense > 1 {
		reason += fmt.Sprintf(", offense %d", d.Offense)
	}
	s := store.Suspension{Jail: j.Cfg.Name, Account: account, Since: now, Until: d.Until, Strikes: d.Count, Reason: reason,
		Offense: d.Offense, Enforced: j.Cfg.CanSuspend(), Sources: sourcesOf(j.acct.sources[account])}
	e.stats.Suspensions++
	e.pending.suspensions = append(e.pending.suspensions, s)
	if !j.Cfg.LogOnly() { // a would-be suspension: the jail's policy marks the account
		e.stagedAccts[account] = struct{}{}
	}
	if !j.Cfg.BanSources {
		return
	}
	for _, src := range s.Sources {
		a := src.Addr
		if j.ignore.Contains(a) {
			e.stats.Ignored++
			continue
		}
		if e.bannedAt(a, now) {
			continue
		}
		e.stats.Bans++
		e.stageBan(j, a, store.Ban{Jail: j.Cfg.Name, Prefix: j.banPrefix(a), Since: now, Until: d.Until, Strikes: src.Count,
			Reason: fmt.Sprintf("source of account %s (%d of its strikes; %s)", account, src.Count, reason), Offense: d.Offense})
	}
}

// sourcesOf lists a source count map, most strikes first.
func sourcesOf(m map[netip.Addr]int) []store.Source {
	out := make([]store.Source, 0, len(m))
	for a, n := range m {
		out = append(out, store.Source{Addr: a, Count: n})
	}
	slices.SortFunc(out, func(a, b store.Source) int { return cmp.Or(b.Count-a.Count, a.Addr.Compare(b.Addr)) })
	return out
}

// Suspend suspends account by hand (jail "" or "manual"), for d
// (config.Permanent: until released).
func (e *Engine) Suspend(ctx context.Context, account, jail string, d time.Duration, reason string, now time.Time) (Change, error) {
	if jail == "" {
		jail = ManualJail
	}
	s := store.Suspension{Jail: jail, Account: account, Since: now, Reason: reason, Enforced: true}
	if d > 0 {
		s.Until = now.Add(d)
	}
	ch, err := e.update(ctx, now, func(tx *store.Tx) (Change, error) {
		id, err := tx.AddSuspension(s)
		s.ID = id
		return Change{Suspended: []store.Suspension{s}}, err
	})
	if err != nil {
		return Change{}, err
	}
	e.putSuspensions(s)
	return ch, nil
}

// Release lifts account's active suspensions (of jail, or of every jail
// when empty) and clears its strikes there. It returns core.ErrNotFound
// when the account is not suspended.
func (e *Engine) Release(ctx context.Context, account, jail string, now time.Time, by string) (Change, error) {
	ch, err := e.update(ctx, now, func(tx *store.Tx) (ch Change, err error) {
		ch.Released, err = tx.LiftSuspensions(account, jail, now, by)
		return ch, err
	})
	if err != nil {
		return Change{}, err
	}
	for _, j := range e.jails {
		if j.acct != nil && (jail == "" || j.Cfg.Name == jail) {
			j.acct.policy.Lift(account)
			delete(j.acct.sources, account)
		}
	}
	if len(ch.Released) == 0 {
		return Change{}, fmt.Errorf("%s is not suspended: %w", account, core.ErrNotFound)
	}
	e.forgetSuspensions(ch.Released)
	return ch, nil
}

// ReleaseAllowed releases the accounts a jail suspended that are now on
// the allow list (an operator who adds a login to allow_senders and
// restarts expects it out of the account map); suspensions made by hand
// stay.
func (e *Engine) ReleaseAllowed(ctx context.Context, now time.Time) (Change, error) {
	out := Change{At: now}
	for _, s := range e.ActiveSuspensions() {
		if s.Jail == ManualJail || !e.allow.Contains(s.Account) {
			continue
		}
		ch, err := e.Release(ctx, s.Account, s.Jail, now, "allow list")
		if err != nil {
			return out, err
		}
		out.Released = append(out.Released, ch.Released...)
	}
	return out, nil
}

// AllowAdd puts entry (normalised) on the database's allow list.
func (e *Engine) AllowAdd(ctx context.Context, entry, reason string, now time.Time) (added bool, err error) {
	err = e.st.Update(ctx, func(tx *store.Tx) error {
		added, err = tx.AddAllow(store.Allowed{Entry: entry, Added: now, Reason: reason})
		return err
	})
	if err != nil {
		return false, err
	}
	return added, e.loadAllow()
}

// AllowDel takes entry off the database's allow list.
func (e *Engine) AllowDel(ctx context.Context, entry string) (removed bool, err error) {
	err = e.st.Update(ctx, func(tx *store.Tx) error {
		removed, err = tx.DelAllow(entry)
		return err
	})
	if err != nil {
		return false, err
	}
	return removed, e.loadAllow()
}

// loadAllow rebuilds the allow list from the configuration and the
// database.
func (e *Engine) loadAllow() error {
	db, err := e.st.AllowList()
	if err != nil {
		return err
	}
	entries := append([]string(nil), e.cfg.Global.AllowSenders...)
	for _, a := range db {
		entries = append(entries, a.Entry)
	}
	l, err := rules.NewAllowList(entries)
	if err != nil {
		return fmt.Errorf("allow list: %w", err)
	}
	e.allow = l
	return nil
}

// restoreAccounts loads what account jails must not forget at a restart:
// active suspensions and the ones escalation counts, strikes inside
// findtime with their sources, first-seen times and the allow list.
func (e *Engine) restoreAccounts(now time.Time) error {
	active, err := e.st.ActiveSuspensions()
	if err != nil {
		return err
	}
	e.putSuspensions(active...)
	var maxLook, maxFind time.Duration
	for _, j := range e.jails {
		if j.acct != nil {
			maxLook, maxFind = max(maxLook, j.Cfg.Lookback), max(maxFind, j.Cfg.FindTime)
		}
	}
	past, err := e.st.SuspensionsSince(now.Add(-maxLook))
	if err != nil {
		return err
	}
	for _, s := range past {
		if j := e.jail(s.Jail); j != nil && j.acct != nil {
			j.acct.policy.RecordPastBan(s.Account, s.Since)
		}
	}
	err = e.st.AccountStrikesSince(now.Add(-maxFind), func(jail, account string, client netip.Addr, at time.Time) error {
		j := e.jail(jail)
		if j == nil || j.acct == nil || e.suspendedAt(j, account, now) || now.Sub(at) > j.Cfg.FindTime {
			return nil
		}
		j.acct.policy.Restore(account, at, now)
		if client.IsValid() {
			if j.acct.sources[account] == nil {
				j.acct.sources[account] = map[netip.Addr]int{}
			}
			j.acct.sources[account][client]++
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := e.st.AccountsFirstSeen(func(account string, first time.Time) { e.firstSeen[account] = first }); err != nil {
		return err
	}
	return e.loadAllow()
}

// pruneAccounts forgets source counts of accounts whose strikes all left
// findtime.
func (j *Jail) pruneAccounts(now time.Time) {
	if j.acct == nil {
		return
	}
	j.acct.policy.Prune(now)
	for account := range j.acct.sources {
		if j.acct.policy.Strikes(account, now) == 0 {
			delete(j.acct.sources, account)
		}
	}
}
