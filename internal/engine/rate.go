package engine

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/store"
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

type rateTable struct {
	what  string // "messages" or "recipients"
	limit bucket.Limit
	table *bucket.Table
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
	for _, t := range []struct {
		what  string
		limit *bucket.Limit
	}{{"messages", spec.Messages}, {"recipients", spec.Recipients}} {
		if t.limit == nil {
			continue
		}
		tab, err := bucket.NewTable(bucket.Config{Limit: *t.limit, Mode: spec.Accounting, MaxEntries: spec.MaxEntries, OnFull: spec.OnFull})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t.what, err)
		}
		r.tables = append(r.tables, rateTable{what: t.what, limit: *t.limit, table: tab})
	}
	return r, nil
}

// keyOf is the message's key for this jail, or "" when it has none
// (an unauthenticated message in a sasl_username jail).
func (r *rateState) keyOf(m postfix.Message) string {
	switch r.spec.Key {
	case "sasl_username":
		return m.SASLUser
	case "sender":
		return m.Sender
	case "client":
		if m.Client.IsValid() {
			return m.Client.String()
		}
	}
	return ""
}

// stageRate feeds one Postfix line to a rate jail. A message over a limit
// becomes a strike of its client (mode "ban") or a recorded rate event.
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
	for _, t := range r.tables {
		n := 1.0
		if t.what == "recipients" {
			n = float64(m.Rcpts)
		}
		res := t.table.Update(key, m.Time, n)
		if res.Backwards > 0 {
			e.log.Info("rate: clock went backwards, nothing leaked", "jail", j.Cfg.Name, "key", key, "by", res.Backwards)
		}
		if res.Untracked {
			e.log.Warn("rate table full: key not tracked", "jail", j.Cfg.Name, "key", key, "on_full", r.spec.OnFull.String(), "max_entries", r.spec.MaxEntries)
		}
		if !res.Limited {
			continue
		}
		e.stats.Matches++
		// The level this message tried to reach: in leaky accounting the
		// refused message is not in the bucket, but it is what was attempted.
		attempted := res.Level
		if r.spec.Accounting == bucket.Leaky {
			attempted += n
		}
		ev := store.RateEvent{Jail: j.Cfg.Name, Key: key, What: t.what, At: m.Time, Level: attempted, Burst: t.limit.Burst, Rate: t.limit.Rate.String(),
			Urgent: r.spec.SuspendFactor > 0 && attempted >= r.spec.SuspendFactor*t.limit.Burst,
			Detail: fmt.Sprintf("queue id %s, client %s, %d recipients", m.QueueID, m.Client, m.Rcpts)}
		if r.spec.Mode == "ban" {
			if a, err := netip.ParseAddr(key); err == nil {
				e.strike(j, a, t.what, line, at, now)
			}
			continue
		}
		e.pending.rateEvents = append(e.pending.rateEvents, ev)
	}
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
		st := t.table.Stats()
		s.Keys[t.what] = st.Entries
		s.Full += st.FailedOpen + st.FailedClosed
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
				snap := t.table.Snapshot()
				states := make([]store.BucketState, len(snap))
				for i, s := range snap {
					states[i] = store.BucketState{Key: s.Key, Level: s.Level, Last: s.Last}
				}
				if err := tx.SaveBuckets(j.Cfg.Name, t.what, states); err != nil {
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
			saved, err := e.st.LoadBuckets(j.Cfg.Name, t.what)
			if err != nil {
				return err
			}
			states := make([]bucket.State, len(saved))
			for i, s := range saved {
				states[i] = bucket.State{Key: s.Key, Level: s.Level, Last: s.Last}
			}
			if _, err := t.table.Restore(states); err != nil {
				e.log.Warn("some saved rate buckets were invalid and skipped", "jail", j.Cfg.Name, "table", t.what, "err", err)
			}
		}
	}
	return nil
}
