package outbox

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/internal/testutil"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func openStore(t *testing.T, path string) *store.Store {
	t.Helper()
	st, err := store.Open(path, store.Options{Durable: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func queue(t *testing.T, st *store.Store, now time.Time, items ...Item) {
	t.Helper()
	if err := st.Update(context.Background(), func(tx *store.Tx) error { return Queue(tx, now, items...) }); err != nil {
		t.Fatal(err)
	}
}

func action(addr string) Item {
	return Item{Kind: KindAction, Payload: Action{Event: "ban", Jail: "j", Addr: addr, Argv: []string{"/bin/true", addr}}}
}

// recorder is a Handlers whose action fails while fail is set.
type recorder struct {
	mu   sync.Mutex
	fail bool
	ran  []string
}

func (r *recorder) handlers() Handlers {
	return Handlers{
		Action: func(_ context.Context, a Action) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			if r.fail {
				return errors.New("exit status 1")
			}
			r.ran = append(r.ran, a.Addr)
			return nil
		},
		Alert: func(_ context.Context, batch []Alert) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			for _, a := range batch {
				r.ran = append(r.ran, "alert "+a.Addr)
			}
			return nil
		},
	}
}

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ran)
}

// A failed action is retried after its backoff, and the actions queued
// after it wait for it: an unban never runs before its ban. Alerts do not
// wait for actions.
func TestFailedActionIsRetriedAndKeepsLaterActionsInOrder(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "db"))
	clk := testutil.NewFakeClock(time.Unix(1_700_000_000, 0))
	rec := &recorder{fail: true}
	w := New(st, rec.handlers(), quiet, Options{Clock: clk})
	queue(t, st, clk.Now(), action("192.0.2.1"), Item{Kind: KindAlert, Payload: Alert{Event: "ban", Addr: "192.0.2.1"}}, action("192.0.2.2"))
	ctx := context.Background()
	if left, err := w.Drain(ctx); err != nil || left != 2 {
		t.Fatalf("drain: %d left, %v", left, err)
	}
	if got := rec.got(); !slices.Equal(got, []string{"alert 192.0.2.1"}) {
		t.Fatalf("ran %q while the first action failed", got)
	}
	rec.mu.Lock()
	rec.fail = false
	rec.mu.Unlock()
	if left, _ := w.Drain(ctx); left != 2 {
		t.Fatalf("retried before its backoff: %d left", left)
	}
	clk.Advance(time.Second)
	if left, err := w.Drain(ctx); err != nil || left != 0 {
		t.Fatalf("after the backoff: %d left, %v", left, err)
	}
	if got := rec.got(); !slices.Equal(got, []string{"alert 192.0.2.1", "192.0.2.1", "192.0.2.2"}) {
		t.Fatalf("ran %q", got)
	}
	if c, _ := st.CountOutbox(); c != (store.OutboxCounts{}) {
		t.Fatalf("counts = %+v", c)
	}
}

// Items queued before a stop are delivered by the next process, once.
func TestPendingItemsSurviveARestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	st := openStore(t, path)
	now := time.Unix(1_700_000_000, 0)
	queue(t, st, now, action("192.0.2.7"))
	st.Close()

	st2 := openStore(t, path)
	rec := &recorder{}
	w := New(st2, rec.handlers(), quiet, Options{Clock: testutil.NewFakeClock(now)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	testutil.Eventually(t, 5*time.Second, "the pending action", func() bool { return len(rec.got()) == 1 })
	cancel()
	testutil.Receive(t, done, 5*time.Second, "the worker to stop")
	if left, _ := New(st2, rec.handlers(), quiet, Options{}).Drain(context.Background()); left != 0 || len(rec.got()) != 1 {
		t.Fatalf("delivered %q, %d left", rec.got(), left)
	}
}

// An item that keeps failing is given up after GiveUpAfter, recorded.
func TestItemIsGivenUpAfterItsAge(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "db"))
	clk := testutil.NewFakeClock(time.Unix(1_700_000_000, 0))
	rec := &recorder{fail: true}
	w := New(st, rec.handlers(), quiet, Options{Clock: clk, GiveUpAfter: time.Hour})
	queue(t, st, clk.Now(), action("192.0.2.9"))
	for range 20 {
		w.Drain(context.Background())
		clk.Advance(5 * time.Minute)
	}
	if c, _ := st.CountOutbox(); c.GaveUp != 1 || c.Pending != 0 {
		t.Fatalf("counts = %+v", c)
	}
}

// A failing action at the head of the queue holds only the actions after
// it: the worker waits for its retry instead of re-reading the queue in a
// loop, and alerts beyond one batch are still delivered.
func TestAWaitingActionNeitherSpinsNorStarvesAlerts(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "db"))
	clk := testutil.NewFakeClock(time.Unix(1_700_000_000, 0))
	rec := &recorder{fail: true}
	w := New(st, rec.handlers(), quiet, Options{Clock: clk, Batch: 2})
	queue(t, st, clk.Now(), action("192.0.2.1"), action("192.0.2.2"), action("192.0.2.3"),
		Item{Kind: KindAlert, Payload: Alert{Addr: "a"}}, Item{Kind: KindAlert, Payload: Alert{Addr: "b"}}, Item{Kind: KindAlert, Payload: Alert{Addr: "c"}})
	if left, err := w.Drain(context.Background()); err != nil || left != 3 {
		t.Fatalf("drain: %d left, %v", left, err)
	}
	if got := rec.got(); !slices.Equal(got, []string{"alert a", "alert b", "alert c"}) {
		t.Fatalf("delivered %q", got)
	}
	next, err := w.pass(context.Background())
	if err != nil || !next.After(clk.Now()) {
		t.Fatalf("next pass at %v (now %v), %v: the worker would spin", next, clk.Now(), err)
	}
}
