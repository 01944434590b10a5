package store

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

func addItems(t *testing.T, s *Store, items ...newItem) []int64 {
	t.Helper()
	var ids []int64
	err := s.Update(context.Background(), func(tx *Tx) error {
		for _, it := range items {
			id, err := tx.AddOutbox(it.kind, []byte(`{}`), it.urgent, it.at)
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

type newItem = struct {
	kind   string
	urgent bool
	at     time.Time
}

// QueueOf gives the pending items of a kind, earliest due first, with
// their urgency; OutboxItems reads the chosen ones whole.
func TestQueueOfAndOutboxItems(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	ids := addItems(t, s, newItem{"alert", false, t0}, newItem{"action", false, t0}, newItem{"alert", true, t0.Add(time.Second)}, newItem{"alert", false, t0.Add(2 * time.Second)})
	if err := s.OutboxRetry(ctx, ids[0], t0.Add(time.Minute), errors.New("down")); err != nil {
		t.Fatal(err)
	}
	if err := s.OutboxDone(ctx, ids[3], t0.Add(3*time.Second)); err != nil {
		t.Fatal(err)
	}
	q, err := s.QueueOf("alert", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(q) != 2 || q[0].ID != ids[2] || !q[0].Urgent || !q[0].Due.Equal(t0.Add(time.Second)) ||
		q[1].ID != ids[0] || q[1].Urgent || !q[1].Due.Equal(t0.Add(time.Minute)) {
		t.Fatalf("queue = %+v", q)
	}
	items, err := s.OutboxItems([]int64{ids[2], ids[0], 999})
	if err != nil || len(items) != 2 || items[0].ID != ids[0] || items[1].ID != ids[2] || !items[1].Urgent || items[0].LastError != "down" {
		t.Fatalf("items = %+v, %v", items, err)
	}
}

// A mail's alerts are marked done and its time recorded in one
// transaction; the times survive a reopen.
func TestMailedTimes(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	if m, err := s.Mailed(); err != nil || m != (Mailed{}) {
		t.Fatalf("before any mail: %+v, %v", m, err)
	}
	ids := addItems(t, s, newItem{"alert", true, t0}, newItem{"alert", false, t0})
	at := t0.Add(time.Minute)
	err := s.Update(ctx, func(tx *Tx) error {
		for _, id := range ids {
			if err := tx.OutboxDone(id, at); err != nil {
				return err
			}
		}
		return tx.SetMailed(at, true)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, func(tx *Tx) error { return tx.SetMailed(at.Add(time.Hour), false) }); err != nil {
		t.Fatal(err)
	}
	m, err := s.Mailed()
	if err != nil || !m.Last.Equal(at.Add(time.Hour)) || !m.LastUrgent.Equal(at) {
		t.Fatalf("mailed = %+v, %v", m, err)
	}
	if c, _ := s.CountOutbox(); c.Pending != 0 || !c.OldestPending.IsZero() {
		t.Fatalf("counts %+v", c)
	}
}

// ListOutbox shows pending and given-up items, and the done ones too with
// all; retry makes a given-up item pending and due, not a done one; drop
// deletes; unknown ids are not found.
func TestListRetryDropOutbox(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	ids := addItems(t, s, newItem{"action", false, t0}, newItem{"alert", false, t0}, newItem{"alert", false, t0.Add(time.Second)})
	if err := s.OutboxGiveUp(ctx, ids[0], t0.Add(time.Hour), errors.New("exit status 1")); err != nil {
		t.Fatal(err)
	}
	if err := s.OutboxDone(ctx, ids[1], t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	list := func(all bool, limit int) []int64 {
		items, err := s.ListOutbox(all, limit)
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		for _, it := range items {
			out = append(out, it.ID)
		}
		return out
	}
	if got := list(false, 10); !slices.Equal(got, []int64{ids[0], ids[2]}) {
		t.Fatalf("list = %v", got)
	}
	if got := list(true, 10); !slices.Equal(got, ids) {
		t.Fatalf("list all = %v", got)
	}
	if got := list(true, 2); !slices.Equal(got, ids[1:]) {
		t.Fatalf("list all, limit 2 = %v (want the newest)", got)
	}
	it, err := s.RetryOutboxNow(ctx, ids[0], t0.Add(2*time.Hour))
	if err != nil || !it.Pending() || !it.NextAttempt.Equal(t0.Add(2*time.Hour)) || it.Attempts != 1 {
		t.Fatalf("retry = %+v, %v", it, err)
	}
	if c, _ := s.CountOutbox(); c.Pending != 2 || c.Failed != 1 || c.GaveUp != 0 {
		t.Fatalf("counts after retry %+v", c)
	}
	if _, err := s.RetryOutboxNow(ctx, ids[1], t0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("retry of a done item: %v", err)
	}
	if _, err := s.RetryOutboxNow(ctx, 999, t0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("retry of an unknown item: %v", err)
	}
	if it, err := s.DropOutbox(ctx, ids[2]); err != nil || it.ID != ids[2] {
		t.Fatalf("drop = %+v, %v", it, err)
	}
	if _, err := s.DropOutbox(ctx, ids[2]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("drop again: %v", err)
	}
	if got := list(true, 10); !slices.Equal(got, ids[:2]) {
		t.Fatalf("after the drop = %v", got)
	}
}
