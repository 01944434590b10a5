package control

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/core"
	"github.com/mailjail/mailjail/internal/store"
)

// fakeOutbox holds items in memory.
type fakeOutbox struct{ items []store.OutboxItem }

func (f *fakeOutbox) List(_ context.Context, all bool) ([]store.OutboxItem, error) {
	var out []store.OutboxItem
	for _, it := range f.items {
		if all || it.Done.IsZero() {
			out = append(out, it)
		}
	}
	return out, nil
}

func (f *fakeOutbox) find(id int64) (int, error) {
	for i, it := range f.items {
		if it.ID == id {
			return i, nil
		}
	}
	return 0, fmt.Errorf("no outbox item %d: %w", id, core.ErrNotFound)
}

func (f *fakeOutbox) Retry(_ context.Context, id int64) (store.OutboxItem, error) {
	i, err := f.find(id)
	if err != nil {
		return store.OutboxItem{}, err
	}
	f.items[i].GaveUp, f.items[i].NextAttempt = time.Time{}, t0.Add(time.Hour)
	return f.items[i], nil
}

func (f *fakeOutbox) Drop(_ context.Context, id int64) (store.OutboxItem, error) {
	i, err := f.find(id)
	if err != nil {
		return store.OutboxItem{}, err
	}
	it := f.items[i]
	f.items = append(f.items[:i], f.items[i+1:]...)
	return it, nil
}

// The outbox operations over the socket: items with their state and
// what they are about, retry and drop of one, an unknown id not found
// (exit 1), an id that cannot be one a usage error (exit 2).
func TestOutboxOpsOverTheSocket(t *testing.T) {
	ob := &fakeOutbox{items: []store.OutboxItem{
		{ID: 1, Kind: "alert", Payload: []byte(`{"Event":"suspend","Jail":"acct","Addr":"a@example.org"}`), Urgent: true, Created: t0, NextAttempt: t0},
		{ID: 2, Kind: "action", Payload: []byte(`{"event":"ban","jail":"rl","addr":"198.51.100.1","argv":["/bin/false"]}`), Created: t0,
			Attempts: 9, NextAttempt: t0, LastError: "exit status 1", GaveUp: t0.Add(24 * time.Hour)},
		{ID: 3, Kind: "alert", Payload: []byte(`{}`), Created: t0, Attempts: 2, NextAttempt: t0.Add(time.Minute), LastError: "421"},
		{ID: 4, Kind: "alert", Payload: []byte(`not json`), Created: t0, Attempts: 1, NextAttempt: t0, Done: t0.Add(time.Second)},
	}}
	socket := socketPath(t)
	serve(t, socket, fakeHandler{outbox: ob})
	ctx := context.Background()
	resp, err := Call(ctx, socket, OpOutboxList, Request{})
	if err != nil || !resp.OK || len(resp.Outbox) != 3 {
		t.Fatalf("list: %+v, %v", resp, err)
	}
	want := []OutboxItem{
		{ID: 1, Kind: "alert", State: OutboxPending, Urgent: true, Event: "suspend", Jail: "acct", Addr: "a@example.org", Created: t0, NextAttempt: &t0},
		{ID: 2, Kind: "action", State: OutboxGaveUp, Event: "ban", Jail: "rl", Addr: "198.51.100.1", Attempts: 9, Created: t0, LastError: "exit status 1"},
		{ID: 3, Kind: "alert", State: OutboxRetrying, Attempts: 2, Created: t0, LastError: "421"},
	}
	for i, w := range want {
		g := resp.Outbox[i]
		if g.ID != w.ID || g.Kind != w.Kind || g.State != w.State || g.Urgent != w.Urgent || g.Event != w.Event || g.Jail != w.Jail ||
			g.Addr != w.Addr || g.Attempts != w.Attempts || !g.Created.Equal(w.Created) || g.LastError != w.LastError || (g.NextAttempt == nil) != (w.State == OutboxGaveUp) {
			t.Errorf("item %d = %+v, want %+v", i, g, w)
		}
	}
	if g := resp.Outbox[1]; g.GaveUp == nil || !g.GaveUp.Equal(t0.Add(24*time.Hour)) {
		t.Errorf("given-up item: gave_up %v", g.GaveUp)
	}
	resp, err = Call(ctx, socket, OpOutboxList, Request{All: true})
	if err != nil || len(resp.Outbox) != 4 || resp.Outbox[3].State != OutboxDone || resp.Outbox[3].Done == nil || resp.Outbox[3].NextAttempt != nil {
		t.Fatalf("list all: %+v, %v", resp, err)
	}
	resp, err = Call(ctx, socket, OpOutboxRetry, Request{ID: 2})
	if err != nil || !resp.OK || len(resp.Outbox) != 1 || resp.Outbox[0].State != OutboxRetrying || !resp.Outbox[0].NextAttempt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("retry: %+v, %v", resp, err)
	}
	resp, err = Call(ctx, socket, OpOutboxDrop, Request{ID: 3})
	if err != nil || !resp.OK || len(resp.Outbox) != 1 || resp.Outbox[0].ID != 3 || len(ob.items) != 3 {
		t.Fatalf("drop: %+v, %v", resp, err)
	}
	for _, op := range []string{OpOutboxRetry, OpOutboxDrop} {
		resp, err = Call(ctx, socket, op, Request{ID: 3})
		if err != nil || resp.OK || resp.Code != ExitNotFound || len(resp.Outbox) != 0 {
			t.Errorf("%s of an unknown id: %+v, %v", op, resp, err)
		}
		resp, err = Call(ctx, socket, op, Request{})
		if err != nil || resp.OK || resp.Code != ExitUsage {
			t.Errorf("%s without an id: %+v, %v", op, resp, err)
		}
	}
}
