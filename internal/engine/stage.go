package engine

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/core"
	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/rules"
)

// Stage runs lines through the jails at time now (the daemon's clock, or
// the logs' clock in a replay) and adds the strikes, bans and positions to
// the pending batch. Nothing is visible until Commit succeeds.
func (e *Engine) Stage(lines []core.Line, now time.Time) {
	if e.pending.positions == nil {
		e.pending.positions = map[string]core.Position{}
	}
	e.pending.now = now
	run, runMatches := 0, e.stats.Matches // where the current path's run began
	for i := range lines {
		l := &lines[i]
		e.stats.Lines++
		last := i == len(lines)-1 || lines[i+1].Path != l.Path
		if last {
			e.pending.positions[l.Path] = l.Pos
		}
		var shared lineTime // the built-in formats' reading, shared by the jails
		e.linePos = l.Pos
		for _, j := range e.jailsFor(l.Path) {
			// Most lines are not events: a literal check skips them
			// before any timestamp parsing or regex.
			if j.rate == nil && !j.Filter.Prefilter().Pass(l.Text) {
				continue
			}
			j.counters.Prefiltered++
			var at time.Time
			var n int
			if j.rate == nil && j.Filter.HasDatePattern() {
				own := e.parseTime(j.Filter.ParseTime, l)
				at, n = e.clampFuture(j, own, now), own.n
			} else {
				if !shared.done {
					shared = e.parseTime(rules.ParseTime, l)
				}
				at, n = e.clampFuture(j, shared, now), shared.n
			}
			if j.rate != nil {
				e.stageRate(j, l.Text, at, now)
			} else {
				e.stageMatch(j, l.Text, l.Text[n:], at, now)
			}
		}
		if last {
			// Counted once per run of one path's lines, not per line.
			e.countSource(l.Path, uint64(i+1-run), e.stats.Matches-runMatches, now)
			run, runMatches = i+1, e.stats.Matches
		}
	}
}

// countSource adds a run of n lines of path, with its matches, read at now.
func (e *Engine) countSource(path string, n, matches uint64, now time.Time) {
	c := e.sources[path]
	if c == nil {
		c = &SourceCounters{}
		e.sources[path] = c
	}
	c.Lines += n
	c.Matches += matches
	c.Last = now
}

// lineTime is a line's time as one timestamp format read it.
type lineTime struct {
	done bool
	at   time.Time // the read time when the line has no usable time
	n    int       // bytes of the timestamp (cut even when not usable)
}

// parseTime reads l's time with parse, falling back to the read time.
func (e *Engine) parseTime(parse func([]byte, *time.Location, time.Time) (time.Time, int, bool), l *core.Line) lineTime {
	at, n, ok := parse(l.Text, e.loc, l.Read)
	if !ok {
		at = l.Read
		e.stats.NoTime++
	}
	return lineTime{done: true, at: at, n: n}
}

// maxFutureSkew is how far ahead of the time it is read a line's time may
// be (clocks of the logger and of mailjail differ a little); a line from
// further in the future is taken at the time it is read, so that it
// cannot hold strikes in the window for ever, and counted.
const maxFutureSkew = time.Minute

func (e *Engine) clampFuture(j *Jail, t lineTime, now time.Time) time.Time {
	if !t.at.After(now.Add(maxFutureSkew)) {
		return t.at
	}
	if j.counters.Future++; j.counters.Future == 1 {
		e.log.Warn("a log line is dated in the future; taken at the time it was read (is the log's clock or the timezone setting wrong?)",
			"jail", j.Cfg.Name, "line_time", t.at, "read_time", now)
	}
	return now
}

func (e *Engine) stageMatch(j *Jail, line, msg []byte, at, now time.Time) {
	m, ok := j.Filter.Match(msg)
	if !ok {
		return
	}
	e.stats.Matches++
	j.counters.Matches++
	// A filter that names buckets and could not name this one (an
	// rspamd bucket with its own message and no info line) might have
	// been any bucket: it strikes no jail that is limited to some.
	if j.buckets != nil && (m.Bucket != "" || j.Filter.CapturesBucket()) && !j.buckets[m.Bucket] {
		e.stats.OtherBucket++
		return
	}
	if j.acct == nil {
		e.strike(j, m.Addr, m.Bucket, line, at, now)
		return
	}
	if m.User == "" {
		e.stats.NoAccount++
		return
	}
	e.see(m.User, at)
	e.strikeAccount(j, m.User, m.Addr, m.Bucket, line, at, now)
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
	d := e.decide(j, key, at, now)
	e.noteStale(j, d, at, now)
	if !d.Counted {
		return
	}
	e.stats.Strikes++
	j.counters.Strikes++
	e.pending.strikes = append(e.pending.strikes, store.Strike{Jail: j.Cfg.Name, Addr: a, At: at, Bucket: bucket, Line: string(line)})
	if !d.Ban {
		return
	}
	e.stats.Bans++
	reason := fmt.Sprintf("%d %s in %s", d.Count, plural(d.Count, "strike", "strikes"), config.FormatDuration(j.Cfg.FindTime))
	if bucket != "" {
		reason += fmt.Sprintf(" (%s exceeded)", bucket)
	}
	if d.Offense > 1 {
		reason += fmt.Sprintf(", offense %d", d.Offense)
	}
	e.stageBan(j, a, store.Ban{
		Jail: j.Cfg.Name, Prefix: prefix, Since: now, Until: d.Until, Strikes: d.Count, Reason: reason, Offense: d.Offense,
	})
}

// noteStale counts an event the policy found older than findtime, and
// warns the first time.
func (e *Engine) noteStale(j *Jail, d rules.Decision, at, now time.Time) {
	if !d.Stale {
		return
	}
	if j.counters.TooOld++; j.counters.TooOld == 1 {
		e.log.Warn("an event older than findtime was not counted (a log read late, or a wrong timezone setting makes every event look old)",
			"jail", j.Cfg.Name, "event_time", at, "now", now, "findtime", config.FormatDuration(j.Cfg.FindTime), "timezone", e.loc.String())
	}
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

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
