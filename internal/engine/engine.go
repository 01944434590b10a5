// Package engine is mailjail's pipeline without its I/O loops: it takes
// batches of log lines and a time, runs them through each jail's filter
// and policy, and records strikes, bans and read positions in the store in
// one transaction. The daemon drives it from the watcher and a wall clock;
// replay drives it from old files with the logs' own clock; the CLI uses
// it for manual bans when no daemon runs. It keeps the active bans in
// memory (a cache of the database) so the map can be rendered at once.
package engine

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/core"
	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/rules"
)

// ManualJail is the jail name of bans made by hand (and of entries taken
// over from a map that existed before mailjail); config reserves it.
const ManualJail = config.ManualJail

// Engine runs the pipeline. Stage, Commit and the manual operations must
// be called from one goroutine; Entries may be called from any.
type Engine struct {
	cfg   *config.Config
	st    *store.Store
	log   *slog.Logger
	loc   *time.Location
	jails []*Jail

	pathJails map[string][]*Jail // followed path -> jails that read it

	mu      sync.Mutex // guards bans and lengths, for the map writer
	bans    map[banKey]store.Ban
	lengths prefixLengths // of the active bans, for bannedIn
	// staged are the bans of the pending batch, with their lengths;
	// coverAll the jails whose bans cover every jail's events.
	staged        map[banKey]struct{}
	stagedLengths prefixLengths
	coverAll      []string
	// next is the earliest end of an active ban (zero: none), kept so that
	// checking for expiry per line is free; nextStale forces a rescan
	// after the ban that ended first is removed.
	next      time.Time
	nextStale bool

	susp        map[suspKey]store.Suspension // active suspensions (guarded by mu)
	stagedAccts map[string]struct{}          // suspended by the pending batch
	firstSeen   map[string]time.Time         // when each account was first seen
	allow       *rules.AllowList             // the rate allow list: config and database
	shared      histories                    // every jail's bans, with overalljails (history.go)

	// resolved holds what ignoreip's host names and files stand for
	// (SetIgnore); globalIgnore is [global] ignoreip with them, for
	// manual bans.
	resolved     rules.Resolved
	globalIgnore *rules.IPSet

	// cluster counts strikes with the other nodes (nil: alone); node is
	// this node's name, linePos the position of the line Stage is
	// judging, for the strikes' identity.
	cluster SharedStrikes
	node    string
	linePos core.Position

	pending pending
	effects Effects
	stats   Stats
	changes map[string]*ChangeCounters // per jail name, manual included
	sources map[string]*SourceCounters // per followed path or journal key

	// brk is the circuit breaker for mass bans (the loop's); heldFrom is
	// its first held ban ID as the targets see it (guarded by mu).
	brk      breaker
	heldFrom int64
}

// ChangeCounters count what committed changes did to one jail, for
// metrics.
type ChangeCounters struct {
	Bans, Unbans, Suspensions, Releases, RateEvents uint64
}

// SourceCounters count one followed path's (or journal's) lines.
type SourceCounters struct {
	Lines   uint64    // lines staged
	Matches uint64    // filter matches among them (any jail)
	Last    time.Time // when its latest line was staged (zero: none yet)
}

// Jail is one configured jail at run time.
type Jail struct {
	Cfg      *config.Jail
	Filter   *rules.Filter
	Policy   *rules.Policy[rules.AddrKey]
	ignore   *rules.IPSet
	buckets  map[string]bool
	rate     *rateState    // set for a rate jail
	acct     *accountState // set for an account jail
	net      *networkState // set for a network jail
	counters JailCounters
}

// JailCounters count a jail's events that did not become strikes for
// reasons an administrator must see.
type JailCounters struct {
	TooOld uint64 // older than findtime when read: not counted
	Future uint64 // dated beyond the read time: taken at the read time
	// Prefiltered counts lines that passed the filter's literal
	// prefilter, Matches those the filter matched: many of the first and
	// none of the second means the log format changed under the filter.
	Prefiltered uint64
	Matches     uint64
	Strikes     uint64 // strikes counted
}

// Counters returns the jail's counters.
func (j *Jail) Counters() JailCounters { return j.counters }

type banKey struct {
	jail   string
	prefix netip.Prefix
}

// Stats counts what the engine saw, for status output.
type Stats struct {
	Lines       uint64 // lines staged
	NoTime      uint64 // lines without a parsable timestamp (read time used)
	Matches     uint64 // filter matches
	Ignored     uint64 // matches for ignoreip addresses
	OtherBucket uint64 // matches in buckets the jail does not strike on
	Strikes     uint64 // strikes counted
	Bans        uint64 // bans decided
	Suspensions uint64 // suspensions decided
	Allowed     uint64 // events of accounts on the allow list
	NoAccount   uint64 // matches in account jails that named no (valid) account
}

// pending is a staged batch not yet committed.
type pending struct {
	strikes    []store.Strike
	bans       []store.Ban
	rateEvents []store.RateEvent
	positions  map[string]core.Position

	acctStrikes []store.AccountStrike
	suspensions []store.Suspension
	seen        map[string]time.Time // accounts seen for the first time
	now         time.Time            // of the latest Stage: when the positions were read
}

func (p *pending) empty() bool {
	return len(p.strikes) == 0 && len(p.bans) == 0 && len(p.rateEvents) == 0 && len(p.positions) == 0 &&
		len(p.acctStrikes) == 0 && len(p.suspensions) == 0 && len(p.seen) == 0
}

// New builds an engine for cfg's enabled jails on st.
func New(cfg *config.Config, st *store.Store, log *slog.Logger) (*Engine, error) {
	e := &Engine{cfg: cfg, st: st, log: log, loc: cfg.Location(), pathJails: map[string][]*Jail{},
		bans: map[banKey]store.Ban{}, staged: map[banKey]struct{}{},
		susp: map[suspKey]store.Suspension{}, stagedAccts: map[string]struct{}{}, firstSeen: map[string]time.Time{},
		changes: map[string]*ChangeCounters{}, sources: map[string]*SourceCounters{}, brk: breaker{base: -1}}
	var err error
	if e.allow, err = rules.NewAllowList(cfg.Global.AllowSenders); err != nil {
		return nil, fmt.Errorf("allow_senders: %w", err)
	}
	for _, jc := range cfg.EnabledJails() {
		j := &Jail{Cfg: jc, Policy: rules.NewPolicy[rules.AddrKey](policyConfig(jc))}
		if jc.Accounts() {
			j.acct = newAccountState(jc)
		}
		if jc.Network() {
			j.net = &networkState{members: map[netip.Prefix]map[netip.Prefix]time.Time{}}
		}
		switch {
		case jc.OnBans(): // reads mailjail's own bans: no filter
		case jc.Rate != nil:
			if j.rate, err = newRateState(jc.Rate); err != nil {
				return nil, fmt.Errorf("jail %s: %w", jc.Name, err)
			}
		default:
			if j.Filter, err = cfg.CompileFilter(jc.Filter); err != nil {
				return nil, fmt.Errorf("jail %s: %w", jc.Name, err)
			}
		}
		if len(jc.Buckets) > 0 {
			j.buckets = map[string]bool{}
			for _, b := range jc.Buckets {
				j.buckets[b] = true
			}
		}
		e.jails = append(e.jails, j)
	}
	e.coverAll = coverAllJails(e.jails)
	e.shareHistory(newHistories(e.jails))
	if err := e.SetIgnore(nil); err != nil {
		return nil, err
	}
	return e, nil
}

// Jails returns the running jails.
func (e *Engine) Jails() []*Jail { return e.jails }

// Tracked is the number of addresses and accounts holding strikes, over
// all jails.
func (e *Engine) Tracked() int {
	n := 0
	for _, j := range e.jails {
		n += j.Tracked()
	}
	return n
}

// Tracked is the number of addresses or accounts holding strikes in j.
func (j *Jail) Tracked() int {
	if j.acct != nil {
		return j.acct.policy.Tracked()
	}
	if j.net != nil {
		return len(j.net.members) // networks holding banned addresses
	}
	return j.Policy.Tracked()
}

// Stats returns counters.
func (e *Engine) Stats() Stats { return e.stats }

// ChangeCounts returns a copy of the per-jail change counters, keyed by
// jail name (ManualJail included once it changed something).
func (e *Engine) ChangeCounts() map[string]ChangeCounters {
	out := make(map[string]ChangeCounters, len(e.changes))
	for k, v := range e.changes {
		out[k] = *v
	}
	return out
}

// SourceCounts returns a copy of the per-source line counters, keyed by
// path or journal key.
func (e *Engine) SourceCounts() map[string]SourceCounters {
	out := make(map[string]SourceCounters, len(e.sources))
	for k, v := range e.sources {
		out[k] = *v
	}
	return out
}

// countChange adds a committed change to the per-jail counters (imported
// map entries were not decided here and are not counted).
func (e *Engine) countChange(ch Change) {
	if ch.Imported {
		return
	}
	c := func(jail string) *ChangeCounters {
		if e.changes[jail] == nil {
			e.changes[jail] = &ChangeCounters{}
		}
		return e.changes[jail]
	}
	for _, b := range ch.Bans {
		c(b.Jail).Bans++
	}
	for _, b := range ch.Lifted {
		c(b.Jail).Unbans++
	}
	for _, s := range ch.Suspended {
		c(s.Jail).Suspensions++
	}
	for _, s := range ch.Released {
		c(s.Jail).Releases++
	}
	for _, r := range ch.Rate {
		c(r.Jail).RateEvents++
	}
}

// LogPatterns is every logpath of every enabled jail, deduplicated.
func (e *Engine) LogPatterns() []string {
	var out []string
	for _, j := range e.jails {
		for _, p := range j.Cfg.LogPath {
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}

// JournalMatches is every distinct journal selection of the enabled
// jails: one follower each, however many jails share it.
func (e *Engine) JournalMatches() []core.JournalMatch {
	var out []core.JournalMatch
	seen := map[string]bool{}
	for _, j := range e.jails {
		if m := j.Cfg.Journal; m != nil && !seen[m.Key()] {
			seen[m.Key()] = true
			out = append(out, *m)
		}
	}
	return out
}

// jailsFor returns the jails that read path (a literal logpath or a glob
// match), cached.
func (e *Engine) jailsFor(path string) []*Jail {
	if js, ok := e.pathJails[path]; ok {
		return js
	}
	var js []*Jail
	for _, j := range e.jails {
		if j.Cfg.OnBans() {
			continue // reads no line, whatever its configuration says
		}
		if j.Cfg.Journal != nil && j.Cfg.Journal.Key() == path {
			js = append(js, j)
			continue
		}
		for _, p := range j.Cfg.LogPath {
			if ok, _ := filepath.Match(p, path); ok || p == path {
				js = append(js, j)
				break
			}
		}
	}
	e.pathJails[path] = js
	return js
}

// RestoreBans loads the active bans and suspensions (so the maps can be
// written at once), the earlier ones that escalation counts, and what
// account jails need: strikes, first-seen times, the allow list.
func (e *Engine) RestoreBans(now time.Time) error {
	bans, err := e.st.ActiveBans()
	if err != nil {
		return err
	}
	e.put(bans...)
	e.restoreWouldBans(bans)
	if err := e.restoreBreaker(); err != nil {
		return err
	}
	since := now.Add(-e.maxLookback())
	past, err := e.st.BansSince(since)
	if err != nil {
		return err
	}
	if err := e.restoreHistory(past, since); err != nil {
		return err
	}
	return e.restoreAccounts(now)
}

// RestoreStrikes loads the strikes still inside their findtime window
// and the rate jails' buckets: what a restart must not forget.
func (e *Engine) RestoreStrikes(now time.Time) error {
	var maxFind time.Duration
	for _, j := range e.jails {
		maxFind = max(maxFind, j.strikeWindow())
	}
	err := e.st.StrikesSince(now.Add(-maxFind), func(jail []byte, a netip.Addr, at time.Time) error {
		if j := e.jailNamed(jail); j != nil && !e.bannedIn(j.Cfg.Name, a, now) {
			j.Policy.Restore(rules.KeyOf(j.key(a)), at, now)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := e.restoreOnBans(now); err != nil {
		return err
	}
	return e.restoreBuckets()
}

// jailNamed is jail for a name in bytes, without allocating.
func (e *Engine) jailNamed(name []byte) *Jail {
	for _, j := range e.jails {
		if j.Cfg.Name == string(name) {
			return j
		}
	}
	return nil
}

func (e *Engine) jail(name string) *Jail { return e.jailNamed([]byte(name)) }

// Commit writes the pending batch in one transaction, with its effects,
// and returns what it changed. On error nothing is written and the batch
// stays pending, so calling Commit again retries it (a full disk loses
// nothing).
func (e *Engine) Commit(ctx context.Context) (Change, error) {
	if e.pending.empty() {
		return Change{}, nil
	}
	p := &e.pending
	ch, err := e.update(ctx, p.now, func(tx *store.Tx) (Change, error) {
		var ch Change
		for _, s := range p.strikes {
			if err := tx.AddStrike(s); err != nil {
				return ch, err
			}
		}
		for i := range p.bans {
			id, err := tx.AddBan(p.bans[i])
			if err != nil {
				return ch, err
			}
			p.bans[i].ID = id
		}
		if err := e.breakerCommit(tx, p.bans, &ch); err != nil {
			return ch, err
		}
		for _, ev := range p.rateEvents {
			if err := tx.AddRateEvent(ev); err != nil {
				return ch, err
			}
			ch.Rate = append(ch.Rate, ev)
			if ev.Urgent {
				ch.Urgent = append(ch.Urgent, ev)
			}
		}
		for _, st := range p.acctStrikes {
			if err := tx.AddAccountStrike(st); err != nil {
				return ch, err
			}
		}
		for i := range p.suspensions {
			id, err := tx.AddSuspension(p.suspensions[i])
			if err != nil {
				return ch, err
			}
			p.suspensions[i].ID = id
		}
		for account, at := range p.seen {
			if err := tx.SeeAccount(account, at); err != nil {
				return ch, err
			}
		}
		for _, pos := range p.positions {
			if err := tx.SavePosition(pos, p.now); err != nil {
				return ch, err
			}
		}
		ch.Bans, ch.Suspended = p.bans, p.suspensions
		return ch, nil
	})
	if err != nil {
		return Change{}, err
	}
	e.breakerCommitted(ch) // before the bans it holds are in the cache
	e.committed(ch)
	e.logRateEvents(p.rateEvents)
	e.clearStaged()
	clear(e.stagedAccts)
	e.pending = pending{}
	return ch, nil
}

// ExpireDue lifts every ban that has ended by now.
func (e *Engine) ExpireDue(ctx context.Context, now time.Time) (Change, error) {
	if next := e.NextExpiry(); next.IsZero() || next.After(now) {
		return Change{}, nil
	}
	ch, err := e.update(ctx, now, func(tx *store.Tx) (ch Change, err error) {
		if ch.Lifted, err = tx.ExpireBans(now); err != nil {
			return ch, err
		}
		ch.Released, err = tx.ExpireSuspensions(now)
		return ch, err
	})
	if err != nil {
		return Change{}, err
	}
	e.forget(ch.Lifted)
	e.forgetSuspensions(ch.Released)
	return ch, nil
}

func (e *Engine) forget(bans []store.Ban) {
	e.del(bans...)
	for _, b := range bans {
		for _, j := range e.jails {
			if b.Jail == j.Cfg.Name || b.Jail == ManualJail {
				j.Policy.Lift(rules.KeyOf(b.Prefix.Addr()))
			}
		}
	}
}

// Prune drops in-memory windows that can no longer count. The
// database's history is purged in the background (see Retention).
func (e *Engine) Prune(now time.Time) {
	for _, j := range e.jails {
		j.Policy.Prune(now)
		j.pruneAccounts(now)
		j.pruneNetwork(now)
	}
	e.pruneHistory(now)
}
