package outbox

import (
	"slices"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/store"
)

func TestDigestPlan(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	normal := func(id int64, due time.Duration) store.Queued { return store.Queued{ID: id, Due: at(due)} }
	urgent := func(id int64, due time.Duration) store.Queued {
		return store.Queued{ID: id, Due: at(due), Urgent: true}
	}
	std := Digest{Interval: 15 * time.Minute, Urgent: time.Minute}
	for _, tt := range []struct {
		name     string
		d        Digest
		now      time.Duration
		mailed   store.Mailed
		queue    []store.Queued
		wantSend []int64
		wantNext time.Time // when wantSend is empty
	}{
		{name: "nothing pending", d: std, now: 0},
		{name: "the first alert goes at once", d: std, now: 0, queue: []store.Queued{normal(1, 0)}, wantSend: []int64{1}},
		{name: "an alert within the interval of the last mail waits for it", d: std, now: 5 * time.Minute,
			mailed: store.Mailed{Last: t0}, queue: []store.Queued{normal(2, time.Minute), normal(3, 4*time.Minute)},
			wantNext: at(15 * time.Minute)},
		{name: "once the interval has passed every due alert goes in one mail", d: std, now: 15 * time.Minute,
			mailed: store.Mailed{Last: t0}, queue: []store.Queued{normal(2, time.Minute), normal(3, 4*time.Minute), normal(4, 14*time.Minute)},
			wantSend: []int64{2, 3, 4}},
		{name: "an alert not yet due (a retry) stays out of the mail", d: std, now: 15 * time.Minute,
			mailed: store.Mailed{Last: t0}, queue: []store.Queued{normal(2, time.Minute), normal(3, 20*time.Minute)},
			wantSend: []int64{2}},
		{name: "a later retry is when to look again", d: std, now: 16 * time.Minute,
			mailed: store.Mailed{Last: at(15 * time.Minute)}, queue: []store.Queued{normal(3, 20*time.Minute)},
			wantNext: at(30 * time.Minute)},
		{name: "a retry due after the interval is looked at when due", d: std, now: 16 * time.Minute,
			mailed: store.Mailed{Last: at(time.Minute)}, queue: []store.Queued{normal(3, 20*time.Minute)},
			wantNext: at(20 * time.Minute)},
		{name: "an urgent alert skips the digest wait", d: std, now: 2 * time.Minute,
			mailed: store.Mailed{Last: t0}, queue: []store.Queued{urgent(5, 2*time.Minute)}, wantSend: []int64{5}},
		{name: "an urgent mail takes the held ordinary alerts along", d: std, now: 2 * time.Minute,
			mailed: store.Mailed{Last: t0}, queue: []store.Queued{normal(2, time.Minute), urgent(5, 2*time.Minute)}, wantSend: []int64{2, 5}},
		{name: "urgent alerts within the urgent interval wait for it", d: std, now: 30 * time.Second,
			mailed: store.Mailed{Last: t0, LastUrgent: t0}, queue: []store.Queued{urgent(6, time.Second), urgent(7, 2*time.Second)},
			wantNext: at(time.Minute)},
		{name: "then go together", d: std, now: time.Minute,
			mailed: store.Mailed{Last: t0, LastUrgent: t0}, queue: []store.Queued{urgent(6, time.Second), urgent(7, 2*time.Second)},
			wantSend: []int64{6, 7}},
		{name: "the earliest of the two waits is when to look again", d: std, now: 30 * time.Second,
			mailed: store.Mailed{Last: t0, LastUrgent: t0}, queue: []store.Queued{normal(1, time.Second), urgent(6, time.Second)},
			wantNext: at(time.Minute)},
		{name: "a digest takes the urgent alerts that wait", d: std, now: 15 * time.Minute,
			mailed:   store.Mailed{Last: t0, LastUrgent: at(14*time.Minute + 30*time.Second)},
			queue:    []store.Queued{normal(1, time.Second), urgent(6, 14*time.Minute+40*time.Second)},
			wantSend: []int64{1, 6}},
		{name: "a mail holds at most Max alerts, the urgent one first", d: Digest{Interval: time.Minute, Urgent: time.Minute, Max: 2}, now: 0,
			queue: []store.Queued{normal(1, 0), normal(2, 0), urgent(3, 0), normal(4, 0)}, wantSend: []int64{1, 3}},
		{name: "interval 0: each alert its own mail, the oldest first", d: Digest{}, now: 0,
			mailed: store.Mailed{Last: t0, LastUrgent: t0}, queue: []store.Queued{normal(1, 0), normal(2, 0)}, wantSend: []int64{1}},
		{name: "interval 0 gathers no ordinary alert along an urgent mail", d: Digest{Urgent: time.Minute}, now: 0,
			queue: []store.Queued{normal(1, 0), urgent(2, 0), urgent(3, 0)}, wantSend: []int64{2, 3}},
		{name: "urgent interval 0: an urgent alert alone, with the ordinary ones that gather", d: Digest{Interval: time.Hour}, now: 0,
			mailed: store.Mailed{Last: t0, LastUrgent: t0}, queue: []store.Queued{normal(1, 0), urgent(2, 0), urgent(3, 0)}, wantSend: []int64{1, 2}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			now := at(tt.now)
			send, next := tt.d.Plan(now, tt.mailed, tt.queue)
			if !slices.Equal(send, tt.wantSend) {
				t.Fatalf("send %v, want %v", send, tt.wantSend)
			}
			want := tt.wantNext
			if len(tt.wantSend) > 0 {
				want = now
			}
			if !next.Equal(want) {
				t.Fatalf("next %v, want %v", next, want)
			}
		})
	}
}

// 500 suspensions in a burst, the worker looking at each as it is
// queued, are two mails: one at once, one a minute later with the rest.
func TestDigestPlanBurstOfUrgentAlerts(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	d := Digest{Interval: 15 * time.Minute, Urgent: time.Minute, Max: 5000}
	var queue []store.Queued
	var mails [][]int64
	var m store.Mailed
	var next time.Time
	plan := func(now time.Time) {
		var send []int64
		send, next = d.Plan(now, m, queue)
		if len(send) > 0 {
			mails = append(mails, send)
			m = store.Mailed{Last: now, LastUrgent: now}
			queue = slices.DeleteFunc(queue, func(q store.Queued) bool { return slices.Contains(send, q.ID) })
			_, next = d.Plan(now, m, queue)
		}
	}
	for i := range 500 {
		now := t0.Add(time.Duration(i) * 10 * time.Millisecond)
		queue = append(queue, store.Queued{ID: int64(i + 1), Due: now, Urgent: true})
		plan(now)
	}
	if len(mails) != 1 || !next.Equal(t0.Add(time.Minute)) {
		t.Fatalf("during the burst: mails of %v, next look at %v", lens(mails), next)
	}
	plan(next)
	if got := lens(mails); !slices.Equal(got, []int{1, 499}) || len(queue) != 0 || !next.IsZero() {
		t.Fatalf("mails of %v, %d left, next %v", got, len(queue), next)
	}
}

func lens(xs [][]int64) []int {
	var out []int
	for _, x := range xs {
		out = append(out, len(x))
	}
	return out
}
