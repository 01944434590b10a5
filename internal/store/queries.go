package store

import (
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/mailjail/mailjail/internal/core"
	"github.com/mailjail/mailjail/rules"
)

type querier interface {
	Query(query string, args ...any) (*sql.Rows, error)
}

const banColumns = `SELECT id, jail, addr, since, until, strikes, reason, lifted, lifted_by, offense, log_only, origin FROM bans `

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
		if err := rows.Scan(&b.ID, &b.Jail, &addr, &since, &until, &b.Strikes, &b.Reason, &lifted, &b.LiftedBy, &b.Offense, &b.LogOnly, &b.Origin); err != nil {
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
// ban: the map's entries. A log-only jail's would-be bans are no entry.
func (s *Store) BannedPrefixes() (int, error) {
	var n int
	if err := s.db.QueryRow(`SELECT COUNT(DISTINCT addr) FROM bans WHERE lifted IS NULL AND log_only = 0`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count bans: %w", err)
	}
	return n, nil
}

// BanHistory returns the bans of p (active and lifted), newest first.
func (s *Store) BanHistory(p netip.Prefix, limit int) ([]Ban, error) {
	return queryBans(s.db, `WHERE addr = ? ORDER BY since DESC LIMIT ?`, rules.FormatPrefix(p), limit)
}

// BanHistory is Store.BanHistory inside a transaction: an alert planned
// with its ban tells the ban's predecessors.
func (t *Tx) BanHistory(p netip.Prefix, limit int) ([]Ban, error) {
	return queryBans(t.tx, `WHERE addr = ? ORDER BY since DESC LIMIT ?`, rules.FormatPrefix(p), limit)
}

// BansSince returns bans (any state) that started at or after t, for
// seeding escalation after a restart.
func (s *Store) BansSince(t time.Time) ([]Ban, error) {
	return queryBans(s.db, `WHERE since >= ? ORDER BY since`, t.UnixNano())
}

// LiftedSince returns the bans lifted at or after t by anything but
// their expiry (an unban, ignoreip, a cluster peer): what a cluster
// resync compares with the shared state, so an unban made here while the
// cluster was out of reach still wins over the older ban it lifted.
func (s *Store) LiftedSince(t time.Time) ([]Ban, error) {
	return queryBans(s.db, `WHERE lifted >= ? AND lifted_by NOT IN ('expired', 'replaced') ORDER BY lifted`, t.UnixNano())
}

// StrikesSince calls fn for each strike at or after t, jail by jail and
// in time order within a jail (the table's order), with its jail,
// address and time, without loading them all into memory. A restart
// reads millions of these, so rows are scanned as raw bytes: no string
// per row.
func (s *Store) StrikesSince(t time.Time, fn func(jail []byte, a netip.Addr, at time.Time) error) error {
	rows, err := s.db.Query(`SELECT j.name, s.addr, s.at FROM jails j JOIN strikes s ON s.jail = j.id AND s.at >= ? ORDER BY j.id, s.at`, t.UnixNano())
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
		a, ok := netip.AddrFromSlice(addr)
		if !ok {
			return fmt.Errorf("strike address %x: not 4 or 16 bytes", []byte(addr))
		}
		if err := fn(jail, a, time.Unix(0, at)); err != nil {
			return err
		}
	}
	return rows.Err()
}

// RecentStrikes returns a's newest strikes with their log lines.
func (s *Store) RecentStrikes(a netip.Addr, limit int) ([]Strike, error) {
	return recentStrikes(s.db, a, limit)
}

// RecentStrikes is Store.RecentStrikes inside the transaction, which sees
// the strikes it added.
func (t *Tx) RecentStrikes(a netip.Addr, limit int) ([]Strike, error) {
	return recentStrikes(t.tx, a, limit)
}

func recentStrikes(q querier, a netip.Addr, limit int) ([]Strike, error) {
	rows, err := q.Query(`SELECT j.name, s.at, s.bucket, s.line FROM strikes s JOIN jails j ON j.id = s.jail WHERE s.addr = ? ORDER BY s.at DESC, s.n DESC LIMIT ?`, addrBytes(a), limit)
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

// MetaPrefix returns the meta values whose key starts with prefix, by
// key without the prefix.
func (s *Store) MetaPrefix(prefix string) (map[string]string, error) {
	// Keys are compared as text ranges so the primary key index is used
	// and a '%' or '_' in prefix is not a pattern.
	rows, err := s.db.Query(`SELECT key, value FROM meta WHERE key >= ? AND key < ?`, prefix, prefix+"\xff")
	if err != nil {
		return nil, fmt.Errorf("read meta %s*: %w", prefix, err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, fmt.Errorf("read meta %s*: %w", prefix, err)
		}
		out[strings.TrimPrefix(k, prefix)] = v
	}
	return out, rows.Err()
}

// Counts summarises the database for status output.
type Counts struct {
	Strikes    int64
	ActiveBans int64
	TotalBans  int64
	RateEvents int64
	WouldBans  int64 // active would-be bans (log-only), among ActiveBans
}

// CountsByJail returns per-jail counts.
func (s *Store) CountsByJail() (map[string]Counts, error) {
	out := map[string]Counts{}
	rows, err := s.db.Query(`SELECT jail, COUNT(*), SUM(lifted IS NULL), SUM(lifted IS NULL AND log_only) FROM bans GROUP BY jail`)
	if err != nil {
		return nil, fmt.Errorf("count bans: %w", err)
	}
	for rows.Next() {
		var j string
		var c Counts
		if err := rows.Scan(&j, &c.TotalBans, &c.ActiveBans, &c.WouldBans); err != nil {
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
		{`SELECT j.name, c.n FROM (SELECT jail, COUNT(*) AS n FROM strikes GROUP BY jail) c JOIN jails j ON j.id = c.jail`, func(c *Counts, n int64) { c.Strikes = n }},
		{`SELECT jail, COUNT(*) FROM account_strikes GROUP BY jail`, func(c *Counts, n int64) { c.Strikes += n }},
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
