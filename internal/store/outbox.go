package store

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// OutboxItem is one action or alert waiting to be carried out, or the
// record of one that was.
type OutboxItem struct {
	ID          int64
	Kind        string // "action", "webhook" or "alert"
	Payload     []byte // JSON; its schema belongs to the kind
	Urgent      bool   // an alert that skips the digest wait
	Created     time.Time
	Attempts    int
	NextAttempt time.Time
	LastError   string
	Done        time.Time // zero while pending
	GaveUp      time.Time // zero unless abandoned
}

// Pending reports whether the item is still to be carried out.
func (it OutboxItem) Pending() bool { return it.Done.IsZero() && it.GaveUp.IsZero() }

// Queued is what the alert digest needs to know of a pending item, read
// for every pending alert without its payload.
type Queued struct {
	ID     int64
	Due    time.Time // next attempt
	Urgent bool
}

// OutboxCounts summarises the outbox for status.
type OutboxCounts struct {
	Pending int64 // not yet delivered
	Failed  int64 // pending after at least one failed attempt
	GaveUp  int64 // abandoned after too many attempts
	// OldestPending is when the longest waiting pending item was queued
	// (zero: none pending).
	OldestPending time.Time
}

// Mailed is when alert mail last went out: the digest waits from these,
// and keeping them in the database (meta rows metaLastMail and
// metaLastUrgent) means a daemon restarted during an attack still waits
// out the interval instead of mailing at once.
type Mailed struct {
	Last       time.Time // any alert mail; zero: none yet
	LastUrgent time.Time // the last one that held an urgent alert
}

// Meta keys of Mailed, unix nanoseconds in decimal.
const (
	metaLastMail   = "alert_last_mail"
	metaLastUrgent = "alert_last_urgent_mail"
)

// maxErrorBytes bounds a stored delivery error (a relay may answer at
// length).
const maxErrorBytes = 512

// outboxPending is the condition of an item still to be carried out.
const outboxPending = `done IS NULL AND gave_up IS NULL`

// AddOutbox queues an item in the transaction of the change that causes
// it: the change and its consequences are saved together or not at all.
// urgent marks an alert that must not wait for a digest.
func (t *Tx) AddOutbox(kind string, payload []byte, urgent bool, now time.Time) (int64, error) {
	res, err := t.exec(`INSERT INTO outbox (kind, payload, urgent, created, next_attempt) VALUES (?, ?, ?, ?, ?)`,
		kind, payload, urgent, now.UnixNano(), now.UnixNano())
	if err != nil {
		return 0, fmt.Errorf("queue %s: %w", kind, err)
	}
	return res.LastInsertId()
}

// PendingOutbox returns up to limit pending items in the order they were
// queued, due or not: the worker keeps actions in order, so it must see
// an item that waits for its retry before the ones queued after it.
func (s *Store) PendingOutbox(limit int) ([]OutboxItem, error) {
	return s.queryOutbox(`WHERE `+outboxPending+` ORDER BY id LIMIT ?`, limit)
}

// PendingOfKind is PendingOutbox for one kind.
func (s *Store) PendingOfKind(kind string, limit int) ([]OutboxItem, error) {
	return s.queryOutbox(`WHERE kind = ? AND `+outboxPending+` ORDER BY id LIMIT ?`, kind, limit)
}

// QueueOf returns up to limit pending items of kind without their
// payloads, the earliest due first.
func (s *Store) QueueOf(kind string, limit int) ([]Queued, error) {
	rows, err := s.db.Query(`SELECT id, next_attempt, urgent FROM outbox WHERE kind = ? AND `+outboxPending+` ORDER BY next_attempt, id LIMIT ?`, kind, limit)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	defer rows.Close()
	var out []Queued
	for rows.Next() {
		var q Queued
		var due int64
		if err := rows.Scan(&q.ID, &due, &q.Urgent); err != nil {
			return nil, fmt.Errorf("read outbox: %w", err)
		}
		q.Due = time.Unix(0, due)
		out = append(out, q)
	}
	return out, rows.Err()
}

// OutboxItems returns the items of ids that exist, in id order.
func (s *Store) OutboxItems(ids []int64) ([]OutboxItem, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	// Ids are integers: written into the statement, they need no
	// parameter each (SQLite allows a bounded number of those).
	list := make([]string, len(ids))
	for i, id := range ids {
		list[i] = strconv.FormatInt(id, 10)
	}
	return s.queryOutbox(`WHERE id IN (` + strings.Join(list, ",") + `) ORDER BY id`)
}

// ListOutbox returns what `mailjail outbox` shows, in the order items
// were queued: the pending and the given-up items (these wait for the
// operator to retry or drop them), and with all the delivered ones too.
// At most limit items, the newest.
func (s *Store) ListOutbox(all bool, limit int) ([]OutboxItem, error) {
	items, err := s.queryOutbox(`WHERE ? OR done IS NULL ORDER BY id DESC LIMIT ?`, all, limit)
	for i, j := 0, len(items)-1; i < j; i, j = i+1, j-1 {
		items[i], items[j] = items[j], items[i]
	}
	return items, err
}

// RetryOutboxNow makes a pending or given-up item due at now and
// returns it so. A delivered item is not found: there is nothing to
// retry.
func (s *Store) RetryOutboxNow(ctx context.Context, id int64, now time.Time) (OutboxItem, error) {
	var it OutboxItem
	err := s.Update(ctx, func(t *Tx) error {
		var err error
		if it, err = t.outboxItem(id); err != nil {
			return err
		}
		if !it.Done.IsZero() {
			return fmt.Errorf("outbox item %d was delivered at %s: nothing to retry: %w", id, it.Done.UTC().Format(time.RFC3339), ErrNotFound)
		}
		_, err = t.exec(`UPDATE outbox SET next_attempt = ?, gave_up = NULL WHERE id = ?`, now.UnixNano(), id)
		it.NextAttempt, it.GaveUp = now, time.Time{}
		return err
	})
	return it, err
}

// DropOutbox deletes an item, whatever its state, and returns it.
func (s *Store) DropOutbox(ctx context.Context, id int64) (OutboxItem, error) {
	var it OutboxItem
	err := s.Update(ctx, func(t *Tx) error {
		var err error
		if it, err = t.outboxItem(id); err != nil {
			return err
		}
		_, err = t.exec(`DELETE FROM outbox WHERE id = ?`, id)
		return err
	})
	return it, err
}

// outboxItem reads one item inside the transaction.
func (t *Tx) outboxItem(id int64) (OutboxItem, error) {
	items, err := scanOutbox(t.tx.Query(outboxColumns+`WHERE id = ?`, id))
	if err != nil {
		return OutboxItem{}, err
	}
	if len(items) == 0 {
		return OutboxItem{}, fmt.Errorf("no outbox item %d: %w", id, ErrNotFound)
	}
	return items[0], nil
}

const outboxColumns = `SELECT id, kind, payload, urgent, created, attempts, next_attempt, last_error, done, gave_up FROM outbox `

func (s *Store) queryOutbox(where string, args ...any) ([]OutboxItem, error) {
	return scanOutbox(s.db.Query(outboxColumns+where, args...))
}

func scanOutbox(rows *sql.Rows, err error) ([]OutboxItem, error) {
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	defer rows.Close()
	var out []OutboxItem
	for rows.Next() {
		var it OutboxItem
		var created, next int64
		var done, gaveUp sql.NullInt64
		if err := rows.Scan(&it.ID, &it.Kind, &it.Payload, &it.Urgent, &created, &it.Attempts, &next, &it.LastError, &done, &gaveUp); err != nil {
			return nil, fmt.Errorf("read outbox: %w", err)
		}
		it.Created, it.NextAttempt = time.Unix(0, created), time.Unix(0, next)
		it.Done, it.GaveUp = optTime(done), optTime(gaveUp)
		out = append(out, it)
	}
	return out, rows.Err()
}

// optTime is the time of a nullable column, zero for NULL.
func optTime(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.Unix(0, v.Int64)
}

// OutboxDone records a successful delivery at now.
func (t *Tx) OutboxDone(id int64, now time.Time) error {
	return t.outboxUpdate(id, `UPDATE outbox SET done = ?, attempts = attempts + 1, last_error = '' WHERE id = ?`, now.UnixNano(), id)
}

// OutboxRetry records a failed attempt and when to try again.
func (t *Tx) OutboxRetry(id int64, next time.Time, cause error) error {
	return t.outboxUpdate(id, `UPDATE outbox SET attempts = attempts + 1, next_attempt = ?, last_error = ? WHERE id = ?`,
		next.UnixNano(), errText(cause), id)
}

// OutboxGiveUp records a last failed attempt after which the item is
// abandoned.
func (t *Tx) OutboxGiveUp(id int64, now time.Time, cause error) error {
	return t.outboxUpdate(id, `UPDATE outbox SET attempts = attempts + 1, gave_up = ?, last_error = ? WHERE id = ?`,
		now.UnixNano(), errText(cause), id)
}

func (t *Tx) outboxUpdate(id int64, query string, args ...any) error {
	if _, err := t.exec(query, args...); err != nil {
		return fmt.Errorf("outbox item %d: %w", id, err)
	}
	return nil
}

// OutboxDone is Tx.OutboxDone in a transaction of its own.
func (s *Store) OutboxDone(ctx context.Context, id int64, now time.Time) error {
	return s.Update(ctx, func(t *Tx) error { return t.OutboxDone(id, now) })
}

// OutboxRetry is Tx.OutboxRetry in a transaction of its own.
func (s *Store) OutboxRetry(ctx context.Context, id int64, next time.Time, cause error) error {
	return s.Update(ctx, func(t *Tx) error { return t.OutboxRetry(id, next, cause) })
}

// OutboxGiveUp is Tx.OutboxGiveUp in a transaction of its own.
func (s *Store) OutboxGiveUp(ctx context.Context, id int64, now time.Time, cause error) error {
	return s.Update(ctx, func(t *Tx) error { return t.OutboxGiveUp(id, now, cause) })
}

func errText(err error) string {
	s := err.Error()
	if len(s) > maxErrorBytes {
		s = s[:maxErrorBytes]
	}
	return s
}

// SetMailed records that an alert mail went out at at (holding an
// urgent alert when urgent), in the transaction that marks its alerts
// done.
func (t *Tx) SetMailed(at time.Time, urgent bool) error {
	v := strconv.FormatInt(at.UnixNano(), 10)
	if err := t.SetMeta(metaLastMail, v); err != nil {
		return err
	}
	if urgent {
		return t.SetMeta(metaLastUrgent, v)
	}
	return nil
}

// Mailed returns when alert mail last went out.
func (s *Store) Mailed() (Mailed, error) {
	var m Mailed
	var err error
	if m.Last, err = s.metaTime(metaLastMail); err != nil {
		return m, err
	}
	m.LastUrgent, err = s.metaTime(metaLastUrgent)
	return m, err
}

// metaTime reads a meta value of unix nanoseconds (zero: not set).
func (s *Store) metaTime(key string) (time.Time, error) {
	v, ok, err := s.Meta(key)
	if err != nil || !ok {
		return time.Time{}, err
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("meta %s = %q: %w", key, v, err)
	}
	return time.Unix(0, n), nil
}

// CountOutbox counts pending, failed and abandoned items.
func (s *Store) CountOutbox() (OutboxCounts, error) {
	var c OutboxCounts
	var failed, gaveUp, oldest sql.NullInt64
	err := s.db.QueryRow(`SELECT
		COUNT(*) FILTER (WHERE `+outboxPending+`),
		SUM(`+outboxPending+` AND attempts > 0),
		SUM(gave_up IS NOT NULL),
		MIN(created) FILTER (WHERE `+outboxPending+`)
		FROM outbox`).Scan(&c.Pending, &failed, &gaveUp, &oldest)
	if err != nil {
		return c, fmt.Errorf("count outbox: %w", err)
	}
	c.Failed, c.GaveUp, c.OldestPending = failed.Int64, gaveUp.Int64, optTime(oldest)
	return c, nil
}
