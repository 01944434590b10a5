package store

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"net/netip"
	"time"

	"github.com/mailjail/mailjail/internal/core"
	"github.com/mailjail/mailjail/rules"
)

// maxLineBytes bounds the log line kept with an account's strike: enough to see why,
// not enough for a hostile line to bloat the database.
const maxLineBytes = 1024

// Tx is a write transaction. All of a batch's strikes, bans and positions
// go into one, so they are saved together or not at all.
type Tx struct {
	tx *sql.Tx
	s  *Store

	newJails map[string]int64 // jails this transaction added, cached once it commits
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
	// Log times have a resolution of a second, in which an address can
	// strike more than once: the next n is then looked up. (One INSERT
	// ... SELECT max(n) would copy its row through a temporary table
	// each time: four times slower.)
	sqlAddStrike     = `INSERT INTO strikes (jail, at, addr, n, bucket, line) VALUES (?1, ?2, ?3, 0, ?4, ?5) ON CONFLICT DO NOTHING`
	sqlAddStrikeNext = `INSERT INTO strikes (jail, at, addr, n, bucket, line)
		VALUES (?1, ?2, ?3, (SELECT max(n) + 1 FROM strikes WHERE jail = ?1 AND at = ?2 AND addr = ?3), ?4, ?5)`
	sqlSavePosition = `INSERT INTO positions (path, dev, ino, offset, head, cursor, updated) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(path) DO UPDATE SET dev=excluded.dev, ino=excluded.ino, offset=excluded.offset, head=excluded.head, cursor=excluded.cursor, updated=excluded.updated`
	sqlAddRateEvent = `INSERT INTO rate_events (jail, key, what, at, level, burst, rate, urgent, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`
)

func (s *Store) prepare() error {
	s.stmts = map[string]*sql.Stmt{}
	for _, q := range []string{sqlAddStrike, sqlAddStrikeNext, sqlSavePosition, sqlAddRateEvent, sqlAddAccountStrike} {
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
	t := &Tx{tx: tx, s: s}
	if err := fn(t); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit %s: %w", s.path, err)
	}
	if len(t.newJails) > 0 {
		s.mu.Lock()
		maps.Copy(s.jailID, t.newJails)
		s.mu.Unlock()
	}
	return nil
}

// jail returns the id of a jail's name, adding it to jails if it is new.
// A new id is cached only once the transaction commits: a rolled-back
// one may be given to another jail.
func (t *Tx) jail(name string) (int64, error) {
	t.s.mu.Lock()
	id, ok := t.s.jailID[name]
	t.s.mu.Unlock()
	if ok {
		return id, nil
	}
	if id, ok := t.newJails[name]; ok {
		return id, nil
	}
	if _, err := t.exec(`INSERT INTO jails (name) VALUES (?) ON CONFLICT(name) DO NOTHING`, name); err != nil {
		return 0, fmt.Errorf("add jail %s: %w", name, err)
	}
	if err := t.tx.QueryRow(`SELECT id FROM jails WHERE name = ?`, name).Scan(&id); err != nil {
		return 0, fmt.Errorf("read jail %s: %w", name, err)
	}
	if t.newJails == nil {
		t.newJails = map[string]int64{}
	}
	t.newJails[name] = id
	return id, nil
}

// AddStrike records a strike.
func (t *Tx) AddStrike(st Strike) error {
	jail, err := t.jail(st.Jail)
	if err != nil {
		return err
	}
	args := []any{jail, st.At.UnixNano(), addrBytes(st.Addr), st.Bucket, shortLine(st.Line)}
	n, err := t.affected(sqlAddStrike, args...)
	if err == nil && n == 0 {
		_, err = t.exec(sqlAddStrikeNext, args...)
	}
	if err != nil {
		return fmt.Errorf("add strike: %w", err)
	}
	return nil
}

// cutLine bounds a strike's log line to maxLineBytes.
func cutLine(line string) string {
	if len(line) > maxLineBytes {
		return line[:maxLineBytes]
	}
	return line
}

// strikeLineBytes bounds the line a strike keeps: an rspamd summary is
// about 500 bytes, and a line kept for each address would be half of
// the 100 bytes a strike may take (README, Retention). Its start (time,
// ip, user, from) and its end (the action, the bucket) are what explain
// a ban.
const (
	strikeLineBytes = 256
	strikeLineTail  = 73
	strikeLineCut   = "…"
)

// shortLine bounds a strike's line to strikeLineBytes, keeping its start
// and end around strikeLineCut.
func shortLine(line string) string {
	if len(line) <= strikeLineBytes {
		return line
	}
	head := strikeLineBytes - strikeLineTail - len(strikeLineCut)
	return line[:head] + strikeLineCut + line[len(line)-strikeLineTail:]
}

// AddBan records a new active ban, replacing an active ban of the same
// address in the same jail (a manual ban that extends or shortens it).
func (t *Tx) AddBan(b Ban) (int64, error) {
	key := rules.FormatPrefix(b.Prefix)
	if _, err := t.exec(`UPDATE bans SET lifted = ?, lifted_by = 'replaced' WHERE jail = ? AND addr = ? AND lifted IS NULL`,
		b.Since.UnixNano(), b.Jail, key); err != nil {
		return 0, fmt.Errorf("replace ban %s: %w", key, err)
	}
	res, err := t.exec(`INSERT INTO bans (jail, addr, since, until, strikes, reason, offense, log_only, origin) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		b.Jail, key, b.Since.UnixNano(), nullTime(b.Until), b.Strikes, b.Reason, b.Offense, b.LogOnly, b.Origin)
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
		if _, err := t.exec(`DELETE FROM strikes WHERE addr = ? AND (? = '' OR jail = (SELECT id FROM jails WHERE name = ?))`, addrBytes(p.Addr()), jail, jail); err != nil {
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

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}
