// Package store keeps mailjail's state in SQLite: strikes, bans (active and
// history), read positions and a few meta values. The database is the
// source of truth: the rspamd map is rendered from it, and after a crash,
// kill -9 or restart the daemon rebuilds everything from it.
//
// The database runs in WAL mode with synchronous=FULL, so a committed ban
// survives a crash or power loss, and readers (the CLI) never block the
// daemon's writer. Every change is one transaction, so a full disk or a
// killed process leaves the previous state intact.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	_ "github.com/mattn/go-sqlite3" // database/sql driver

	"github.com/mailjail/mailjail/internal/core"
	"github.com/mailjail/mailjail/rules"
)

// Store is an open database.
type Store struct {
	db   *sql.DB
	path string

	stmts map[string]*sql.Stmt // prepared once: compiling SQL costs as much as running it
}

// Options tune Open.
type Options struct {
	// Durable=false trades crash safety for speed (synchronous=OFF): for
	// throw-away databases such as a replay's.
	Durable  bool
	ReadOnly bool
}

// Open opens (creating if needed) the database at path and migrates it.
func Open(path string, opt Options) (*Store, error) {
	if !opt.ReadOnly {
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return nil, fmt.Errorf("open database %s: %w", path, err)
		}
	}
	sync := "FULL"
	if !opt.Durable {
		sync = "OFF"
	}
	dsn := fmt.Sprintf("file:%s?mode=rwc&_journal_mode=WAL&_synchronous=%s&_busy_timeout=10000&_txlock=immediate", path, sync)
	if opt.ReadOnly {
		// A reader of a WAL database needs no pragma; the daemon set WAL.
		dsn = fmt.Sprintf("file:%s?mode=ro&_busy_timeout=10000", path)
	}
	db, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	// One connection: SQLite has one writer anyway, and a single
	// connection makes every statement see the same transaction state.
	db.SetMaxOpenConns(1)
	s := &Store{db: db, path: path}
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	if !opt.ReadOnly {
		if err := s.migrate(); err != nil {
			db.Close()
			return nil, fmt.Errorf("migrate database %s: %w", path, err)
		}
		if err := s.prepare(); err != nil {
			db.Close()
			return nil, fmt.Errorf("open database %s: %w", path, err)
		}
	}
	return s, nil
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// Close closes the database.
func (s *Store) Close() error {
	for _, st := range s.stmts {
		st.Close()
	}
	return s.db.Close()
}

// migrations are applied in order; PRAGMA user_version records how many
// ran. Never edit one that has shipped: add another.
var migrations = []string{
	`CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
	 CREATE TABLE strikes (
		id INTEGER PRIMARY KEY,
		jail TEXT NOT NULL,
		addr TEXT NOT NULL,
		at INTEGER NOT NULL,          -- unix nanoseconds, from the log line
		bucket TEXT NOT NULL DEFAULT '',
		line TEXT NOT NULL DEFAULT ''
	 );
	 CREATE INDEX strikes_addr ON strikes(addr, at);
	 CREATE INDEX strikes_at ON strikes(at);
	 CREATE TABLE bans (
		id INTEGER PRIMARY KEY,
		jail TEXT NOT NULL,
		addr TEXT NOT NULL,           -- address or CIDR, canonical
		since INTEGER NOT NULL,
		until INTEGER,                -- NULL: permanent
		strikes INTEGER NOT NULL DEFAULT 0,
		reason TEXT NOT NULL DEFAULT '',
		lifted INTEGER,               -- NULL while active
		lifted_by TEXT NOT NULL DEFAULT ''
	 );
	 CREATE UNIQUE INDEX bans_active ON bans(jail, addr) WHERE lifted IS NULL;
	 CREATE INDEX bans_addr ON bans(addr, since);
	 CREATE TABLE positions (
		path TEXT PRIMARY KEY,
		dev INTEGER NOT NULL, ino INTEGER NOT NULL,
		offset INTEGER NOT NULL, head INTEGER NOT NULL,
		cursor TEXT NOT NULL DEFAULT '',
		updated INTEGER NOT NULL
	 );`,
	`CREATE TABLE rate_events (
		id INTEGER PRIMARY KEY,
		jail TEXT NOT NULL,
		key TEXT NOT NULL,            -- account, sender or address the rate is counted by
		what TEXT NOT NULL,           -- "messages" or "recipients"
		at INTEGER NOT NULL,
		level REAL NOT NULL,          -- bucket level the event tried to reach
		burst REAL NOT NULL,
		rate TEXT NOT NULL,
		urgent INTEGER NOT NULL DEFAULT 0,
		detail TEXT NOT NULL DEFAULT ''
	 );
	 CREATE INDEX rate_events_key ON rate_events(key, at);
	 CREATE TABLE buckets (
		jail TEXT NOT NULL,
		what TEXT NOT NULL,
		key TEXT NOT NULL,
		level REAL NOT NULL,
		last INTEGER NOT NULL,
		PRIMARY KEY (jail, what, key)
	 );`,
	// Restoring strikes at start reads only the index.
	`CREATE INDEX strikes_restore ON strikes(at, jail, addr, bucket);
	 DROP INDEX strikes_at;`,
	// status counts strikes per jail from this index instead of sorting
	// every strike (seconds and hundreds of MB with 10M strikes).
	`CREATE INDEX strikes_jail ON strikes(jail);`,
}

func (s *Store) migrate() error {
	var v int
	if err := s.db.QueryRow(`PRAGMA user_version`).Scan(&v); err != nil {
		return err
	}
	if v > len(migrations) {
		return fmt.Errorf("database schema version %d is newer than this mailjail knows (%d): refusing to touch it", v, len(migrations))
	}
	for i := v; i < len(migrations); i++ {
		tx, err := s.db.Begin()
		if err != nil {
			return err
		}
		if _, err := tx.Exec(migrations[i]); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
		if _, err := tx.Exec(fmt.Sprintf(`PRAGMA user_version = %d`, i+1)); err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	return nil
}

// Strike is one counted event.
type Strike struct {
	Jail   string
	Addr   netip.Addr
	At     time.Time
	Bucket string
	Line   string
}

// Ban is one ban, active or lifted.
type Ban struct {
	ID       int64
	Jail     string
	Prefix   netip.Prefix
	Since    time.Time
	Until    time.Time // zero: permanent
	Strikes  int
	Reason   string
	Lifted   time.Time // zero while active
	LiftedBy string
}

// Permanent reports whether the ban has no end.
func (b Ban) Permanent() bool { return b.Until.IsZero() }

// ErrNotFound is returned when a lifted or looked-up ban does not exist.
var ErrNotFound = errors.New("not found")

// maxLineBytes bounds the log line kept with a strike: enough to see why,
// not enough for a hostile line to bloat the database.
const maxLineBytes = 1024

// Tx is a write transaction. All of a batch's strikes, bans and positions
// go into one, so they are saved together or not at all.
type Tx struct {
	tx *sql.Tx
	s  *Store
}

// exec runs a write statement of the transaction: one prepared by
// prepare when it is a hot one, else compiled now.
func (t *Tx) exec(query string, args ...any) (sql.Result, error) {
	if st, ok := t.s.stmts[query]; ok {
		return t.tx.Stmt(st).Exec(args...)
	}
	return t.tx.Exec(query, args...)
}

// Hot write statements, prepared when the store opens (not inside a
// transaction: the store has one connection, which a transaction holds).
const (
	sqlAddStrike    = `INSERT INTO strikes (jail, addr, at, bucket, line) VALUES (?, ?, ?, ?, ?)`
	sqlSavePosition = `INSERT INTO positions (path, dev, ino, offset, head, cursor, updated) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(path) DO UPDATE SET dev=excluded.dev, ino=excluded.ino, offset=excluded.offset, head=excluded.head, cursor=excluded.cursor, updated=excluded.updated`
	sqlAddRateEvent = `INSERT INTO rate_events (jail, key, what, at, level, burst, rate, urgent, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`
)

func (s *Store) prepare() error {
	s.stmts = map[string]*sql.Stmt{}
	for _, q := range []string{sqlAddStrike, sqlSavePosition, sqlAddRateEvent} {
		st, err := s.db.Prepare(q)
		if err != nil {
			return fmt.Errorf("prepare: %w", err)
		}
		s.stmts[q] = st
	}
	return nil
}

// Update runs fn in one write transaction and commits it if fn succeeds.
func (s *Store) Update(ctx context.Context, fn func(*Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin %s: %w", s.path, err)
	}
	if err := fn(&Tx{tx: tx, s: s}); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit %s: %w", s.path, err)
	}
	return nil
}

// AddStrike records a strike.
func (t *Tx) AddStrike(st Strike) error {
	line := st.Line
	if len(line) > maxLineBytes {
		line = line[:maxLineBytes]
	}
	_, err := t.exec(sqlAddStrike,
		st.Jail, st.Addr.String(), st.At.UnixNano(), st.Bucket, line)
	if err != nil {
		return fmt.Errorf("add strike: %w", err)
	}
	return nil
}

// AddBan records a new active ban, replacing an active ban of the same
// address in the same jail (a manual ban that extends or shortens it).
func (t *Tx) AddBan(b Ban) (int64, error) {
	key := rules.FormatPrefix(b.Prefix)
	if _, err := t.exec(`UPDATE bans SET lifted = ?, lifted_by = 'replaced' WHERE jail = ? AND addr = ? AND lifted IS NULL`,
		b.Since.UnixNano(), b.Jail, key); err != nil {
		return 0, fmt.Errorf("replace ban %s: %w", key, err)
	}
	res, err := t.exec(`INSERT INTO bans (jail, addr, since, until, strikes, reason) VALUES (?, ?, ?, ?, ?, ?)`,
		b.Jail, key, b.Since.UnixNano(), nullTime(b.Until), b.Strikes, b.Reason)
	if err != nil {
		return 0, fmt.Errorf("add ban %s: %w", key, err)
	}
	return res.LastInsertId()
}

// LiftBans ends the active bans of p (in jail, or in every jail when jail
// is empty) and deletes p's strikes, so an unbanned address starts from
// zero. It returns the bans it lifted.
func (t *Tx) LiftBans(p netip.Prefix, jail string, at time.Time, by string) ([]Ban, error) {
	key := rules.FormatPrefix(p)
	bans, err := queryBans(t.tx, `WHERE addr = ? AND (? = '' OR jail = ?) AND lifted IS NULL`, key, jail, jail)
	if err != nil {
		return nil, err
	}
	if _, err := t.exec(`UPDATE bans SET lifted = ?, lifted_by = ? WHERE addr = ? AND (? = '' OR jail = ?) AND lifted IS NULL`,
		at.UnixNano(), by, key, jail, jail); err != nil {
		return nil, fmt.Errorf("lift %s: %w", key, err)
	}
	if p.IsSingleIP() {
		if _, err := t.exec(`DELETE FROM strikes WHERE addr = ? AND (? = '' OR jail = ?)`, p.Addr().String(), jail, jail); err != nil {
			return nil, fmt.Errorf("clear strikes of %s: %w", key, err)
		}
	}
	for i := range bans {
		bans[i].Lifted, bans[i].LiftedBy = at, by
	}
	return bans, nil
}

// ExpireBans lifts every active ban whose end is at or before now and
// returns them.
func (t *Tx) ExpireBans(now time.Time) ([]Ban, error) {
	bans, err := queryBans(t.tx, `WHERE lifted IS NULL AND until IS NOT NULL AND until <= ?`, now.UnixNano())
	if err != nil {
		return nil, err
	}
	if _, err := t.exec(`UPDATE bans SET lifted = until, lifted_by = 'expired' WHERE lifted IS NULL AND until IS NOT NULL AND until <= ?`, now.UnixNano()); err != nil {
		return nil, fmt.Errorf("expire bans: %w", err)
	}
	for i := range bans {
		bans[i].Lifted, bans[i].LiftedBy = bans[i].Until, "expired"
	}
	return bans, nil
}

// SavePosition records where reading of a source stopped, at now.
func (t *Tx) SavePosition(p core.Position, now time.Time) error {
	_, err := t.exec(sqlSavePosition,
		p.Path, int64(p.Dev), int64(p.Ino), p.Offset, int64(p.Head), p.Cursor, now.UnixNano())
	if err != nil {
		return fmt.Errorf("save position of %s: %w", p.Path, err)
	}
	return nil
}

// SetMeta sets a meta value.
func (t *Tx) SetMeta(key, value string) error {
	_, err := t.exec(`INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`, key, value)
	if err != nil {
		return fmt.Errorf("set meta %s: %w", key, err)
	}
	return nil
}

// RateEvent is a rate jail's key going over a limit.
type RateEvent struct {
	Jail   string
	Key    string
	What   string // "messages" or "recipients"
	At     time.Time
	Level  float64
	Burst  float64
	Rate   string
	Urgent bool
	Detail string
}

// AddRateEvent records a rate event.
func (t *Tx) AddRateEvent(e RateEvent) error {
	_, err := t.exec(sqlAddRateEvent,
		e.Jail, e.Key, e.What, e.At.UnixNano(), e.Level, e.Burst, e.Rate, e.Urgent, e.Detail)
	if err != nil {
		return fmt.Errorf("add rate event for %s: %w", e.Key, err)
	}
	return nil
}

// BucketState is one saved leaky bucket.
type BucketState struct {
	Key   string
	Level float64
	Last  time.Time
}

// SaveBuckets replaces the saved buckets of one jail's table.
func (t *Tx) SaveBuckets(jail, what string, states []BucketState) error {
	if _, err := t.exec(`DELETE FROM buckets WHERE jail = ? AND what = ?`, jail, what); err != nil {
		return fmt.Errorf("save buckets of %s: %w", jail, err)
	}
	stmt, err := t.tx.Prepare(`INSERT INTO buckets (jail, what, key, level, last) VALUES (?, ?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("save buckets of %s: %w", jail, err)
	}
	defer stmt.Close()
	for _, b := range states {
		if _, err := stmt.Exec(jail, what, b.Key, b.Level, b.Last.UnixNano()); err != nil {
			return fmt.Errorf("save bucket %s: %w", b.Key, err)
		}
	}
	return nil
}

// PruneStrikes deletes strikes older than before; they can no longer count.
func (t *Tx) PruneStrikes(before time.Time) (int64, error) {
	res, err := t.exec(`DELETE FROM strikes WHERE at < ?`, before.UnixNano())
	if err != nil {
		return 0, fmt.Errorf("prune strikes: %w", err)
	}
	return res.RowsAffected()
}

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

type querier interface {
	Query(query string, args ...any) (*sql.Rows, error)
}

const banColumns = `SELECT id, jail, addr, since, until, strikes, reason, lifted, lifted_by FROM bans `

func queryBans(q querier, where string, args ...any) ([]Ban, error) {
	rows, err := q.Query(banColumns+where, args...)
	if err != nil {
		return nil, fmt.Errorf("query bans: %w", err)
	}
	defer rows.Close()
	var out []Ban
	for rows.Next() {
		var b Ban
		var addr string
		var since int64
		var until, lifted sql.NullInt64
		if err := rows.Scan(&b.ID, &b.Jail, &addr, &since, &until, &b.Strikes, &b.Reason, &lifted, &b.LiftedBy); err != nil {
			return nil, fmt.Errorf("read ban: %w", err)
		}
		p, err := rules.ParsePrefix(addr)
		if err != nil {
			return nil, fmt.Errorf("ban %d: %w", b.ID, err)
		}
		b.Prefix = p
		b.Since = time.Unix(0, since)
		if until.Valid {
			b.Until = time.Unix(0, until.Int64)
		}
		if lifted.Valid {
			b.Lifted = time.Unix(0, lifted.Int64)
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// ActiveBans returns every active ban, ordered by address.
func (s *Store) ActiveBans() ([]Ban, error) {
	return queryBans(s.db, `WHERE lifted IS NULL ORDER BY addr, jail`)
}

// BannedPrefixes counts the distinct addresses and ranges with an active
// ban: the map's entries.
func (s *Store) BannedPrefixes() (int, error) {
	var n int
	if err := s.db.QueryRow(`SELECT COUNT(DISTINCT addr) FROM bans WHERE lifted IS NULL`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count bans: %w", err)
	}
	return n, nil
}

// BanHistory returns the bans of p (active and lifted), newest first.
func (s *Store) BanHistory(p netip.Prefix, limit int) ([]Ban, error) {
	return queryBans(s.db, `WHERE addr = ? ORDER BY since DESC LIMIT ?`, rules.FormatPrefix(p), limit)
}

// BansSince returns bans (any state) that started at or after t, for
// seeding escalation after a restart.
func (s *Store) BansSince(t time.Time) ([]Ban, error) {
	return queryBans(s.db, `WHERE since >= ? ORDER BY since`, t.UnixNano())
}

// StrikesSince calls fn for each strike at or after t (in index order,
// which is time order) with its jail, address and time, without loading
// them all into memory. A restart reads millions of these, so rows are
// scanned as raw bytes: no string per row.
func (s *Store) StrikesSince(t time.Time, fn func(jail []byte, a netip.Addr, at time.Time) error) error {
	rows, err := s.db.Query(`SELECT jail, addr, at FROM strikes WHERE at >= ?`, t.UnixNano())
	if err != nil {
		return fmt.Errorf("query strikes: %w", err)
	}
	defer rows.Close()
	var jail, addr sql.RawBytes
	var at int64
	for rows.Next() {
		if err := rows.Scan(&jail, &addr, &at); err != nil {
			return fmt.Errorf("read strike: %w", err)
		}
		var a netip.Addr
		if err := a.UnmarshalText(addr); err != nil {
			return fmt.Errorf("strike address %q: %w", addr, err)
		}
		if err := fn(jail, a, time.Unix(0, at)); err != nil {
			return err
		}
	}
	return rows.Err()
}

// RecentStrikes returns a's newest strikes with their log lines.
func (s *Store) RecentStrikes(a netip.Addr, limit int) ([]Strike, error) {
	rows, err := s.db.Query(`SELECT jail, at, bucket, line FROM strikes WHERE addr = ? ORDER BY at DESC LIMIT ?`, a.String(), limit)
	if err != nil {
		return nil, fmt.Errorf("query strikes: %w", err)
	}
	defer rows.Close()
	var out []Strike
	for rows.Next() {
		st := Strike{Addr: a}
		var at int64
		if err := rows.Scan(&st.Jail, &at, &st.Bucket, &st.Line); err != nil {
			return nil, fmt.Errorf("read strike: %w", err)
		}
		st.At = time.Unix(0, at)
		out = append(out, st)
	}
	return out, rows.Err()
}

// RateEvents returns key's newest rate events.
func (s *Store) RateEvents(key string, limit int) ([]RateEvent, error) {
	rows, err := s.db.Query(`SELECT jail, key, what, at, level, burst, rate, urgent, detail FROM rate_events WHERE key = ? ORDER BY at DESC LIMIT ?`, key, limit)
	if err != nil {
		return nil, fmt.Errorf("query rate events: %w", err)
	}
	defer rows.Close()
	var out []RateEvent
	for rows.Next() {
		var e RateEvent
		var at int64
		if err := rows.Scan(&e.Jail, &e.Key, &e.What, &at, &e.Level, &e.Burst, &e.Rate, &e.Urgent, &e.Detail); err != nil {
			return nil, fmt.Errorf("read rate event: %w", err)
		}
		e.At = time.Unix(0, at)
		out = append(out, e)
	}
	return out, rows.Err()
}

// LoadBuckets returns the saved buckets of one jail's table.
func (s *Store) LoadBuckets(jail, what string) ([]BucketState, error) {
	rows, err := s.db.Query(`SELECT key, level, last FROM buckets WHERE jail = ? AND what = ? ORDER BY last`, jail, what)
	if err != nil {
		return nil, fmt.Errorf("load buckets of %s: %w", jail, err)
	}
	defer rows.Close()
	var out []BucketState
	for rows.Next() {
		var b BucketState
		var last int64
		if err := rows.Scan(&b.Key, &b.Level, &last); err != nil {
			return nil, fmt.Errorf("read bucket: %w", err)
		}
		b.Last = time.Unix(0, last)
		out = append(out, b)
	}
	return out, rows.Err()
}

// Positions returns every saved read position, by path.
func (s *Store) Positions() (map[string]core.Position, error) {
	rows, err := s.db.Query(`SELECT path, dev, ino, offset, head, cursor FROM positions`)
	if err != nil {
		return nil, fmt.Errorf("query positions: %w", err)
	}
	defer rows.Close()
	out := map[string]core.Position{}
	for rows.Next() {
		var p core.Position
		var dev, ino, head int64
		if err := rows.Scan(&p.Path, &dev, &ino, &p.Offset, &head, &p.Cursor); err != nil {
			return nil, fmt.Errorf("read position: %w", err)
		}
		p.Dev, p.Ino, p.Head = uint64(dev), uint64(ino), uint64(head)
		out[p.Path] = p
	}
	return out, rows.Err()
}

// Meta returns a meta value and whether it is set.
func (s *Store) Meta(key string) (string, bool, error) {
	var v string
	err := s.db.QueryRow(`SELECT value FROM meta WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read meta %s: %w", key, err)
	}
	return v, true, nil
}

// Counts summarises the database for status output.
type Counts struct {
	Strikes    int64
	ActiveBans int64
	TotalBans  int64
	RateEvents int64
}

// CountsByJail returns per-jail counts.
func (s *Store) CountsByJail() (map[string]Counts, error) {
	out := map[string]Counts{}
	rows, err := s.db.Query(`SELECT jail, COUNT(*), SUM(lifted IS NULL) FROM bans GROUP BY jail`)
	if err != nil {
		return nil, fmt.Errorf("count bans: %w", err)
	}
	for rows.Next() {
		var j string
		var c Counts
		if err := rows.Scan(&j, &c.TotalBans, &c.ActiveBans); err != nil {
			rows.Close()
			return nil, err
		}
		out[j] = c
	}
	rows.Close()
	for _, q := range []struct {
		sql string
		set func(*Counts, int64)
	}{
		{`SELECT jail, COUNT(*) FROM strikes GROUP BY jail`, func(c *Counts, n int64) { c.Strikes = n }},
		{`SELECT jail, COUNT(*) FROM rate_events GROUP BY jail`, func(c *Counts, n int64) { c.RateEvents = n }},
	} {
		if err := s.countInto(out, q.sql, q.set); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (s *Store) countInto(out map[string]Counts, query string, set func(*Counts, int64)) error {
	rows, err := s.db.Query(query)
	if err != nil {
		return fmt.Errorf("count: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var j string
		var n int64
		if err := rows.Scan(&j, &n); err != nil {
			return err
		}
		c := out[j]
		set(&c, n)
		out[j] = c
	}
	return rows.Err()
}

// Exec runs raw SQL (tests and maintenance).
func (s *Store) Exec(query string) error {
	_, err := s.db.Exec(query)
	return err
}
