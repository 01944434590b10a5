package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// OutboxItem is one action or alert waiting to be carried out, or the
// record of one that was.
type OutboxItem struct {
	ID          int64
	Kind        string // "action" or "alert"
	Payload     []byte // JSON; its schema belongs to the kind
	Created     time.Time
	Attempts    int
	NextAttempt time.Time
	LastError   string
	Done        time.Time // zero while pending
	GaveUp      time.Time // zero unless abandoned
}

// OutboxCounts summarises the outbox for status.
type OutboxCounts struct {
	Pending int64 // not yet delivered
	Failed  int64 // pending after at least one failed attempt
	GaveUp  int64 // abandoned after too many attempts
}

// maxErrorBytes bounds a stored delivery error (a relay may answer at
// length).
const maxErrorBytes = 512

// AddOutbox queues an item in the transaction of the change that causes
// it: the change and its consequences are saved together or not at all.
func (t *Tx) AddOutbox(kind string, payload []byte, now time.Time) (int64, error) {
	res, err := t.exec(`INSERT INTO outbox (kind, payload, created, next_attempt) VALUES (?, ?, ?, ?)`,
		kind, payload, now.UnixNano(), now.UnixNano())
	if err != nil {
		return 0, fmt.Errorf("queue %s: %w", kind, err)
	}
	return res.LastInsertId()
}

// PendingOutbox returns up to limit pending items in the order they were
// queued, due or not: the worker keeps actions in order, so it must see
// an item that waits for its retry before the ones queued after it.
func (s *Store) PendingOutbox(limit int) ([]OutboxItem, error) {
	return s.queryOutbox(`WHERE done IS NULL AND gave_up IS NULL ORDER BY id LIMIT ?`, limit)
}

// PendingOfKind is PendingOutbox for one kind.
func (s *Store) PendingOfKind(kind string, limit int) ([]OutboxItem, error) {
	return s.queryOutbox(`WHERE kind = ? AND done IS NULL AND gave_up IS NULL ORDER BY id LIMIT ?`, kind, limit)
}

// DueOfKind returns up to limit pending items of kind that are due at now,
// the longest waiting first.
func (s *Store) DueOfKind(kind string, now time.Time, limit int) ([]OutboxItem, error) {
	return s.queryOutbox(`WHERE kind = ? AND done IS NULL AND gave_up IS NULL AND next_attempt <= ? ORDER BY next_attempt, id LIMIT ?`,
		kind, now.UnixNano(), limit)
}

// NextDue is when the earliest pending item of kind is due (zero: none).
func (s *Store) NextDue(kind string) (time.Time, error) {
	var next sql.NullInt64
	if err := s.db.QueryRow(`SELECT MIN(next_attempt) FROM outbox WHERE kind = ? AND done IS NULL AND gave_up IS NULL`, kind).Scan(&next); err != nil {
		return time.Time{}, fmt.Errorf("read outbox: %w", err)
	}
	if !next.Valid {
		return time.Time{}, nil
	}
	return time.Unix(0, next.Int64), nil
}

func (s *Store) queryOutbox(where string, args ...any) ([]OutboxItem, error) {
	rows, err := s.db.Query(`SELECT id, kind, payload, created, attempts, next_attempt, last_error FROM outbox `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	defer rows.Close()
	var out []OutboxItem
	for rows.Next() {
		var it OutboxItem
		var created, next int64
		if err := rows.Scan(&it.ID, &it.Kind, &it.Payload, &created, &it.Attempts, &next, &it.LastError); err != nil {
			return nil, fmt.Errorf("read outbox: %w", err)
		}
		it.Created, it.NextAttempt = time.Unix(0, created), time.Unix(0, next)
		out = append(out, it)
	}
	return out, rows.Err()
}

// OutboxDone records a successful delivery at now.
func (s *Store) OutboxDone(ctx context.Context, id int64, now time.Time) error {
	return s.outboxUpdate(ctx, id, `UPDATE outbox SET done = ?, attempts = attempts + 1, last_error = '' WHERE id = ?`, now.UnixNano(), id)
}

// OutboxRetry records a failed attempt and when to try again.
func (s *Store) OutboxRetry(ctx context.Context, id int64, next time.Time, cause error) error {
	return s.outboxUpdate(ctx, id, `UPDATE outbox SET attempts = attempts + 1, next_attempt = ?, last_error = ? WHERE id = ?`,
		next.UnixNano(), errText(cause), id)
}

// OutboxGiveUp records a last failed attempt after which the item is
// abandoned.
func (s *Store) OutboxGiveUp(ctx context.Context, id int64, now time.Time, cause error) error {
	return s.outboxUpdate(ctx, id, `UPDATE outbox SET attempts = attempts + 1, gave_up = ?, last_error = ? WHERE id = ?`,
		now.UnixNano(), errText(cause), id)
}

func (s *Store) outboxUpdate(ctx context.Context, id int64, query string, args ...any) error {
	return s.Update(ctx, func(t *Tx) error {
		if _, err := t.exec(query, args...); err != nil {
			return fmt.Errorf("outbox item %d: %w", id, err)
		}
		return nil
	})
}

func errText(err error) string {
	s := err.Error()
	if len(s) > maxErrorBytes {
		s = s[:maxErrorBytes]
	}
	return s
}

// CountOutbox counts pending, failed and abandoned items.
func (s *Store) CountOutbox() (OutboxCounts, error) {
	var c OutboxCounts
	var failed, gaveUp sql.NullInt64
	err := s.db.QueryRow(`SELECT
		COUNT(*) FILTER (WHERE done IS NULL AND gave_up IS NULL),
		SUM(done IS NULL AND gave_up IS NULL AND attempts > 0),
		SUM(gave_up IS NOT NULL)
		FROM outbox`).Scan(&c.Pending, &failed, &gaveUp)
	if err != nil {
		return c, fmt.Errorf("count outbox: %w", err)
	}
	c.Failed, c.GaveUp = failed.Int64, gaveUp.Int64
	return c, nil
}
