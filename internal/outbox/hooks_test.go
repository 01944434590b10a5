package outbox

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailjail/mailjail/actions"
	"github.com/mailjail/mailjail/actions/actionstest"
	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/internal/testutil"
)

// realHandlers run actions with actions.Run and webhooks through hooks.
func realHandlers(hooks *actions.Hooks) Handlers {
	return Handlers{
		Action: func(ctx context.Context, a Action) error {
			_, err := actions.Run(ctx, actions.Command{Argv: a.Argv, Event: a.Event, Jail: a.Jail, Addr: a.Addr}, nil)
			return err
		},
		Webhook: func(ctx context.Context, w Webhook) error { return hooks.Send(ctx, w.Hook, w.HookEvent) },
	}
}

func pendingItems(t *testing.T, st *store.Store) []store.OutboxItem {
	t.Helper()
	items, err := st.PendingOutbox(100)
	if err != nil {
		t.Fatal(err)
	}
	return items
}

// A hung action is killed with its children at the item's own timeout
// (action_timeout, not Options.Timeout), and the item is retried after
// its backoff: this time the command returns, and the item is done.
func TestHungActionIsKilledAtItsTimeoutAndRetried(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "db"))
	clk := testutil.NewFakeClock(time.Unix(1_700_000_000, 0))
	w := New(st, realHandlers(nil), quiet, Options{Clock: clk, Timeout: time.Hour})
	pids := filepath.Join(t.TempDir(), "pids")
	queue(t, st, clk.Now(), Item{Kind: KindAction, Payload: Action{Event: "ban", Jail: "j", Addr: "192.0.2.1",
		Argv: actionstest.HungArgv(pids, true), TimeoutSec: 0.3}})
	start := time.Now()
	if left, err := w.Drain(context.Background()); err != nil || left != 1 {
		t.Fatalf("drain: %d left, %v", left, err)
	}
	if d := time.Since(start); d > testutil.Scale(5*time.Second) {
		t.Fatalf("the attempt took %s: the item's timeout was not used", d)
	}
	actionstest.WantGone(t, pids)
	items := pendingItems(t, st)
	if len(items) != 1 || items[0].Attempts != 1 || !strings.Contains(items[0].LastError, "killed: context deadline exceeded") {
		t.Fatalf("after the kill: %+v", items)
	}
	clk.Advance(time.Second)
	if left, err := w.Drain(context.Background()); err != nil || left != 0 {
		t.Fatalf("retry: %d left, %v", left, err)
	}
}

// hookServer answers 500 to the first fails requests, then 204, and
// records the events it was sent.
type hookServer struct {
	mu     sync.Mutex
	fails  int
	events []string
	hang   bool
}

func (h *hookServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	hang := h.hang
	h.mu.Unlock()
	// Read first: the server notices a client that gave up only once
	// the body is read.
	body, _ := io.ReadAll(r.Body)
	if hang {
		<-r.Context().Done()
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, string(body))
	if h.fails > 0 {
		h.fails--
		http.Error(w, "down", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *hookServer) got() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.events)
}

func hookItem(event, addr string, timeout float64) Item {
	return Item{Kind: KindWebhook, Payload: Webhook{Hook: "soc", TimeoutSec: timeout,
		HookEvent: actions.HookEvent{Event: event, Jail: "j", Addr: addr, Since: time.Unix(1_700_000_000, 0), Reason: "r"}}}
}

func hooksFor(t *testing.T, url string) *actions.Hooks {
	t.Helper()
	h, err := actions.NewHooks([]actions.WebhookConfig{{Name: "soc", URL: url, Timeout: time.Hour}}, "mx", nil)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// A webhook answered with 500 is retried after its backoff; the unban
// queued after its ban waits for it (the webhook lane is ordered), while
// an exec action queued after both does not wait for the webhook lane.
func TestFailedWebhookIsRetriedInOrderWithoutHoldingActions(t *testing.T) {
	srv := &hookServer{fails: 1}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	st := openStore(t, filepath.Join(t.TempDir(), "db"))
	clk := testutil.NewFakeClock(time.Unix(1_700_000_000, 0))
	ran := filepath.Join(t.TempDir(), "ran")
	w := New(st, realHandlers(hooksFor(t, ts.URL)), quiet, Options{Clock: clk})
	queue(t, st, clk.Now(), hookItem("ban", "192.0.2.1", 5), hookItem("unban", "192.0.2.1", 5),
		Item{Kind: KindAction, Payload: Action{Event: "ban", Addr: "192.0.2.1", Argv: []string{"/usr/bin/touch", ran}}})
	if left, err := w.Drain(context.Background()); err != nil || left != 2 {
		t.Fatalf("drain: %d left, %v", left, err)
	}
	if got := srv.got(); len(got) != 1 || !strings.Contains(got[0], `"event":"ban"`) {
		t.Fatalf("sent %q: the unban went before its ban's retry", got)
	}
	if _, err := os.Stat(ran); err != nil {
		t.Error("the exec action waited for the webhook lane")
	}
	items := pendingItems(t, st)
	if items[0].Attempts != 1 || !strings.Contains(items[0].LastError, "500 Internal Server Error: down") {
		t.Fatalf("after the 500: %+v", items[0])
	}
	clk.Advance(time.Second)
	if left, err := w.Drain(context.Background()); err != nil || left != 0 {
		t.Fatalf("retry: %d left, %v", left, err)
	}
	got := srv.got()
	if len(got) != 3 || !strings.Contains(got[1], `"event":"ban"`) || !strings.Contains(got[2], `"event":"unban"`) {
		t.Fatalf("sent %q, want ban, ban again, unban", got)
	}
}

// A receiver that never answers fails the attempt at the item's timeout
// (the webhook's own, carried in the item), and the item is retried.
func TestHungWebhookTimesOutAtItsTimeout(t *testing.T) {
	srv := &hookServer{hang: true}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	st := openStore(t, filepath.Join(t.TempDir(), "db"))
	clk := testutil.NewFakeClock(time.Unix(1_700_000_000, 0))
	w := New(st, realHandlers(hooksFor(t, ts.URL)), quiet, Options{Clock: clk, Timeout: time.Hour})
	queue(t, st, clk.Now(), hookItem("ban", "192.0.2.1", 0.2))
	start := time.Now()
	if left, err := w.Drain(context.Background()); err != nil || left != 1 {
		t.Fatalf("drain: %d left, %v", left, err)
	}
	if d := time.Since(start); d > testutil.Scale(5*time.Second) {
		t.Fatalf("the attempt took %s", d)
	}
	if items := pendingItems(t, st); items[0].Attempts != 1 || !strings.Contains(items[0].LastError, "deadline exceeded") {
		t.Fatalf("after the timeout: %+v", items[0])
	}
	srv.mu.Lock()
	srv.hang = false
	srv.mu.Unlock()
	clk.Advance(time.Second)
	if left, err := w.Drain(context.Background()); err != nil || left != 0 || len(srv.got()) != 1 {
		t.Fatalf("retry: %d left, %v, sent %d", left, err, len(srv.got()))
	}
}

// Without a webhook handler (none wired), webhook items fail and wait.
func TestWebhookWithoutHandlerFails(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "db"))
	clk := testutil.NewFakeClock(time.Unix(1_700_000_000, 0))
	w := New(st, Handlers{}, quiet, Options{Clock: clk})
	queue(t, st, clk.Now(), hookItem("ban", "192.0.2.1", 0))
	if left, _ := w.Drain(context.Background()); left != 1 {
		t.Fatalf("%d left", left)
	}
	if items := pendingItems(t, st); !strings.Contains(items[0].LastError, "nothing configured to deliver a webhook") {
		t.Errorf("error %q", items[0].LastError)
	}
}
