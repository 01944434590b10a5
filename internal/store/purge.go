package store

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"time"
)

// Retention says what Purge keeps: history younger than Age
// (dbpurgeage), active bans and suspensions whatever their age, every
// jail's strikes inside its findtime, and the log lines of the
// MaxMatches newest strikes of an address in a jail (dbmaxmatches).
type Retention struct {
	Now      time.Time
	Age      time.Duration
	FindTime map[string]time.Duration // by jail name; a jail not named keeps strikes for Age
	// MaxMatches is how many of an address's newest strikes in a jail
	// keep their log line; older ones keep their time and bucket.
	MaxMatches int
}

// PurgeOptions bound the work of one transaction: the daemon's loop
// waits for the store's one connection while a batch holds it, so a
// batch must be short.
type PurgeOptions struct {
	Batch       int // rows per transaction; 0: DefaultPurgeBatch
	VacuumPages int // pages given back per transaction; 0: DefaultVacuumPages
	// OnBatch, when set, is called after each transaction with what it
	// did and how many rows (pages for "vacuum"): for tests and
	// benchmarks.
	OnBatch func(what string, n int64)
	// Pause, when set, is called after each transaction with how long
	// it held the connection: the daemon rests as long, so that its
	// loop finds the connection free at least half of the time.
	Pause func(ctx context.Context, took time.Duration)
}

// DefaultPurgeBatch and DefaultVacuumPages keep one purge transaction at
// a few milliseconds (bench/retention measures it: with 500 rows the p99
// of the loop's commit during a purge was twice that with 200): about
// as long as the fsync of the commit it may delay.
const (
	DefaultPurgeBatch  = 200
	DefaultVacuumPages = 256
)

// PurgeStats counts what a purge did.
type PurgeStats struct {
	Removed      map[string]int64 // rows deleted, by table
	LinesCleared int64            // strikes whose line was cleared (dbmaxmatches)
	PagesFreed   int64            // pages the file shrank by
	Batches      int              // transactions
}

// metaLinesUpto is the meta key of the time up to which strikes' lines
// have been trimmed to dbmaxmatches (unix nanoseconds): each purge
// trims only the strikes stored since, and a restart resumes there.
const metaLinesUpto = "purge_lines_upto"

// linesLag is how late after its log time a strike may be stored and
// still have its address's lines trimmed by the next purge: a log read
// with delay, or a restart. An address whose strike comes later keeps
// one line more, until its next strike or its purge by age.
const linesLag = 2 * time.Minute

// purgeStep is one kind of row the purge deletes: query selects up to
// ?2 keys of rows older than ?1, del deletes the rows of those keys
// (the same query inside IN), both by index.
type purgeStep struct {
	table string
	keys  string
}

var purgeSteps = []purgeStep{
	{"account_strikes", `SELECT rowid FROM account_strikes WHERE at < ?1 ORDER BY at LIMIT ?2`},
	{"bans", `SELECT id FROM bans WHERE lifted IS NOT NULL AND lifted < ?1 ORDER BY lifted LIMIT ?2`},
	{"suspensions", `SELECT id FROM suspensions WHERE lifted IS NOT NULL AND lifted < ?1 ORDER BY lifted LIMIT ?2`},
	{"rate_events", `SELECT id FROM rate_events WHERE at < ?1 ORDER BY at LIMIT ?2`},
	{"outbox", `SELECT id FROM outbox WHERE (done IS NOT NULL OR gave_up IS NOT NULL) AND coalesce(done, gave_up) < ?1 ORDER BY coalesce(done, gave_up) LIMIT ?2`},
}

// Purge removes what r does not keep, in transactions of at most
// opt.Batch rows each, then clears the lines of strikes beyond
// r.MaxMatches and gives the freed pages back to the file system in
// steps of opt.VacuumPages. It stops between transactions when ctx ends;
// what it did is committed, and the next purge goes on from there.
func (s *Store) Purge(ctx context.Context, r Retention, opt PurgeOptions) (PurgeStats, error) {
	if opt.Batch <= 0 {
		opt.Batch = DefaultPurgeBatch
	}
	if opt.VacuumPages <= 0 {
		opt.VacuumPages = DefaultVacuumPages
	}
	p := &purge{s: s, r: r, opt: opt, st: PurgeStats{Removed: map[string]int64{}}}
	err := p.run(ctx)
	return p.st, err
}

type purge struct {
	s   *Store
	r   Retention
	opt PurgeOptions
	st  PurgeStats
	err error // a checkpoint that failed: the purge stops
}

func (p *purge) run(ctx context.Context) error {
	jails, err := p.s.jails()
	if err != nil {
		return err
	}
	// Account strikes are kept for the longest findtime of any jail: a
	// jail's own findtime would need its name in their index.
	keepAccounts := p.r.Age
	for _, j := range jails {
		if err := p.strikes(ctx, j); err != nil {
			return err
		}
	}
	for _, ft := range p.r.FindTime {
		keepAccounts = max(keepAccounts, ft)
	}
	for _, step := range purgeSteps {
		keep := p.r.Age
		if step.table == "account_strikes" {
			keep = keepAccounts
		}
		del := `DELETE FROM ` + step.table + ` WHERE rowid IN (` + step.keys + `)`
		if err := p.batches(ctx, step.table, func(t *Tx) (int64, error) {
			return t.affected(del, p.r.Now.Add(-keep).UnixNano(), p.opt.Batch)
		}); err != nil {
			return err
		}
	}
	for _, j := range jails {
		if err := p.trimLines(ctx, j.id); err != nil {
			return err
		}
	}
	if err := p.s.Update(ctx, func(t *Tx) error {
		return t.SetMeta(metaLinesUpto, strconv.FormatInt(p.r.Now.UnixNano(), 10))
	}); err != nil {
		return err
	}
	return p.vacuum(ctx)
}

// strikes deletes a jail's strikes older than both dbpurgeage and its
// findtime, oldest first, through the table's (jail, at) order.
func (p *purge) strikes(ctx context.Context, j jailRow) error {
	before := p.r.Now.Add(-max(p.r.Age, p.r.FindTime[j.name])).UnixNano()
	return p.batches(ctx, "strikes", func(t *Tx) (int64, error) {
		return t.affected(`DELETE FROM strikes WHERE (jail, at, addr, n) IN
			(SELECT jail, at, addr, n FROM strikes WHERE jail = ?1 AND at < ?2 ORDER BY jail, at LIMIT ?3)`, j.id, before, p.opt.Batch)
	})
}

// batches runs fn in transactions until one does less than a batch.
func (p *purge) batches(ctx context.Context, what string, fn func(*Tx) (int64, error)) error {
	for {
		if err := cmp.Or(ctx.Err(), p.err); err != nil {
			return err
		}
		var n int64
		start := time.Now()
		if err := p.s.Update(ctx, func(t *Tx) (err error) {
			n, err = fn(t)
			return err
		}); err != nil {
			return fmt.Errorf("purge %s: %w", what, err)
		}
		p.done(ctx, what, n, start)
		p.st.Removed[what] += n
		if n < int64(p.opt.Batch) {
			return nil
		}
	}
}

// done counts a transaction that began at start, and pauses.
func (p *purge) done(ctx context.Context, what string, n int64, start time.Time) {
	p.st.Batches++
	if p.opt.OnBatch != nil {
		p.opt.OnBatch(what, n)
	}
	took := time.Since(start)
	if err := p.s.checkpointWAL(ctx); err != nil {
		p.err = err
	}
	if p.opt.Pause != nil {
		p.opt.Pause(ctx, took)
	}
}

// checkpointWAL copies the write-ahead log into the database through a
// connection of its own. A purge writes pages fast: left to SQLite, the
// log would be checkpointed inside a commit every 1,000 pages, holding
// the one connection the daemon's loop commits on for as long (up to a
// few hundred milliseconds). A passive checkpoint waits for no one, and
// writers go on meanwhile.
func (s *Store) checkpointWAL(ctx context.Context) error {
	if s.checkpoint == nil {
		db, err := sql.Open(driverName, s.dsn)
		if err != nil {
			return fmt.Errorf("open checkpoint connection: %w", err)
		}
		db.SetMaxOpenConns(1)
		s.checkpoint = db
	}
	if _, err := s.checkpoint.ExecContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`); err != nil && ctx.Err() == nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// trimLines clears the lines of a jail's strikes that dbmaxmatches newer
// strikes of the same address have replaced. Only addresses with strikes
// stored since the last purge can have new ones to clear: they are read
// a batch at a time, in the table's order.
func (p *purge) trimLines(ctx context.Context, jail int64) error {
	from, err := p.s.metaInt(metaLinesUpto)
	if err != nil {
		return err
	}
	at, addr, n := from-int64(linesLag), []byte{}, int64(-1)
	for {
		if err := cmp.Or(ctx.Err(), p.err); err != nil {
			return err
		}
		addrs, last, err := p.stored(jail, at, addr, n)
		if err != nil || len(addrs) == 0 {
			return err
		}
		at, addr, n = last.at, last.addr, last.n
		var cleared int64
		start := time.Now()
		if err := p.s.Update(ctx, func(t *Tx) (err error) {
			cleared, err = t.clearLines(jail, addrs, p.r.MaxMatches)
			return err
		}); err != nil {
			return fmt.Errorf("trim strike lines: %w", err)
		}
		p.done(ctx, "lines", cleared, start)
		p.st.LinesCleared += cleared
	}
}

// clearLines clears the lines of the strikes of addrs in jail but for
// the keep newest of each address, and returns how many it cleared.
//
// A row is deleted and inserted again without its line, not updated:
// SQLite merges the pages a delete leaves underfull, never those an
// update shrinks, so updated lines would leave their space in the
// pages. (One INSERT OR REPLACE ... SELECT per address does the same
// through a temporary table: several times slower.) INDEXED BY: without
// it SQLite prefers the table's (jail, at) order, and reads every
// strike of the jail.
func (t *Tx) clearLines(jail int64, addrs [][]byte, keep int) (int64, error) {
	find := `SELECT at, n, bucket FROM strikes INDEXED BY strikes_addr WHERE addr = ?1 AND jail = ?2 AND line != '' AND (at, n) <
		(SELECT at, n FROM strikes WHERE addr = ?1 AND jail = ?2 ORDER BY at DESC, n DESC LIMIT 1 OFFSET ?3)`
	if keep == 0 {
		find = `SELECT at, n, bucket FROM strikes INDEXED BY strikes_addr WHERE addr = ?1 AND jail = ?2 AND line != '' AND ?3 = 0`
	}
	var stmts [3]*sql.Stmt
	for i, q := range []string{find,
		`DELETE FROM strikes WHERE jail = ?1 AND at = ?2 AND addr = ?3 AND n = ?4`,
		`INSERT INTO strikes (jail, at, addr, n, bucket, line) VALUES (?1, ?2, ?3, ?4, ?5, '')`} {
		st, err := t.tx.Prepare(q)
		if err != nil {
			return 0, err
		}
		defer st.Close()
		stmts[i] = st
	}
	type lined struct {
		at, n  int64
		bucket string
	}
	var cleared int64
	for _, a := range addrs {
		rows, err := stmts[0].Query(a, jail, max(keep-1, 0))
		if err != nil {
			return 0, err
		}
		var old []lined
		for rows.Next() {
			var l lined
			if err := rows.Scan(&l.at, &l.n, &l.bucket); err != nil {
				rows.Close()
				return 0, err
			}
			old = append(old, l)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return 0, err
		}
		for _, l := range old {
			if _, err := stmts[1].Exec(jail, l.at, a, l.n); err != nil {
				return 0, err
			}
			if _, err := stmts[2].Exec(jail, l.at, a, l.n, l.bucket); err != nil {
				return 0, err
			}
		}
		cleared += int64(len(old))
	}
	return cleared, nil
}

// trimShare divides the batch for the strikes whose addresses one
// transaction trims: each address costs a query and two writes per line
// cleared.
const trimShare = 5

type strikeKey struct {
	at   int64
	addr []byte
	n    int64
}

// stored returns the distinct addresses of up to a batch of a jail's
// strikes stored after key (at, addr, n) and before the purge's time,
// and the last key read.
func (p *purge) stored(jail, at int64, addr []byte, n int64) ([][]byte, strikeKey, error) {
	rows, err := p.s.db.Query(`SELECT at, addr, n FROM strikes WHERE jail = ?1 AND (at, addr, n) > (?2, ?3, ?4) AND at < ?5 ORDER BY jail, at, addr, n LIMIT ?6`,
		jail, at, addr, n, p.r.Now.UnixNano(), max(p.opt.Batch/trimShare, 1))
	if err != nil {
		return nil, strikeKey{}, fmt.Errorf("read strikes to trim: %w", err)
	}
	defer rows.Close()
	seen := map[string]bool{}
	var out [][]byte
	var last strikeKey
	for rows.Next() {
		if err := rows.Scan(&last.at, &last.addr, &last.n); err != nil {
			return nil, last, fmt.Errorf("read strikes to trim: %w", err)
		}
		if a := string(last.addr); !seen[a] {
			seen[a] = true
			out = append(out, []byte(a))
		}
	}
	return out, last, rows.Err()
}

// vacuum gives the free pages back to the file system, a few at a time.
func (p *purge) vacuum(ctx context.Context) error {
	for {
		if err := cmp.Or(ctx.Err(), p.err); err != nil {
			return err
		}
		var free int64
		if err := p.s.db.QueryRowContext(ctx, `PRAGMA freelist_count`).Scan(&free); err != nil {
			return fmt.Errorf("count free pages: %w", err)
		}
		if free == 0 {
			return nil
		}
		start := time.Now()
		if err := p.s.incrementalVacuum(ctx, min(free, int64(p.opt.VacuumPages))); err != nil {
			return err
		}
		var after int64
		if err := p.s.db.QueryRowContext(ctx, `PRAGMA freelist_count`).Scan(&after); err != nil {
			return fmt.Errorf("count free pages: %w", err)
		}
		if after >= free {
			// Not in incremental mode (a database this version did
			// not create or upgrade): nothing to give back this way.
			return nil
		}
		p.st.PagesFreed += free - after
		p.done(ctx, "vacuum", free-after, start)
	}
}

// incrementalVacuum gives back up to pages free pages. SQLite frees
// one page per step of the statement: Exec would take one step, so the
// rows are read to the end.
func (s *Store) incrementalVacuum(ctx context.Context, pages int64) error {
	rows, err := s.db.QueryContext(ctx, fmt.Sprintf(`PRAGMA incremental_vacuum(%d)`, pages))
	if err != nil {
		return fmt.Errorf("incremental vacuum: %w", err)
	}
	for rows.Next() {
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("incremental vacuum: %w", err)
	}
	return nil
}

type jailRow struct {
	id   int64
	name string
}

func (s *Store) jails() ([]jailRow, error) {
	rows, err := s.db.Query(`SELECT id, name FROM jails ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("read jails: %w", err)
	}
	defer rows.Close()
	var out []jailRow
	for rows.Next() {
		var j jailRow
		if err := rows.Scan(&j.id, &j.name); err != nil {
			return nil, fmt.Errorf("read jails: %w", err)
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

// metaInt reads an integer meta value (0: not set).
func (s *Store) metaInt(key string) (int64, error) {
	v, ok, err := s.Meta(key)
	if err != nil || !ok {
		return 0, err
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("meta %s = %q: %w", key, v, err)
	}
	return n, nil
}

// affected runs a write statement and returns the rows it changed.
func (t *Tx) affected(query string, args ...any) (int64, error) {
	res, err := t.exec(query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
