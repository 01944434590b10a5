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
	"errors"
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
	"github.com/mailjail/mailjail/mapfile"
	"github.com/mailjail/mailjail/rules"
)

// ManualJail is the jail name of bans made by hand (and of entries taken
// over from a map that existed before mailjail).
const ManualJail = "manual"

// Engine runs the pipeline. Stage, Commit and the manual operations must
// be called from one goroutine; Entries may be called from any.
type Engine struct {
	cfg   *config.Config
	st    *store.Store
	log   *slog.Logger
	loc   *time.Location
	jails []*Jail

	pathJails map[string][]*Jail // followed path -> jails that read it

	mu     sync.Mutex // guards bans, byAddr, ranges, for the map writer
	bans   map[banKey]store.Ban
	byAddr map[netip.Addr]int      // active single-address bans per address
	ranges map[banKey]store.Ban    // active range bans
	staged map[netip.Addr]struct{} // banned by the pending batch
	// next is the earliest end of an active ban (zero: none), kept so that
	// checking for expiry per line is free; nextStale forces a rescan
	// after the ban that ended first is removed.
	next      time.Time
	nextStale bool

	pending pending
	urgent  []store.RateEvent // committed urgent rate events not yet taken
	stats   Stats
}

// Jail is one configured jail at run time.
type Jail struct {
	Cfg     *config.Jail
	Filter  *rules.Filter
	Policy  *rules.Policy
	ignore  *rules.IPSet
	buckets map[string]bool
	rate    *rateState // set for a rate jail
}

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
}

// pending is a staged batch not yet committed.
type pending struct {
	strikes    []store.Strike
	bans       []store.Ban
	rateEvents []store.RateEvent
	positions  map[string]core.Position
	now        time.Time // of the latest Stage: when the positions were read
}

func (p *pending) empty() bool {
	return len(p.strikes) == 0 && len(p.bans) == 0 && len(p.rateEvents) == 0 && len(p.positions) == 0
}

// New builds an engine for cfg's enabled jails on st.
func New(cfg *config.Config, st *store.Store, log *slog.Logger) (*Engine, error) {
	e := &Engine{cfg: cfg, st: st, log: log, loc: cfg.Location(), pathJails: map[string][]*Jail{},
		bans: map[banKey]store.Ban{}, byAddr: map[netip.Addr]int{}, ranges: map[banKey]store.Ban{}, staged: map[netip.Addr]struct{}{}}
	for _, jc := range cfg.EnabledJails() {
		ign, err := rules.NewIPSet(jc.IgnoreIP)
		if err != nil {
			return nil, fmt.Errorf("jail %s: ignoreip: %w", jc.Name, err)
		}
		j := &Jail{Cfg: jc, Policy: rules.NewPolicy(jc.Policy()), ignore: ign}
		if jc.Rate != nil {
			if j.rate, err = newRateState(jc.Rate); err != nil {
				return nil, fmt.Errorf("jail %s: %w", jc.Name, err)
			}
		} else if j.Filter, err = cfg.CompileFilter(jc.Filter); err != nil {
			return nil, fmt.Errorf("jail %s: %w", jc.Name, err)
		}
		if len(jc.Buckets) > 0 {
			j.buckets = map[string]bool{}
			for _, b := range jc.Buckets {
				j.buckets[b] = true
			}
		}
		e.jails = append(e.jails, j)
	}
	return e, nil
}

// Jails returns the running jails.
func (e *Engine) Jails() []*Jail { return e.jails }

// Tracked is the number of addresses holding strikes, over all jails.
func (e *Engine) Tracked() int {
	n := 0
	for _, j := range e.jails {
		n += j.Policy.Tracked()
	}
	return n
}

// Stats returns counters.
func (e *Engine) Stats() Stats { return e.stats }

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

// RestoreBans loads the active bans (so the map can be written at once)
// and the earlier bans that escalation counts.
func (e *Engine) RestoreBans(now time.Time) error {
	bans, err := e.st.ActiveBans()
	if err != nil {
		return err
	}
	e.put(bans...)
	var maxLook time.Duration
	for _, j := range e.jails {
		maxLook = max(maxLook, j.Cfg.Lookback)
	}
	past, err := e.st.BansSince(now.Add(-maxLook))
	if err != nil {
		return err
	}
	for _, b := range past {
		if j := e.jail(b.Jail); j != nil {
			j.Policy.RecordPastBan(b.Prefix.Addr(), b.Since)
		}
	}
	return nil
}

// RestoreStrikes loads the strikes still inside their findtime window
// and the rate jails' buckets: what a restart must not forget.
func (e *Engine) RestoreStrikes(now time.Time) error {
	var maxFind time.Duration
	for _, j := range e.jails {
		maxFind = max(maxFind, j.Cfg.FindTime)
	}
	err := e.st.StrikesSince(now.Add(-maxFind), func(jail []byte, a netip.Addr, at time.Time) error {
		if j := e.jailNamed(jail); j != nil && !e.bannedAt(a, now) {
			j.Policy.Restore(j.key(a), at, now)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return e.restoreBuckets()
}

// Restore is RestoreBans then RestoreStrikes.
func (e *Engine) Restore(now time.Time) error {
	if err := e.RestoreBans(now); err != nil {
		return err
	}
	return e.RestoreStrikes(now)
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

// put records active bans (replacing one of the same jail and prefix).
func (e *Engine) put(bans ...store.Ban) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, b := range bans {
		k := banKey{b.Jail, b.Prefix}
		if _, ok := e.bans[k]; !ok && b.Prefix.IsSingleIP() {
			e.byAddr[b.Prefix.Addr()]++
		}
		e.bans[k] = b
		if !b.Prefix.IsSingleIP() {
			e.ranges[k] = b
		}
		if !b.Until.IsZero() && (e.next.IsZero() || b.Until.Before(e.next)) {
			e.next = b.Until
		}
	}
}

// del forgets active bans.
func (e *Engine) del(bans ...store.Ban) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, b := range bans {
		k := banKey{b.Jail, b.Prefix}
		if _, ok := e.bans[k]; !ok {
			continue
		}
		if old := e.bans[k]; !old.Until.IsZero() && !old.Until.After(e.next) {
			e.nextStale = true
		}
		delete(e.bans, k)
		delete(e.ranges, k)
		if a := b.Prefix.Addr(); b.Prefix.IsSingleIP() {
			if e.byAddr[a]--; e.byAddr[a] <= 0 {
				delete(e.byAddr, a)
			}
		}
	}
}

// bannedAt reports whether a is covered by an active or staged ban at
// now. A banned client's further events are the ban working, not new
// strikes. Single addresses are a map lookup; ranges (manual, few) a scan.
func (e *Engine) bannedAt(a netip.Addr, now time.Time) bool {
	if _, ok := e.staged[a]; ok {
		return true
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.byAddr[a] > 0 {
		return true
	}
	for k, b := range e.ranges {
		if k.prefix.Contains(a) && (b.Until.IsZero() || b.Until.After(now)) {
			return true
		}
	}
	return false
}

// Stage runs lines through the jails at time now (the daemon's clock, or
// the logs' clock in a replay) and adds the strikes, bans and positions to
// the pending batch. Nothing is visible until Commit succeeds.
func (e *Engine) Stage(lines []core.Line, now time.Time) {
	if e.pending.positions == nil {
		e.pending.positions = map[string]core.Position{}
	}
	e.pending.now = now
	for i := range lines {
		l := &lines[i]
		e.stats.Lines++
		if i == len(lines)-1 || lines[i+1].Path != l.Path {
			e.pending.positions[l.Path] = l.Pos
		}
		var (
			at     time.Time
			n      int
			parsed bool
		)
		for _, j := range e.jailsFor(l.Path) {
			// Most lines are not events: a literal check skips them
			// before any timestamp parsing or regex.
			if j.rate == nil && !j.Filter.Prefilter().Pass(l.Text) {
				continue
			}
			if !parsed {
				parsed = true
				var ok bool
				if at, n, ok = rules.ParseTime(l.Text, e.loc, l.Read); !ok {
					at = l.Read
					e.stats.NoTime++
				}
			}
			if j.rate != nil {
				e.stageRate(j, l.Text, at, now)
			} else {
				e.stageMatch(j, l.Text, l.Text[n:], at, now)
			}
		}
	}
}

func (e *Engine) stageMatch(j *Jail, line, msg []byte, at, now time.Time) {
	m, ok := j.Filter.Match(msg)
	if !ok {
		return
	}
	e.stats.Matches++
	if j.buckets != nil && m.Bucket != "" && !j.buckets[m.Bucket] {
		e.stats.OtherBucket++
		return
	}
	e.strike(j, m.Addr, m.Bucket, line, at, now)
}

// strike counts one event of a at time at against j's policy and stages
// the strike and, past maxretry, the ban. bucket names what was exceeded
// (an rspamd bucket, or a rate jail's "messages"/"recipients").
func (e *Engine) strike(j *Jail, a netip.Addr, bucket string, line []byte, at, now time.Time) {
	if j.ignore.Contains(a) {
		e.stats.Ignored++
		return
	}
	if e.bannedAt(a, now) {
		return
	}
	key, prefix := j.key(a), j.banPrefix(a)
	d := j.Policy.Strike(key, at, now)
	if !d.Counted {
		return
	}
	e.stats.Strikes++
	e.pending.strikes = append(e.pending.strikes, store.Strike{Jail: j.Cfg.Name, Addr: a, At: at, Bucket: bucket, Line: string(line)})
	if !d.Ban {
		return
	}
	e.stats.Bans++
	reason := fmt.Sprintf("%d strikes in %s", d.Count, config.FormatDuration(j.Cfg.FindTime))
	if bucket != "" {
		reason += fmt.Sprintf(" (%s exceeded)", bucket)
	}
	if d.Offense > 1 {
		reason += fmt.Sprintf(", offense %d", d.Offense)
	}
	e.pending.bans = append(e.pending.bans, store.Ban{
		Jail: j.Cfg.Name, Prefix: prefix, Since: now, Until: d.Until, Strikes: d.Count, Reason: reason,
	})
	// Later lines of the same batch must see this ban before Commit; the
	// map must not until it is in the database. (Other addresses of a
	// banned IPv6 prefix are stopped by the policy, which marks the key.)
	e.staged[a] = struct{}{}
}

// key is the policy key of a: the address, or for IPv6 with ipv6_prefix
// below 128 the first address of its prefix, so that a client hopping
// through its /64 is one client.
func (j *Jail) key(a netip.Addr) netip.Addr {
	if bits := j.Cfg.IPv6Prefix; a.Is6() && bits > 0 && bits < 128 {
		return netip.PrefixFrom(a, bits).Masked().Addr()
	}
	return a
}

// banPrefix is what a ban of a covers: its address, or its IPv6 prefix
// unless that prefix would also cover an address in ignoreip.
func (j *Jail) banPrefix(a netip.Addr) netip.Prefix {
	if bits := j.Cfg.IPv6Prefix; a.Is6() && bits > 0 && bits < 128 {
		if p := netip.PrefixFrom(a, bits).Masked(); !j.ignore.Overlaps(p) {
			return p
		}
	}
	return rules.HostPrefix(a)
}

// Commit writes the pending batch in one transaction and returns the bans
// it made. On error nothing is written and the batch stays pending, so
// calling Commit again retries it (a full disk loses nothing).
func (e *Engine) Commit(ctx context.Context) ([]store.Ban, error) {
	if e.pending.empty() {
		return nil, nil
	}
	p := &e.pending
	err := e.st.Update(ctx, func(tx *store.Tx) error {
		for _, s := range p.strikes {
			if err := tx.AddStrike(s); err != nil {
				return err
			}
		}
		for i := range p.bans {
			id, err := tx.AddBan(p.bans[i])
			if err != nil {
				return err
			}
			p.bans[i].ID = id
		}
		for _, ev := range p.rateEvents {
			if err := tx.AddRateEvent(ev); err != nil {
				return err
			}
		}
		for _, pos := range p.positions {
			if err := tx.SavePosition(pos, p.now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	bans := p.bans
	e.put(bans...)
	e.logRateEvents(p.rateEvents)
	for _, ev := range p.rateEvents {
		if ev.Urgent {
			e.urgent = append(e.urgent, ev)
		}
	}
	clear(e.staged)
	e.pending = pending{}
	return bans, nil
}

// TakeUrgent returns the urgent rate events committed since the last call
// (the hook for alerts and account suspension).
func (e *Engine) TakeUrgent() []store.RateEvent {
	u := e.urgent
	e.urgent = nil
	return u
}

// Entries returns the map's entries: every active ban.
func (e *Engine) Entries() []mapfile.Entry {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]mapfile.Entry, 0, len(e.bans))
	for k, b := range e.bans {
		out = append(out, mapfile.Entry{Prefix: k.prefix, Until: b.Until, Jail: k.jail})
	}
	return out
}

// ActiveBans returns the active bans from memory.
func (e *Engine) ActiveBans() []store.Ban {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]store.Ban, 0, len(e.bans))
	for _, b := range e.bans {
		out = append(out, b)
	}
	return out
}

// NextExpiry is the earliest end of an active ban, or zero.
func (e *Engine) NextExpiry() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.nextStale {
		e.nextStale = false
		e.next = time.Time{}
		for _, b := range e.bans {
			if !b.Until.IsZero() && (e.next.IsZero() || b.Until.Before(e.next)) {
				e.next = b.Until
			}
		}
	}
	return e.next
}

// ExpireDue lifts every ban that has ended by now and returns them.
func (e *Engine) ExpireDue(ctx context.Context, now time.Time) ([]store.Ban, error) {
	if next := e.NextExpiry(); next.IsZero() || next.After(now) {
		return nil, nil
	}
	var expired []store.Ban
	err := e.st.Update(ctx, func(tx *store.Tx) (err error) {
		expired, err = tx.ExpireBans(now)
		return err
	})
	if err != nil {
		return nil, err
	}
	e.forget(expired)
	return expired, nil
}

func (e *Engine) forget(bans []store.Ban) {
	e.del(bans...)
	for _, b := range bans {
		for _, j := range e.jails {
			if b.Jail == j.Cfg.Name || b.Jail == ManualJail {
				j.Policy.Lift(b.Prefix.Addr())
			}
		}
	}
}

// ErrIgnored refuses a manual ban of an address in ignoreip.
var ErrIgnored = errors.New("address is in ignoreip")

// Ban bans p by hand. d is the length (config.Permanent for no end).
func (e *Engine) Ban(ctx context.Context, p netip.Prefix, jail string, d time.Duration, reason string, now time.Time) (store.Ban, error) {
	if jail == "" {
		jail = ManualJail
	}
	ign, err := rules.NewIPSet(e.cfg.Global.IgnoreIP)
	if err != nil {
		return store.Ban{}, err
	}
	if j := e.jail(jail); j != nil {
		ign = j.ignore
	}
	if ign.Overlaps(p) {
		return store.Ban{}, fmt.Errorf("ban %s: %w", rules.FormatPrefix(p), ErrIgnored)
	}
	b := store.Ban{Jail: jail, Prefix: p, Since: now, Reason: reason}
	if d > 0 {
		b.Until = now.Add(d)
	}
	err = e.st.Update(ctx, func(tx *store.Tx) error {
		id, err := tx.AddBan(b)
		b.ID = id
		return err
	})
	if err != nil {
		return store.Ban{}, err
	}
	e.put(b)
	return b, nil
}

// Unban lifts the active bans of p (in jail, or all jails when empty)
// and clears its strikes. It returns store.ErrNotFound when p is not
// banned.
func (e *Engine) Unban(ctx context.Context, p netip.Prefix, jail string, now time.Time, by string) ([]store.Ban, error) {
	var lifted []store.Ban
	err := e.st.Update(ctx, func(tx *store.Tx) (err error) {
		lifted, err = tx.LiftBans(p, jail, now, by)
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, j := range e.jails {
		if jail == "" || j.Cfg.Name == jail {
			if p.IsSingleIP() {
				j.Policy.Lift(j.key(p.Addr()))
			} else {
				j.Policy.Lift(p.Addr())
			}
		}
	}
	if len(lifted) == 0 {
		return nil, fmt.Errorf("%s is not banned: %w", rules.FormatPrefix(p), store.ErrNotFound)
	}
	e.forget(lifted)
	return lifted, nil
}

// LiftIgnored lifts active bans of addresses that are now in ignoreip (of
// their jail, or the global one for manual bans): an operator who adds a
// gateway to ignoreip and restarts expects it out of the map. A banned
// range that merely overlaps an ignored address is kept, with a warning.
func (e *Engine) LiftIgnored(ctx context.Context, now time.Time) (lifted []store.Ban, err error) {
	global, err := rules.NewIPSet(e.cfg.Global.IgnoreIP)
	if err != nil {
		return nil, err
	}
	for _, b := range e.ActiveBans() {
		ign := global
		if j := e.jail(b.Jail); j != nil {
			ign = j.ignore
		}
		switch {
		case b.Prefix.IsSingleIP() && ign.Contains(b.Prefix.Addr()):
			l, err := e.Unban(ctx, b.Prefix, b.Jail, now, "ignoreip")
			if err != nil {
				return lifted, err
			}
			lifted = append(lifted, l...)
		case !b.Prefix.IsSingleIP() && ign.Overlaps(b.Prefix):
			e.log.Warn("a banned range covers an address in ignoreip; kept, unban it if that is wrong", "range", rules.FormatPrefix(b.Prefix), "jail", b.Jail)
		}
	}
	return lifted, nil
}

// mapAdoptedKey is the meta key recording that mailjail took over a map.
func mapAdoptedKey(path string) string { return "map_adopted:" + path }

// AdoptMap takes over the map at path the first time mailjail writes it:
// entries already there (from fail2ban, or written by hand) become
// permanent manual bans, so no ban is silently dropped. A map that cannot
// be parsed stops the takeover with an error naming its line.
func (e *Engine) AdoptMap(ctx context.Context, path string, prefixes []netip.Prefix, now time.Time) (int, error) {
	if _, done, err := e.st.Meta(mapAdoptedKey(path)); err != nil || done {
		return 0, err
	}
	e.mu.Lock()
	have := map[netip.Prefix]bool{}
	for k := range e.bans {
		have[k.prefix] = true
	}
	e.mu.Unlock()
	var added []store.Ban
	err := e.st.Update(ctx, func(tx *store.Tx) error {
		for _, p := range prefixes {
			if have[p] {
				continue
			}
			have[p] = true
			b := store.Ban{Jail: ManualJail, Prefix: p, Since: now, Reason: "imported from " + path}
			id, err := tx.AddBan(b)
			if err != nil {
				return err
			}
			b.ID = id
			added = append(added, b)
		}
		return tx.SetMeta(mapAdoptedKey(path), now.UTC().Format(time.RFC3339))
	})
	if err != nil {
		return 0, err
	}
	e.put(added...)
	return len(added), nil
}

// MapAdopted reports whether the map at path was taken over already.
func (e *Engine) MapAdopted(path string) (bool, error) {
	_, done, err := e.st.Meta(mapAdoptedKey(path))
	return done, err
}

// Prune drops in-memory windows and database strikes that can no longer
// count, keeping strikes for at least keep so `show` can explain bans.
func (e *Engine) Prune(ctx context.Context, now time.Time, keep time.Duration) error {
	for _, j := range e.jails {
		j.Policy.Prune(now)
		keep = max(keep, j.Cfg.FindTime)
	}
	return e.st.Update(ctx, func(tx *store.Tx) error {
		_, err := tx.PruneStrikes(now.Add(-keep))
		return err
	})
}
