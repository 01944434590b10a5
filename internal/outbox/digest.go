package outbox

import (
	"slices"
	"time"

	"github.com/mailjail/mailjail/internal/store"
)

// Digest is the policy that gathers alerts into mails, so that an attack
// is a few mails rather than a storm. The first alert goes out at once;
// alerts that become due within Interval of the last mail wait until the
// interval has passed and then go out together. Urgent alerts
// (Alert.Urgent: suspensions, permanent bans) skip that wait but are
// bounded the same way by Urgent, counted from the last mail that held
// an urgent alert. Whenever a mail goes out it takes every due alert of a
// class that gathers, so a held alert never waits longer than it must and
// nothing is starved.
type Digest struct {
	// Interval is the least time between two mails of ordinary alerts;
	// 0: no gathering, each alert its own mail, at once.
	Interval time.Duration
	// Urgent is the least time between two mails holding urgent alerts;
	// 0: each urgent alert its own mail, at once.
	Urgent time.Duration
	// Max bounds the alerts of one mail (<= 0: no bound); the rest wait
	// for the next mail.
	Max int
}

// Plan decides at now, from when mail last went out and the pending
// alerts, which alerts go out now in one mail (ids in ascending order;
// none: nothing may go yet) and when to look again (zero: nothing
// pending; now when a mail goes: plan again after it, with the new
// times). It is a pure function: the worker supplies the clock and the
// store.
func (d Digest) Plan(now time.Time, m store.Mailed, queue []store.Queued) (send []int64, next time.Time) {
	gathers := func(q store.Queued) bool {
		if q.Urgent {
			return d.Urgent > 0
		}
		return d.Interval > 0
	}
	// ready is when q may lead a mail: once due and once its class's
	// interval has passed since the last mail of that class.
	ready := func(q store.Queued) time.Time {
		open := after(m.Last, d.Interval)
		if q.Urgent {
			open = after(m.LastUrgent, d.Urgent)
		}
		if open.After(q.Due) {
			return open
		}
		return q.Due
	}
	lead := -1
	for i, q := range queue {
		if r := ready(q); r.After(now) {
			next = earliest(next, r)
			continue
		}
		// An urgent alert leads rather than an ordinary one; else the
		// longest queued.
		if l := lead; l < 0 || q.Urgent && !queue[l].Urgent || q.Urgent == queue[l].Urgent && q.ID < queue[l].ID {
			lead = i
		}
	}
	if lead < 0 {
		return nil, next
	}
	send = []int64{queue[lead].ID}
	for i, q := range queue {
		if d.Max > 0 && len(send) >= d.Max {
			break
		}
		if i != lead && gathers(q) && !q.Due.After(now) {
			send = append(send, q.ID)
		}
	}
	slices.Sort(send)
	return send, now
}

// after is t+d, or zero (no wait) when there was no t or d is zero.
func after(t time.Time, d time.Duration) time.Time {
	if t.IsZero() || d <= 0 {
		return time.Time{}
	}
	return t.Add(d)
}
