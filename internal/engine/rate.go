package engine

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/core"
	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/rules"
	"github.com/mailjail/mailjail/rules/bucket"
	"github.com/mailjail/mailjail/rules/postfix"
)

// rateState is what a rate jail adds to a jail: Postfix correlation and
// one bucket table per limit.
type rateState struct {
	spec   *config.RateSpec
	corr   *postfix.Correlator
	tables []rateTable
}

// rateTable counts one thing ("messages" or "recipients") per key: in
// leaky buckets (rspamd's limits) or, for a provider's policy, in a
// sliding window.
type rateTable struct {
	what   string // "messages" or "recipients"
	limit  float64
	rate   string // the limit as events show it
	table  *bucket.Table
	window *bucket.Window
}

// count feeds one message's n at at and says whether it was over the
// limit and the level it reached (a leaky bucket: the level it tried to
// reach; in leaky accounting the refused message is not in the bucket,
// but it is what was attempted).
func (t *rateTable) count(key string, at time.Time, n float64, mode bucket.Mode) (over bool, level float64, untracked bool, back time.Duration) {
	if t.window != nil {
		res := t.window.Add(key, at, n)
		return res.Over(t.limit), res.Total, res.Untracked, res.Backwards
	}
	res := t.table.Update(key, at, n)
	level = res.Level
	if mode == bucket.Leaky && res.Limited {
		level += n
	}
	return res.Limited, level, res.Untracked, res.Backwards
}

func (t *rateTable) entries() int {
	if t.window != nil {
		return t.window.Len()
	}
	return t.table.Stats().Entries
}

func (t *rateTable) full() uint64 {
	var st bucket.Stats
	if t.window != nil {
		st = t.window.Stats()
	} else {
		st = t.table.Stats()
	}
	return st.FailedOpen + st.FailedClosed
}

// RateStats describes a rate jail for status output.
type RateStats struct {
	Keys    map[string]int // tracked keys per table
	Pending int            // Postfix transactions waiting for qmgr
	Full    uint64         // keys let through (fail-open) or limited (fail-closed) because a table was full
}

func newRateState(spec *config.RateSpec) (*rateState, error) {
	corr, err := postfix.NewCorrelator(postfix.Config{})
	if err != nil {
		return nil, err
	}
	r := &rateState{spec: spec, corr: corr}
	if spec.Window > 0 {
		for _, t := range []struct {
			what  string
			limit float64
		}{{"messages", spec.MaxMessages}, {"recipients", spec.MaxRecipients}} {
			if t.limit == 0 {
				continue
			}
			keep := t.limit * max(spec.SuspendFactor, 1)
			w, err := bucket.NewWindow(bucket.WindowConfig{Window: spec.Window, Keep: keep, MaxEntries: spec.MaxEntries, OnFull: spec.OnFull})
			if err != nil {
				return nil, fmt.Errorf("%s: %w", t.what, err)
			}
			r.tables = append(r.tables, rateTable{what: t.what, limit: t.limit, rate: fmt.Sprintf("%g per %s", t.limit, config.FormatDuration(spec.Window)), window: w})
		}
		return r, nil
	}
	for _, t := range []struct {
		what  string
		limit *bucket.Limit
	}{{"messages", spec.Messages}, {"recipients", spec.Recipients}} {
		if t.limit == nil {
			continue
		}
		tab, err := bucket.NewTable(bucket.Config{Limit: *t.limit, Mode: spec.Accounting, MaxEntries: spec.MaxEntries, OnFull: spec.OnFull, Rspamd: spec.Rspamd})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t.what, err)
		}
		r.tables = append(r.tables, rateTable{what: t.what, limit: t.limit.Burst, rate: t.limit.Rate.String(), table: tab})
	}
	return r, nil
}

// keyOf is the message's key for this jail, or "" when it has none. A
// sender counts only for an authenticated submission: on port 25 anyone
// can write any envelope sender, and counting those would let a stranger
// fill a real user's rate. Accounts and senders are normalised, and one
// that is not a valid address is no key.
func (r *rateState) keyOf(m postfix.Message) string {
	var key string
	switch r.spec.Key {
	case "sasl_username":
		key = m.SASLUser
	case "sender":
		if m.SASLUser == "" {
			return ""
		}
		key = m.Sender
	case "client":
		if m.Client.IsValid() {
			return m.Client.String()
		}
		return ""
	}
	if key == "" {
		return ""
	}
	n, err := rules.NormalizeAccount(key)
	if err != nil {
		return ""
	}
	return n
}

// stageRate feeds one Postfix line to a rate jail. A message over a limit
// becomes a strike of its client (mode "ban"), a recorded rate event
// (every other mode) and, in mode "suspend", a strike of its account; far
// over (suspend_factor) it suspends the account at once.
func (e *Engine) stageRate(j *Jail, line []byte, at, now time.Time) {
	r := j.rate
	m, ok, err := r.corr.Feed(line, at)
	if err != nil {
		e.log.Debug("postfix line not understood", "jail", j.Cfg.Name, "err", err)
	}
	if !ok {
		return
	}
	key := r.keyOf(m)
	if key == "" {
		return
	}
	if e.allowedMessage(m) {
		e.stats.Allowed++
		return
	}
	if j.acct != nil {
		e.see(key, m.Time)
	}
	for _, t := range r.tables {
		n := 1.0
		if t.what == "recipients" {
			n = float64(m.Rcpts)
		}
		over, level, untracked, back := t.count(key, m.Time, n, r.spec.Accounting)
		if back > 0 {
			e.log.Info("rate: clock went backwards, nothing leaked", "jail", j.Cfg.Name, "key", key, "by", back)
		}
		// A full table refuses every line of every new key: warned at
		// the 1st, 2nd, 4th, 8th... refusal, not once per line read.
		if n := t.full(); untracked && core.Sparse(n-1, n) {
			e.log.Warn("rate table full: key not tracked", "jail", j.Cfg.Name, "key", key, "on_full", r.spec.OnFull.String(), "max_entries", r.spec.MaxEntries, "untracked_so_far", n)
		}
		if !over {
			continue
		}
		e.stats.Matches++
		j.counters.Matches++
		ev := store.RateEvent{Jail: j.Cfg.Name, Key: key, What: t.what, At: m.Time, Level: level, Burst: t.limit, Rate: t.rate,
			Urgent: r.spec.SuspendFactor > 0 && level >= r.spec.SuspendFactor*t.limit,
			Detail: fmt.Sprintf("queue id %s, client %s, %d recipients", m.QueueID, m.Client, m.Rcpts)}
		switch r.spec.Mode {
		case "ban":
			if a, err := netip.ParseAddr(key); err == nil {
				e.strike(j, a, t.what, line, at, now)
			}
			continue
		case "suspend":
			e.rateSuspend(j, key, m.Client, ev, line, at, now)
		}
		e.pending.rateEvents = append(e.pending.rateEvents, ev)
	}
}

// rateSuspend is mode "suspend": an over-limit message is a strike of its
// account, and one far over the limit suspends it at once; with
// new_accounts_within only accounts first seen that recently are
// suspended (older ones get rate events only).
func (e *Engine) rateSuspend(j *Jail, account string, client netip.Addr, ev store.RateEvent, line []byte, at, now time.Time) {
	if w := j.Cfg.Rate.NewAccountsWithin; w > 0 && !e.isNew(account, w, now) {
		return
	}
	e.strikeAccount(j, account, client, ev.What, line, at, now)
	if !ev.Urgent || e.suspendedAt(j, account, now) {
		return
	}
	d := j.acct.policy.Ban(account, now, j.acct.policy.Strikes(account, now))
	e.suspend(j, account, d, fmt.Sprintf("%s reached %.0f, %.1f× the limit of %g (%s)", ev.What, ev.Level, ev.Level/ev.Burst, ev.Burst, ev.Rate), now)
}

// allowedMessage reports whether m's login, or for an authenticated
// submission its envelope sender, is on the allow list. An
// unauthenticated sender proves nothing: anyone can write it.
func (e *Engine) allowedMessage(m postfix.Message) bool {
	if m.SASLUser == "" {
		return false
	}
	for _, s := range []string{m.SASLUser, m.Sender} {
		if n, err := rules.NormalizeAccount(s); err == nil && e.allow.Contains(n) {
			return true
		}
	}
	return false
}

// logRateEvents reports committed log-only events: a warning naming the
// key, its level and the limit, or an error when it is urgent.
func (e *Engine) logRateEvents(evs []store.RateEvent) {
	for _, ev := range evs {
		args := []any{"jail", ev.Jail, "key", ev.Key, "what", ev.What, "level", fmt.Sprintf("%.1f", ev.Level), "burst", ev.Burst, "rate", ev.Rate, "detail", ev.Detail}
		if ev.Urgent {
			e.log.Error("rate far over the limit (urgent: suspend_factor reached)", args...)
		} else {
			e.log.Warn("rate over the limit", args...)
		}
	}
}

// RateStats returns a rate jail's counters, or nil for other jails.
func (j *Jail) RateStats() *RateStats {
	if j.rate == nil {
		return nil
	}
	s := &RateStats{Keys: map[string]int{}, Pending: j.rate.corr.Stats().Pending}
	for _, t := range j.rate.tables {
		s.Keys[t.what] = t.entries()
		s.Full += t.full()
	}
	return s
}

// SaveBuckets snapshots every rate jail's buckets into the database, so a
// restart does not reset rates.
func (e *Engine) SaveBuckets(ctx context.Context) error {
	return e.st.Update(ctx, func(tx *store.Tx) error {
		for _, j := range e.jails {
			if j.rate == nil {
				continue
			}
			for _, t := range j.rate.tables {
				if err := t.save(tx, j.Cfg.Name); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// restoreBuckets loads saved buckets into the rate jails.
func (e *Engine) restoreBuckets() error {
	for _, j := range e.jails {
		if j.rate == nil {
			continue
		}
		for _, t := range j.rate.tables {
			if err := t.restore(e.st, j.Cfg.Name); err != nil {
				if !errors.Is(err, errSomeInvalid) {
					return err
				}
				e.log.Warn("some saved rate counters were invalid and skipped", "jail", j.Cfg.Name, "table", t.what, "err", err)
			}
		}
	}
	return nil
}

// save writes the table's counters into the database.
func (t *rateTable) save(tx *store.Tx, jail string) error {
	if t.window != nil {
		snap := t.window.Snapshot()
		states := make([]store.WindowState, len(snap))
		for i, s := range snap {
			states[i].Key = s.Key
			for _, ev := range s.Events {
				states[i].Events = append(states[i].Events, store.WindowEvent{At: ev.At, N: ev.N})
			}
		}
		return tx.SaveWindows(jail, t.what, states)
	}
	snap := t.table.Snapshot()
	states := make([]store.BucketState, len(snap))
	for i, s := range snap {
		states[i] = store.BucketState{Key: s.Key, Level: s.Level, Last: s.Last}
	}
	return tx.SaveBuckets(jail, t.what, states)
}

// errSomeInvalid marks saved counters that were skipped: the rest loaded.
var errSomeInvalid = errors.New("invalid saved counters")

// restore loads the table's saved counters.
func (t *rateTable) restore(st *store.Store, jail string) error {
	var err error
	if t.window != nil {
		saved, lerr := st.LoadWindows(jail, t.what)
		if lerr != nil {
			return lerr
		}
		states := make([]bucket.WindowState, len(saved))
		for i, s := range saved {
			states[i].Key = s.Key
			for _, ev := range s.Events {
				states[i].Events = append(states[i].Events, bucket.WindowEvent{At: ev.At, N: ev.N})
			}
		}
		_, err = t.window.Restore(states)
	} else {
		saved, lerr := st.LoadBuckets(jail, t.what)
		if lerr != nil {
			return lerr
		}
		states := make([]bucket.State, len(saved))
		for i, s := range saved {
			states[i] = bucket.State{Key: s.Key, Level: s.Level, Last: s.Last}
		}
		_, err = t.table.Restore(states)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", errSomeInvalid, err)
	}
	return nil
}
