// Package outbox carries out what a committed change asks for besides
// enforcement: ban and unban commands and alert mail. Each item was
// written to the database in the transaction of the change that caused
// it, so nothing is lost by a crash between the ban and its action; the
// worker here delivers items at least once, in order for actions, retries
// failures with backoff and gives up after a bounded age, recording each
// outcome. A ban never waits for it.
//
// Exec actions and webhooks each run in an ordered lane of their own: in
// a lane, an item waits for the ones queued before it (an unban never
// before its ban), but a receiver that is down for hours does not hold
// the firewall's commands, nor a hung command the webhooks. Alerts are
// independent, and gathered into digests (Digest) so that an attack is a
// few mails rather than a storm.
package outbox

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/mailjail/mailjail/actions"
	"github.com/mailjail/mailjail/internal/core"
	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/notify"
)

// Kinds of items.
const (
	KindAction  = "action"
	KindAlert   = "alert"
	KindWebhook = "webhook"
)

// Action is the payload of a ban or unban command.
type Action struct {
	Event string   `json:"event"` // "ban" or "unban"
	Jail  string   `json:"jail"`
	Addr  string   `json:"addr"`
	Argv  []string `json:"argv"` // expanded; values come from mailjail, never from a log line
	// TimeoutSec bounds one attempt: the jail's action_timeout when it
	// was queued (0, as in items queued before it existed: Options.Timeout).
	TimeoutSec float64 `json:"timeout_sec,omitempty"`
}

// Webhook is the payload of a webhook POST: the event, and the webhook
// ([webhook.NAME]) to send it through.
type Webhook struct {
	Hook string `json:"hook"`
	actions.HookEvent
	TimeoutSec float64 `json:"timeout_sec,omitempty"` // the webhook's timeout when it was queued
}

// Alert is the payload of an alert mail.
type Alert = notify.Alert

// Item is one thing to queue, before it is encoded.
type Item struct {
	Kind    string
	Payload any // Action, Webhook or Alert
}

// Queue writes items into the outbox in tx, the transaction of the change
// that causes them.
func Queue(tx *store.Tx, now time.Time, items ...Item) error {
	for _, it := range items {
		b, err := json.Marshal(it.Payload)
		if err != nil {
			return fmt.Errorf("encode %s: %w", it.Kind, err)
		}
		a, isAlert := it.Payload.(Alert)
		if _, err := tx.AddOutbox(it.Kind, b, isAlert && a.Urgent(), now); err != nil {
			return err
		}
	}
	return nil
}

// Handlers carry out one item of each kind. A nil handler fails its
// kind's items (retried, then given up): alerts are only queued when a
// relay is configured, so that means a configuration that changed.
type Handlers struct {
	Action func(ctx context.Context, a Action) error
	// Alert sends one mail for the batch: one alert, or a digest of
	// several.
	Alert func(ctx context.Context, batch []Alert) error
	// Webhook POSTs one event.
	Webhook func(ctx context.Context, w Webhook) error
}

// Options tune a Worker. The zero value is usable.
type Options struct {
	Clock   core.Clock    // default the wall clock
	Timeout time.Duration // per attempt of an item without a timeout of its own (default 30s)
	// GiveUpAfter abandons an item this long after it was queued
	// (default 24h); the give-up is logged and counted.
	GiveUpAfter time.Duration
	MinBackoff  time.Duration // first retry delay (default 1s), doubling
	MaxBackoff  time.Duration // at most (default 5m)
	Batch       int           // items of an ordered lane read at once (default 256)
	// DigestInterval and UrgentInterval gather alerts into mails (see
	// Digest); 0: each alert its own mail, at once.
	DigestInterval time.Duration
	UrgentInterval time.Duration
	// MaxDigest bounds the alerts of one mail (default 5000: a burst of
	// a thousand bans is two mails).
	MaxDigest int
}

func (o *Options) setDefaults() {
	o.Clock = core.OrReal(o.Clock)
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.GiveUpAfter <= 0 {
		o.GiveUpAfter = 24 * time.Hour
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 5 * time.Minute
	}
	if o.Batch <= 0 {
		o.Batch = 256
	}
	if o.MaxDigest <= 0 {
		o.MaxDigest = 5000
	}
}

// queueLimit bounds the pending alerts the digest considers in one pass
// (their ids and due times only); more wait for a later pass.
const queueLimit = 100_000

// Worker delivers the outbox.
type Worker struct {
	st     *store.Store
	h      Handlers
	opt    Options
	digest Digest
	log    *slog.Logger
	kick   chan struct{}
}

// New makes a worker; Run or Drain it.
func New(st *store.Store, h Handlers, log *slog.Logger, opt Options) *Worker {
	opt.setDefaults()
	return &Worker{st: st, h: h, opt: opt, log: log, kick: make(chan struct{}, 1),
		digest: Digest{Interval: opt.DigestInterval, Urgent: opt.UrgentInterval, Max: opt.MaxDigest}}
}

// Kick tells the worker that new items were committed.
func (w *Worker) Kick() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Run delivers items as they come until ctx ends. Stopping abandons the
// attempt under way (its command is killed); the item stays pending for
// the next start.
func (w *Worker) Run(ctx context.Context) {
	timer := w.opt.Clock.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.kick:
		case <-timer.C():
		}
		next, err := w.pass(ctx)
		if err != nil && ctx.Err() == nil {
			w.log.Error("outbox not read; retrying", "err", err)
			next = w.opt.Clock.Now().Add(w.opt.MinBackoff)
		}
		timer.Stop()
		if !next.IsZero() {
			timer.Reset(max(next.Sub(w.opt.Clock.Now()), 0))
		}
	}
}

// Drain delivers every item that is due now, once each (alerts as the
// digest lets them go), and returns how many remain pending: what a CLI
// does for the change it made without a daemon (the daemon's next start
// takes what is left).
func (w *Worker) Drain(ctx context.Context) (pending int, err error) {
	for {
		next, err := w.pass(ctx)
		if err != nil {
			return 0, err
		}
		// A pass that read a full batch asks to come back at once.
		if next.IsZero() || next.After(w.opt.Clock.Now()) || ctx.Err() != nil {
			break
		}
	}
	c, err := w.st.CountOutbox()
	return int(c.Pending), err
}

// pass attempts the due items once each and returns when the next one is
// due (zero: none pending). Actions run strictly in order: once one waits
// for a retry, the actions queued after it wait too, so an unban never
// runs before its ban; webhooks likewise, in a lane of their own. Alerts
// are independent of both: the digest decides which of them go.
func (w *Worker) pass(ctx context.Context) (time.Time, error) {
	nextAction, err := w.passInOrder(ctx, KindAction)
	if err != nil {
		return time.Time{}, err
	}
	nextHook, err := w.passInOrder(ctx, KindWebhook)
	if err != nil {
		return time.Time{}, err
	}
	nextAction = earliest(nextAction, nextHook)
	nextAlert, err := w.passAlerts(ctx)
	if err != nil {
		return time.Time{}, err
	}
	return earliest(nextAction, nextAlert), nil
}

// passInOrder delivers the items of an ordered lane (actions, webhooks)
// in order until one is not due or fails.
func (w *Worker) passInOrder(ctx context.Context, kind string) (time.Time, error) {
	items, err := w.st.PendingOfKind(kind, w.opt.Batch)
	if err != nil {
		return time.Time{}, err
	}
	for _, it := range items {
		if ctx.Err() != nil {
			return time.Time{}, nil
		}
		if it.NextAttempt.After(w.opt.Clock.Now()) {
			return it.NextAttempt, nil
		}
		retryAt, err := w.attempt(ctx, it)
		if err != nil || !retryAt.IsZero() {
			return retryAt, err
		}
	}
	if len(items) == w.opt.Batch {
		// Every item read was done and more wait: come back at once.
		return w.opt.Clock.Now(), nil
	}
	return time.Time{}, nil
}

// passAlerts sends the mails the digest lets go now, each alert of a
// mail marked done together once the mail is sent, and returns when to
// look again.
func (w *Worker) passAlerts(ctx context.Context) (time.Time, error) {
	queue, mailed, err := w.alertQueue()
	if err != nil {
		return time.Time{}, err
	}
	for ctx.Err() == nil {
		ids, next := w.digest.Plan(w.opt.Clock.Now(), mailed, queue)
		if len(ids) == 0 {
			return next, nil
		}
		sent, err := w.sendMail(ctx, ids)
		if err != nil {
			return time.Time{}, err
		}
		if sent {
			// What is left and the new mail times, without reading every
			// pending alert again (one mail per alert with no digest).
			queue = slices.DeleteFunc(queue, func(q store.Queued) bool { _, found := slices.BinarySearch(ids, q.ID); return found })
			mailed, err = w.st.Mailed()
		} else {
			// Failed items have a new due time, or were given up.
			queue, mailed, err = w.alertQueue()
		}
		if err != nil {
			return time.Time{}, err
		}
	}
	return time.Time{}, nil
}

// alertQueue reads the pending alerts and when mail last went out.
func (w *Worker) alertQueue() ([]store.Queued, store.Mailed, error) {
	queue, err := w.st.QueueOf(KindAlert, queueLimit)
	if err != nil {
		return nil, store.Mailed{}, err
	}
	mailed, err := w.st.Mailed()
	return queue, mailed, err
}

// sendMail sends the alerts of ids as one mail and records the outcome
// of each: all done (and the mail's time) in one transaction after the
// mail was sent, or all retried together. sent reports success.
func (w *Worker) sendMail(ctx context.Context, ids []int64) (sent bool, err error) {
	items, err := w.st.OutboxItems(ids)
	if err != nil {
		return false, err
	}
	var alerts []Alert
	var good []store.OutboxItem
	for _, it := range items {
		var a Alert
		if derr := json.Unmarshal(it.Payload, &a); derr != nil {
			// One unreadable item must not hold the others' mail.
			if _, err := w.record(ctx, []store.OutboxItem{it}, fmt.Errorf("outbox item %d: %w", it.ID, derr), false); err != nil {
				return false, err
			}
			continue
		}
		alerts, good = append(alerts, a), append(good, it)
	}
	if len(good) == 0 {
		return false, nil
	}
	actx, cancel := context.WithTimeout(ctx, w.opt.Timeout)
	serr := w.sendAlerts(actx, alerts)
	cancel()
	if serr != nil && ctx.Err() != nil {
		return false, nil // stopping: the items stay as they were
	}
	if _, err := w.record(ctx, good, serr, true); err != nil {
		return false, err
	}
	if serr == nil {
		w.log.Info("alert mail sent", "alerts", len(alerts), "first_event", alerts[0].Event, "first_addr", alerts[0].Addr, "first_jail", alerts[0].Jail)
	}
	return serr == nil, nil
}

func (w *Worker) sendAlerts(ctx context.Context, batch []Alert) error {
	if w.h.Alert == nil {
		return fmt.Errorf("no mail relay configured to send an alert")
	}
	return w.h.Alert(ctx, batch)
}

// earliest is the earlier of a and b, where zero means none.
func earliest(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero() || a.Before(b):
		return a
	}
	return b
}

// attempt delivers one item of an ordered lane (an action, a webhook)
// and records the outcome; it returns when to retry (zero: done or given
// up).
func (w *Worker) attempt(ctx context.Context, it store.OutboxItem) (time.Time, error) {
	actx, cancel := context.WithTimeout(ctx, w.timeoutOf(it))
	err := w.deliver(actx, it)
	cancel()
	if err != nil && ctx.Err() != nil {
		return time.Time{}, nil // stopping: the item stays as it was
	}
	return w.record(ctx, []store.OutboxItem{it}, err, false)
}

// record writes the outcome of one attempt at items, one action or the
// alerts of one mail, in one transaction: done (with the mail's time
// when mail is set) when cause is nil; else each item retried after the
// backoff of the most tried of them, so that a mail is retried whole, or
// given up once it is older than GiveUpAfter. It returns when to retry
// (zero: nothing to retry).
func (w *Worker) record(ctx context.Context, items []store.OutboxItem, cause error, mail bool) (time.Time, error) {
	now := w.opt.Clock.Now()
	// A bookkeeping write must not be lost to the stop that interrupted
	// the attempt.
	bctx := context.WithoutCancel(ctx)
	if cause == nil {
		return time.Time{}, w.st.Update(bctx, func(tx *store.Tx) error {
			urgent := false
			for _, it := range items {
				if err := tx.OutboxDone(it.ID, now); err != nil {
					return err
				}
				urgent = urgent || it.Urgent
			}
			if mail {
				return tx.SetMailed(now, urgent)
			}
			return nil
		})
	}
	attempts := 0
	for _, it := range items {
		attempts = max(attempts, it.Attempts)
	}
	retry, retried := now.Add(w.backoff(attempts)), 0
	err := w.st.Update(bctx, func(tx *store.Tx) error {
		for _, it := range items {
			if now.Sub(it.Created) >= w.opt.GiveUpAfter {
				if err := tx.OutboxGiveUp(it.ID, now, cause); err != nil {
					return err
				}
				continue
			}
			if err := tx.OutboxRetry(it.ID, retry, cause); err != nil {
				return err
			}
			retried++
		}
		return nil
	})
	if err != nil {
		return time.Time{}, err
	}
	for _, it := range items {
		if now.Sub(it.Created) >= w.opt.GiveUpAfter {
			w.log.Error("outbox item given up", "id", it.ID, "kind", it.Kind, "attempts", it.Attempts+1, "queued", it.Created, "err", cause)
		}
	}
	if retried == 0 {
		return time.Time{}, nil
	}
	w.log.Warn("outbox delivery failed; will retry", "kind", items[0].Kind, "items", retried, "first_id", items[0].ID, "attempt", attempts+1, "retry_at", retry, "err", cause)
	return retry, nil
}

// timeoutOf is how long one attempt of it may take: its payload's own
// timeout_sec (an action's action_timeout, a webhook's timeout), else
// Options.Timeout.
func (w *Worker) timeoutOf(it store.OutboxItem) time.Duration {
	var own struct {
		TimeoutSec float64 `json:"timeout_sec"`
	}
	if json.Unmarshal(it.Payload, &own) == nil && own.TimeoutSec > 0 {
		return time.Duration(own.TimeoutSec * float64(time.Second))
	}
	return w.opt.Timeout
}

func (w *Worker) backoff(attempts int) time.Duration {
	d := w.opt.MinBackoff
	for range min(attempts, 30) {
		if d >= w.opt.MaxBackoff {
			break
		}
		d *= 2
	}
	return min(d, w.opt.MaxBackoff)
}

func (w *Worker) deliver(ctx context.Context, it store.OutboxItem) error {
	switch it.Kind {
	case KindAction:
		return deliverAs(ctx, it, w.h.Action, func(a Action) {
			w.log.Info("action done", "event", a.Event, "addr", a.Addr, "jail", a.Jail)
		})
	case KindWebhook:
		return deliverAs(ctx, it, w.h.Webhook, func(h Webhook) {
			w.log.Info("webhook sent", "webhook", h.Hook, "event", h.Event, "addr", h.Addr, "account", h.Account, "jail", h.Jail)
		})
	}
	return fmt.Errorf("outbox item %d: unknown kind %q", it.ID, it.Kind)
}

// deliverAs decodes the item's payload as a T and hands it to handle.
func deliverAs[T any](ctx context.Context, it store.OutboxItem, handle func(context.Context, T) error, done func(T)) error {
	var v T
	if err := json.Unmarshal(it.Payload, &v); err != nil {
		return fmt.Errorf("outbox item %d: %w", it.ID, err)
	}
	if handle == nil {
		return fmt.Errorf("outbox item %d: nothing configured to deliver a %s", it.ID, it.Kind)
	}
	if err := handle(ctx, v); err != nil {
		return err
	}
	done(v)
	return nil
}

// ListLimit bounds the items List returns (the newest).
const ListLimit = 10_000

// List returns the items `mailjail outbox` shows: pending and given-up
// ones, and with all the delivered ones too, in the order queued.
func (w *Worker) List(_ context.Context, all bool) ([]store.OutboxItem, error) {
	return w.st.ListOutbox(all, ListLimit)
}

// Retry makes a pending or given-up item due now and wakes the worker.
// An alert then goes with the next mail the digest lets go; a given-up
// item that fails again is given up again (its age is past GiveUpAfter).
// It returns the item as it is now.
func (w *Worker) Retry(ctx context.Context, id int64) (store.OutboxItem, error) {
	it, err := w.st.RetryOutboxNow(ctx, id, w.opt.Clock.Now())
	if err == nil {
		w.Kick()
	}
	return it, err
}

// Drop deletes an item whatever its state and returns it.
func (w *Worker) Drop(ctx context.Context, id int64) (store.OutboxItem, error) {
	return w.st.DropOutbox(ctx, id)
}

// Summary is what an item is about, for listing it.
type Summary struct {
	Event string `json:"event"` // "ban", "unban", "suspend", ...
	Jail  string `json:"jail"`
	Addr  string `json:"addr"` // address, prefix or account
}

// Describe reads the summary of an item's payload; an unreadable payload
// has an empty one. Action, Webhook and Alert payloads all name these
// fields (JSON field names match case-insensitively); a webhook names an
// account apart.
func Describe(it store.OutboxItem) Summary {
	var s struct {
		Summary
		Account string `json:"account"`
	}
	json.Unmarshal(it.Payload, &s)
	if s.Addr == "" {
		s.Addr = s.Account
	}
	return s.Summary
}
