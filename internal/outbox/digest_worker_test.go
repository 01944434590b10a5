package outbox

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/internal/testutil"
)

// mailbox is an alert handler that records each mail (a batch) and
// fails while down is set.
type mailbox struct {
	mu    sync.Mutex
	down  bool
	tries int
	mails [][]string // the addresses of each mail sent
}

func (m *mailbox) handlers() Handlers {
	return Handlers{Alert: func(_ context.Context, batch []Alert) error {
		m.mu.Lock()
		defer m.mu.Unlock()
		m.tries++
		if m.down {
			return errors.New("421 relay down")
		}
		var addrs []string
		for _, a := range batch {
			addrs = append(addrs, a.Addr)
		}
		m.mails = append(m.mails, addrs)
		return nil
	}}
}

func (m *mailbox) setDown(down bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.down = down
}

// sizes is how many alerts each mail held.
func (m *mailbox) sizes() []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []int
	for _, mail := range m.mails {
		out = append(out, len(mail))
	}
	return out
}

// sent is every address mailed, in order, duplicates kept.
func (m *mailbox) sent() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Concat(m.mails...)
}

func ban(addr string) Item {
	return Item{Kind: KindAlert, Payload: Alert{Event: "ban", Jail: "j", Addr: addr, Until: time.Unix(1_800_000_000, 0)}}
}

func suspension(account string) Item {
	return Item{Kind: KindAlert, Payload: Alert{Event: "suspend", Jail: "acct", Addr: account}}
}

var digestOpts = Options{DigestInterval: 15 * time.Minute, UrgentInterval: time.Minute}

func withClock(o Options, clk *testutil.FakeClock) Options {
	o.Clock = clk
	return o
}

func drain(t *testing.T, w *Worker) int {
	t.Helper()
	left, err := w.Drain(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return left
}

// The first alert goes out at once; 30 more within the interval are one
// digest once it has passed.
func TestFirstAlertAtOnceThenOneDigest(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "db"))
	clk := testutil.NewFakeClock(time.Unix(1_700_000_000, 0))
	mb := &mailbox{}
	w := New(st, mb.handlers(), quiet, withClock(digestOpts, clk))
	queue(t, st, clk.Now(), ban("198.51.100.0"))
	if left := drain(t, w); left != 0 || !slices.Equal(mb.sizes(), []int{1}) {
		t.Fatalf("first alert: mails %v, %d left", mb.sizes(), left)
	}
	for i := range 30 {
		clk.Advance(20 * time.Second)
		queue(t, st, clk.Now(), ban(fmt.Sprintf("198.51.100.%d", i+1)))
		drain(t, w)
	}
	if got := mb.sizes(); !slices.Equal(got, []int{1}) {
		t.Fatalf("within the interval: mails %v", got)
	}
	clk.Advance(15*time.Minute - 30*20*time.Second - time.Second)
	if left := drain(t, w); left != 30 || len(mb.sizes()) != 1 {
		t.Fatalf("a second before the interval: mails %v, %d left", mb.sizes(), left)
	}
	clk.Advance(time.Second)
	if left := drain(t, w); left != 0 || !slices.Equal(mb.sizes(), []int{1, 30}) {
		t.Fatalf("after the interval: mails %v, %d left", mb.sizes(), left)
	}
	if c, _ := st.CountOutbox(); c.Pending != 0 || c.Failed != 0 || c.GaveUp != 0 {
		t.Fatalf("counts %+v", c)
	}
}

// Urgent alerts skip the digest wait but are bounded: a burst of 500
// suspensions is one mail at once and one a minute later with the rest.
func TestUrgentAlertsAreBoundedToOneMailAMinute(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "db"))
	clk := testutil.NewFakeClock(time.Unix(1_700_000_000, 0))
	mb := &mailbox{}
	w := New(st, mb.handlers(), quiet, withClock(digestOpts, clk))
	queue(t, st, clk.Now(), ban("198.51.100.1"))
	drain(t, w)
	clk.Advance(time.Minute)
	for i := range 500 {
		queue(t, st, clk.Now(), suspension(fmt.Sprintf("u%d@example.org", i)))
		drain(t, w)
		clk.Advance(10 * time.Millisecond)
	}
	// An ordinary alert meanwhile rides with the urgent digest.
	queue(t, st, clk.Now(), ban("198.51.100.2"))
	if got := mb.sizes(); !slices.Equal(got, []int{1, 1}) {
		t.Fatalf("during the burst: mails %v", got)
	}
	clk.Advance(time.Minute)
	if left := drain(t, w); left != 0 || !slices.Equal(mb.sizes(), []int{1, 1, 500}) {
		t.Fatalf("a minute later: mails %v, %d left", mb.sizes(), left)
	}
}

// With the relay down a mail is retried whole with backoff, each alert's
// attempts recorded; nothing is lost, and once sent nothing is sent again.
func TestAFailedMailIsRetriedWholeAndSentOnce(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "db"))
	clk := testutil.NewFakeClock(time.Unix(1_700_000_000, 0))
	mb := &mailbox{down: true}
	w := New(st, mb.handlers(), quiet, withClock(digestOpts, clk))
	var want []string
	for i := range 5 {
		addr := fmt.Sprintf("198.51.100.%d", i)
		want = append(want, addr)
		queue(t, st, clk.Now(), ban(addr))
	}
	for range 4 { // attempts at 0, 1s, 3s, 7s
		drain(t, w)
		clk.Advance(4 * time.Second)
	}
	mb.mu.Lock()
	tries := mb.tries
	mb.mu.Unlock()
	items, err := st.PendingOutbox(10)
	if err != nil || len(items) != 5 || tries < 3 {
		t.Fatalf("pending %d, %d tries, %v", len(items), tries, err)
	}
	for _, it := range items {
		// One mail, retried whole: every alert was attempted with it.
		if it.Attempts != tries || it.LastError != "421 relay down" || !it.NextAttempt.Equal(items[0].NextAttempt) {
			t.Fatalf("item %d: %d attempts of %d, next %v (first's %v), error %q", it.ID, it.Attempts, tries, it.NextAttempt, items[0].NextAttempt, it.LastError)
		}
	}
	if c, _ := st.CountOutbox(); c.Failed != 5 {
		t.Fatalf("counts %+v", c)
	}
	mb.setDown(false)
	clk.Advance(time.Minute)
	if left := drain(t, w); left != 0 {
		t.Fatalf("%d left", left)
	}
	clk.Advance(time.Hour)
	drain(t, w)
	if got := mb.sent(); !slices.Equal(got, want) || len(mb.sizes()) != 1 {
		t.Fatalf("sent %v in mails %v, want %v once", got, mb.sizes(), want)
	}
}

// A relay down for longer than GiveUpAfter: each alert is given up by its
// own age, the younger ones of the mail retried.
func TestGiveUpIsPerAlert(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "db"))
	clk := testutil.NewFakeClock(time.Unix(1_700_000_000, 0))
	mb := &mailbox{down: true}
	w := New(st, mb.handlers(), quiet, withClock(Options{DigestInterval: time.Minute, UrgentInterval: time.Minute, GiveUpAfter: time.Hour, MaxBackoff: time.Minute}, clk))
	queue(t, st, clk.Now(), ban("198.51.100.1"))
	drain(t, w)
	clk.Advance(50 * time.Minute)
	queue(t, st, clk.Now(), ban("198.51.100.2"))
	for range 12 {
		clk.Advance(time.Minute)
		drain(t, w)
	}
	c, _ := st.CountOutbox()
	if c.GaveUp != 1 || c.Pending != 1 {
		t.Fatalf("counts %+v", c)
	}
}

// The time of the last mail is in the database: a worker started after a
// restart in the middle of an attack waits out the interval.
func TestARestartedWorkerWaitsOutTheInterval(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	st := openStore(t, path)
	clk := testutil.NewFakeClock(time.Unix(1_700_000_000, 0))
	mb := &mailbox{}
	drain(t, New(st, mb.handlers(), quiet, withClock(digestOpts, clk)))
	queue(t, st, clk.Now(), ban("198.51.100.1"), suspension("a@example.org"))
	drain(t, New(st, mb.handlers(), quiet, withClock(digestOpts, clk)))
	if got := mb.sizes(); !slices.Equal(got, []int{2}) {
		t.Fatalf("mails %v", got)
	}
	clk.Advance(30 * time.Second)
	queue(t, st, clk.Now(), ban("198.51.100.2"), suspension("b@example.org"))
	st.Close()

	st2 := openStore(t, path)
	w := New(st2, mb.handlers(), quiet, withClock(digestOpts, clk))
	if left := drain(t, w); left != 2 || len(mb.sizes()) != 1 {
		t.Fatalf("after the restart: mails %v, %d left", mb.sizes(), left)
	}
	clk.Advance(30 * time.Second)
	if left := drain(t, w); left != 0 || !slices.Equal(mb.sizes(), []int{2, 2}) {
		t.Fatalf("a minute after the last mail: mails %v, %d left", mb.sizes(), left)
	}
}

// Run sleeps until the digest is due (on its clock) and sends it then.
func TestRunSendsTheDigestWhenTheIntervalHasPassed(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "db"))
	clk := testutil.NewFakeClock(time.Unix(1_700_000_000, 0))
	mb := &mailbox{}
	w := New(st, mb.handlers(), quiet, withClock(digestOpts, clk))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	defer func() { cancel(); testutil.Receive(t, done, 5*time.Second, "the worker to stop") }()
	queue(t, st, clk.Now(), ban("198.51.100.1"))
	w.Kick()
	testutil.Eventually(t, 5*time.Second, "the first mail", func() bool { return len(mb.sizes()) == 1 })
	queue(t, st, clk.Now(), ban("198.51.100.2"), ban("198.51.100.3"))
	w.Kick()
	// With nothing pending the worker set no timer; once it has looked
	// at the new alerts its timer waits for the end of the interval (the
	// only time it could wait for), which advancing fires.
	if !clk.BlockUntil(1, 5*time.Second) {
		t.Fatal("the worker set no timer for the digest")
	}
	if got := mb.sizes(); !slices.Equal(got, []int{1}) {
		t.Fatalf("mails %v before the interval", got)
	}
	clk.Advance(15 * time.Minute)
	testutil.Eventually(t, 5*time.Second, "the digest", func() bool { return slices.Equal(mb.sizes(), []int{1, 2}) })
}

// The outbox commands: list (given-up items kept, done ones with all),
// retry (a given-up item due again), drop, and unknown ids not found.
func TestListRetryDrop(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "db"))
	clk := testutil.NewFakeClock(time.Unix(1_700_000_000, 0))
	mb := &mailbox{down: true}
	w := New(st, mb.handlers(), quiet, withClock(Options{GiveUpAfter: time.Minute}, clk))
	ctx := context.Background()
	queue(t, st, clk.Now(), ban("198.51.100.1"))
	clk.Advance(time.Minute)
	drain(t, w) // given up
	mb.setDown(false)
	queue(t, st, clk.Now(), ban("198.51.100.2"))
	drain(t, w) // done
	queue(t, st, clk.Now(), action("198.51.100.3"))

	ids := func(all bool) []int64 {
		items, err := w.List(ctx, all)
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		for _, it := range items {
			out = append(out, it.ID)
		}
		return out
	}
	if got := ids(false); !slices.Equal(got, []int64{1, 3}) {
		t.Fatalf("list = %v", got)
	}
	if got := ids(true); !slices.Equal(got, []int64{1, 2, 3}) {
		t.Fatalf("list --all = %v", got)
	}
	if s := Describe(mustItem(t, st, 1)); s != (Summary{Event: "ban", Jail: "j", Addr: "198.51.100.1"}) {
		t.Fatalf("summary %+v", s)
	}
	it, err := w.Retry(ctx, 1)
	if err != nil || !it.GaveUp.IsZero() || !it.NextAttempt.Equal(clk.Now()) {
		t.Fatalf("retry: %+v, %v", it, err)
	}
	drain(t, w)
	if got := mb.sent(); !slices.Equal(got, []string{"198.51.100.2", "198.51.100.1"}) {
		t.Fatalf("sent %v", got)
	}
	for _, id := range []int64{1, 99} {
		if _, err := w.Retry(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("retry %d (done or unknown): %v", id, err)
		}
	}
	if it, err := w.Drop(ctx, 3); err != nil || it.Kind != KindAction {
		t.Fatalf("drop: %+v, %v", it, err)
	}
	if _, err := w.Drop(ctx, 3); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("drop again: %v", err)
	}
	if got := ids(true); !slices.Equal(got, []int64{1, 2}) {
		t.Fatalf("after the drop: %v", got)
	}
}

func mustItem(t *testing.T, st *store.Store, id int64) store.OutboxItem {
	t.Helper()
	items, err := st.OutboxItems([]int64{id})
	if err != nil || len(items) != 1 {
		t.Fatalf("item %d: %v %v", id, items, err)
	}
	return items[0]
}
