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
// independent.
package outbox

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
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
		if _, err := tx.AddOutbox(it.Kind, b, now); err != nil {
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
	Batch       int           // items read at once (default 256)
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
}

// Worker delivers the outbox.
type Worker struct {
	st   *store.Store
	h    Handlers
	opt  Options
	log  *slog.Logger
	kick chan struct{}
}

// New makes a worker; Run or Drain it.
func New(st *store.Store, h Handlers, log *slog.Logger, opt Options) *Worker {
	opt.setDefaults()
	return &Worker{st: st, h: h, opt: opt, log: log, kick: make(chan struct{}, 1)}
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

// Drain delivers every item that is due now, once each, and returns how
// many remain pending: what a CLI does for the change it made without a
// daemon (the daemon's next start takes what is left).
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
// are independent: the due ones are attempted whatever waits.
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

// passAlerts attempts the alerts that are due.
func (w *Worker) passAlerts(ctx context.Context) (time.Time, error) {
	items, err := w.st.DueOfKind(KindAlert, w.opt.Clock.Now(), w.opt.Batch)
	if err != nil {
		return time.Time{}, err
	}
	for _, it := range items {
		if ctx.Err() != nil {
			return time.Time{}, nil
		}
		if _, err := w.attempt(ctx, it); err != nil {
			return time.Time{}, err
		}
	}
	if len(items) == w.opt.Batch {
		return w.opt.Clock.Now(), nil // every one read was attempted; more are due
	}
	return w.st.NextDue(KindAlert)
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

// attempt delivers one item and records the outcome; it returns when to
// retry (zero: done or given up).
func (w *Worker) attempt(ctx context.Context, it store.OutboxItem) (time.Time, error) {
	actx, cancel := context.WithTimeout(ctx, w.timeoutOf(it))
	err := w.deliver(actx, it)
	cancel()
	now := w.opt.Clock.Now()
	// A bookkeeping write must not be lost to the stop that interrupted
	// the attempt.
	bctx := context.WithoutCancel(ctx)
	switch {
	case err == nil:
		return time.Time{}, w.st.OutboxDone(bctx, it.ID, now)
	case ctx.Err() != nil:
		return time.Time{}, nil // stopping: the item stays as it was
	case now.Sub(it.Created) >= w.opt.GiveUpAfter:
		w.log.Error("outbox item given up", "id", it.ID, "kind", it.Kind, "attempts", it.Attempts+1, "queued", it.Created, "err", err)
		return time.Time{}, w.st.OutboxGiveUp(bctx, it.ID, now, err)
	}
	retry := now.Add(w.backoff(it.Attempts))
	w.log.Warn("outbox item failed; will retry", "id", it.ID, "kind", it.Kind, "attempt", it.Attempts+1, "retry_at", retry, "err", err)
	return retry, w.st.OutboxRetry(bctx, it.ID, retry, err)
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
	case KindAlert:
		return deliverAs(ctx, it, w.alertOne, func(a Alert) {
			w.log.Info("alert sent", "event", a.Event, "addr", a.Addr, "jail", a.Jail)
		})
	}
	return fmt.Errorf("outbox item %d: unknown kind %q", it.ID, it.Kind)
}

// alertOne sends one alert as a batch of one.
func (w *Worker) alertOne(ctx context.Context, a Alert) error {
	if w.h.Alert == nil {
		return fmt.Errorf("no mail relay configured to send an alert")
	}
	return w.h.Alert(ctx, []Alert{a})
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
