package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/core"
	"github.com/mailjail/mailjail/internal/store"
)

// The circuit breaker for mass bans: a filter broken by an rspamd upgrade
// can match every client, and must not lock a country out. The engine
// counts the jails' new enforced bans as they are staged, with the
// batch's clock (manual bans and would-be bans do not count); more than
// breaker_bans inside breaker_window, or more enforced active bans than
// breaker_max_entries, trips it. Tripped, every ban is still recorded,
// but the bans recorded from the one that tripped it on (manual ones
// excepted) are held: no target is given them (enforce.Given) and their
// actions and webhooks wait, while unbans and expiries still apply. The
// state is kept in the meta table, so a restart stays tripped, until
// Resume releases the held bans that are still active.

// Meta keys of the breaker: its state while tripped ("" when not), and
// the last resume.
const (
	metaBreaker       = "breaker"
	metaBreakerResume = "breaker_resume"
)

// BreakerState is the tripped circuit breaker.
type BreakerState struct {
	Tripped  time.Time `json:"tripped"`
	Reason   string    `json:"reason"`
	HeldFrom int64     `json:"held_from"` // the first held ban's ID: it and later ones are held
}

// Active reports whether the breaker is tripped.
func (s BreakerState) Active() bool { return s.HeldFrom > 0 }

// BreakerResume records who resumed a tripped breaker, and when.
type BreakerResume struct {
	At       time.Time `json:"at"`
	By       string    `json:"by"`
	Released int       `json:"released"` // held bans still active, given to the targets
	Tripped  time.Time `json:"tripped"`
	Reason   string    `json:"reason"`
}

// ErrNotTripped refuses a resume when nothing is held.
var ErrNotTripped = fmt.Errorf("the circuit breaker is not tripped: %w", core.ErrNotFound)

type breaker struct {
	state BreakerState
	// recent holds the times of the newest counted bans, oldest first,
	// from head on: at most breaker_bans + 1 of them.
	recent []time.Time
	head   int
	// trip is the pending batch's trip: the index of its ban that tripped
	// it (the first held), when and why.
	trip *pendingTrip
	// base is the enforced active bans when the pending batch counted its
	// first ban (-1: not yet), staged the batch's enforced bans since.
	base, staged int
}

type pendingTrip struct {
	index  int
	at     time.Time
	reason string
}

// breakerCount counts the pending batch's enforced ban i, staged at at,
// and trips the breaker when it is one too many.
func (e *Engine) breakerCount(i int, at time.Time) {
	b := &e.brk
	if b.state.Active() || b.trip != nil {
		return
	}
	cfg := e.cfg.Global.Breaker
	if reason := b.countRate(cfg, at); reason != "" {
		b.trip = &pendingTrip{index: i, at: at, reason: reason}
		return
	}
	if cfg.MaxEntries <= 0 {
		return
	}
	if b.base < 0 {
		b.base = e.enforcedBans()
	}
	b.staged++
	if n := b.base + b.staged; n > cfg.MaxEntries {
		b.trip = &pendingTrip{index: i, at: at, reason: fmt.Sprintf("%d active bans, more than breaker_max_entries = %d", n, cfg.MaxEntries)}
	}
}

// countRate adds a ban at at to the rate rule's window and returns why
// it trips, or "".
func (b *breaker) countRate(cfg config.Breaker, at time.Time) string {
	if cfg.Bans <= 0 {
		return ""
	}
	cut := at.Add(-cfg.Window)
	for b.head < len(b.recent) && !b.recent[b.head].After(cut) {
		b.head++
	}
	if b.head > len(b.recent)/2 {
		b.recent = b.recent[:copy(b.recent, b.recent[b.head:])]
		b.head = 0
	}
	b.recent = append(b.recent, at)
	if n := len(b.recent) - b.head; n > cfg.Bans {
		b.recent, b.head = nil, 0
		return fmt.Sprintf("%d new bans within %s, more than breaker_bans = %d", n, config.FormatDuration(cfg.Window), cfg.Bans)
	}
	return ""
}

// enforcedBans counts the active bans that are not would-be bans.
func (e *Engine) enforcedBans() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, b := range e.bans {
		if !b.LogOnly {
			n++
		}
	}
	return n
}

// breakerCommit records, in the batch's transaction, a trip the batch
// made (its bans have their IDs by now) and tells ch.
func (e *Engine) breakerCommit(tx *store.Tx, bans []store.Ban, ch *Change) error {
	t := e.brk.trip
	if t == nil {
		return nil
	}
	st := BreakerState{Tripped: t.at, Reason: t.reason, HeldFrom: bans[t.index].ID}
	v, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if err := tx.SetMeta(metaBreaker, string(v)); err != nil {
		return err
	}
	ch.Trip, ch.Held = &st, st.HeldFrom
	return nil
}

// breakerCommitted takes a committed batch's trip into force.
func (e *Engine) breakerCommitted(ch Change) {
	b := &e.brk
	b.base, b.staged, b.trip = -1, 0, nil
	if ch.Trip != nil {
		e.setBreaker(*ch.Trip)
		e.log.Error("circuit breaker tripped: bans are recorded but not given to the targets until mailjail resume",
			"reason", ch.Trip.Reason, "first_held_ban", ch.Trip.HeldFrom)
	}
}

// restoreBreaker loads the breaker's state after a restart.
func (e *Engine) restoreBreaker() error {
	st, err := ReadBreaker(e.st)
	e.brk = breaker{base: -1}
	e.setBreaker(st)
	return err
}

// setBreaker puts st in force, for the loop and for the targets.
func (e *Engine) setBreaker(st BreakerState) {
	e.brk.state = st
	e.mu.Lock()
	e.heldFrom = st.HeldFrom
	e.mu.Unlock()
}

// ActiveBansHeld returns the active bans, as ActiveBans, and the first
// ban ID the breaker holds (0: none): what a target's state is taken
// from, in any goroutine. The bans are read first: a trip is put in
// force before the bans it holds enter the cache (breakerCommitted), so
// bans that hold a held one come with the trip's ID.
func (e *Engine) ActiveBansHeld() ([]store.Ban, int64) {
	bans := e.ActiveBans()
	e.mu.Lock()
	defer e.mu.Unlock()
	return bans, e.heldFrom
}

// ReadBreaker reads the breaker's state from the database (for status
// without a daemon).
func ReadBreaker(st *store.Store) (BreakerState, error) {
	var s BreakerState
	v, ok, err := st.Meta(metaBreaker)
	if err != nil || !ok || v == "" {
		return s, err
	}
	if err := json.Unmarshal([]byte(v), &s); err != nil {
		return BreakerState{}, fmt.Errorf("circuit breaker state in the database: %w", err)
	}
	return s, nil
}

// Breaker returns the breaker's state (not Active when not tripped).
func (e *Engine) Breaker() BreakerState { return e.brk.state }

// HeldFrom is the ID of the first ban the tripped breaker holds, or 0:
// targets are given no ban of that ID or later but manual ones. From the
// loop's goroutine (targets use ActiveBansHeld).
func (e *Engine) HeldFrom() int64 { return e.brk.state.HeldFrom }

// HeldBans returns the active bans the tripped breaker holds.
func (e *Engine) HeldBans() []store.Ban {
	from := e.brk.state.HeldFrom
	if from == 0 {
		return nil
	}
	var out []store.Ban
	for _, b := range e.ActiveBans() {
		if Held(b, from) {
			out = append(out, b)
		}
	}
	return out
}

// Held reports whether b is held by a breaker that holds from ID from
// (0: none): would-be bans are never enforced anyway, manual bans are an
// operator's and never held.
func Held(b store.Ban, from int64) bool {
	return from > 0 && b.ID >= from && !b.LogOnly && b.Jail != ManualJail
}

// Resume releases the tripped breaker: the held bans that are still
// active (expired ones are lifted first) are handed to the targets and
// their actions run; who resumed is logged and kept in the meta table.
// It returns ErrNotTripped when the breaker is not tripped.
func (e *Engine) Resume(ctx context.Context, by string, now time.Time) (Change, error) {
	prev := e.brk.state
	if !prev.Active() {
		return Change{}, ErrNotTripped
	}
	expired, err := e.ExpireDue(ctx, now)
	if err != nil {
		return Change{}, err
	}
	held := e.HeldBans()
	rec := BreakerResume{At: now, By: by, Released: len(held), Tripped: prev.Tripped, Reason: prev.Reason}
	ch, err := e.update(ctx, now, func(tx *store.Tx) (Change, error) {
		v, err := json.Marshal(rec)
		if err != nil {
			return Change{}, err
		}
		if err := tx.SetMeta(metaBreaker, ""); err != nil {
			return Change{}, err
		}
		return Change{Resumed: held}, tx.SetMeta(metaBreakerResume, string(v))
	})
	if err != nil {
		return Change{}, err
	}
	e.brk = breaker{base: -1}
	e.setBreaker(BreakerState{})
	e.log.Warn("circuit breaker resumed: held bans given to the targets", "by", by, "released", len(held),
		"tripped", prev.Tripped.UTC().Format(time.RFC3339), "reason", prev.Reason)
	ch.Lifted = append(expired.Lifted, ch.Lifted...)
	ch.Released = append(expired.Released, ch.Released...)
	return ch, nil
}

// LastResume returns the last resume, if any.
func (e *Engine) LastResume() (BreakerResume, bool, error) {
	var r BreakerResume
	v, ok, err := e.st.Meta(metaBreakerResume)
	if err != nil || !ok || v == "" {
		return r, false, err
	}
	return r, true, json.Unmarshal([]byte(v), &r)
}
