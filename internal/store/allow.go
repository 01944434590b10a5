package store

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Allowed is one entry of the rate allow list kept in the database: a
// sender address or a domain that is never rate limited or suspended.
type Allowed struct {
	Entry  string
	Added  time.Time
	Reason string
}

// AddAllow adds entry to the allow list; added is false when it was
// there already.
func (t *Tx) AddAllow(a Allowed) (added bool, err error) {
	res, err := t.exec(`INSERT INTO allow (entry, added, reason) VALUES (?, ?, ?) ON CONFLICT(entry) DO NOTHING`, a.Entry, a.Added.UnixNano(), a.Reason)
	if err != nil {
		return false, fmt.Errorf("allow %s: %w", a.Entry, err)
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// DelAllow removes entry from the allow list; removed is false when it
// was not there.
func (t *Tx) DelAllow(entry string) (removed bool, err error) {
	res, err := t.exec(`DELETE FROM allow WHERE entry = ?`, entry)
	if err != nil {
		return false, fmt.Errorf("remove %s from the allow list: %w", entry, err)
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// AllowList returns the database's allow list, sorted.
func (s *Store) AllowList() ([]Allowed, error) {
	rows, err := s.db.Query(`SELECT entry, added, reason FROM allow ORDER BY entry`)
	if err != nil {
		return nil, fmt.Errorf("query allow list: %w", err)
	}
	defer rows.Close()
	var out []Allowed
	for rows.Next() {
		var a Allowed
		var at int64
		if err := rows.Scan(&a.Entry, &at, &a.Reason); err != nil {
			return nil, fmt.Errorf("read allow list: %w", err)
		}
		a.Added = time.Unix(0, at)
		out = append(out, a)
	}
	return out, rows.Err()
}

// WindowEvent is one event of a saved sliding-window counter.
type WindowEvent struct {
	At time.Time
	N  float64
}

// WindowState is one key's saved sliding-window counter.
type WindowState struct {
	Key    string
	Events []WindowEvent
}

// SaveWindows replaces the saved window counters of one jail's table.
func (t *Tx) SaveWindows(jail, what string, states []WindowState) error {
	if _, err := t.exec(`DELETE FROM windows WHERE jail = ? AND what = ?`, jail, what); err != nil {
		return fmt.Errorf("save windows of %s: %w", jail, err)
	}
	stmt, err := t.tx.Prepare(`INSERT INTO windows (jail, what, key, events) VALUES (?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("save windows of %s: %w", jail, err)
	}
	defer stmt.Close()
	for _, w := range states {
		var b strings.Builder
		for i, ev := range w.Events {
			if i > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%d:%s", ev.At.UnixNano(), strconv.FormatFloat(ev.N, 'g', -1, 64))
		}
		if _, err := stmt.Exec(jail, what, w.Key, b.String()); err != nil {
			return fmt.Errorf("save window %s: %w", w.Key, err)
		}
	}
	return nil
}

// LoadWindows returns the saved window counters of one jail's table.
func (s *Store) LoadWindows(jail, what string) ([]WindowState, error) {
	rows, err := s.db.Query(`SELECT key, events FROM windows WHERE jail = ? AND what = ?`, jail, what)
	if err != nil {
		return nil, fmt.Errorf("load windows of %s: %w", jail, err)
	}
	defer rows.Close()
	var out []WindowState
	for rows.Next() {
		var w WindowState
		var events string
		if err := rows.Scan(&w.Key, &events); err != nil {
			return nil, fmt.Errorf("read window: %w", err)
		}
		for _, f := range strings.Fields(events) {
			at, n, ok := strings.Cut(f, ":")
			ns, err1 := strconv.ParseInt(at, 10, 64)
			v, err2 := strconv.ParseFloat(n, 64)
			if !ok || err1 != nil || err2 != nil {
				return nil, fmt.Errorf("window of %s in %s: bad event %q", w.Key, jail, f)
			}
			w.Events = append(w.Events, WindowEvent{At: time.Unix(0, ns), N: v})
		}
		out = append(out, w)
	}
	return out, rows.Err()
}
