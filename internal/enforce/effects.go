package enforce

import (
	"fmt"
	"strings"
	"time"

	"github.com/mailjail/mailjail/actions"
	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/engine"
	"github.com/mailjail/mailjail/internal/outbox"
	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/notify"
	"github.com/mailjail/mailjail/rules"
)

// alertLines is how many of an address's latest log lines an alert quotes.
const alertLines = 5

// Effects returns the engine hook that queues, in a change's own
// transaction, the jails' ban and unban commands, their webhooks' events
// (bans, unbans, suspensions, releases) and, when alert mail is
// configured, the alerts: of the jails with alert = true, of manual bans
// and suspensions when alert.report_manual is set, and of unbans too
// when alert.report_unbans is. A log-only jail's would-be bans and
// suspensions are alerted as such ("would ban") and run no command nor
// webhook; the bans a tripped circuit breaker holds run theirs when it is
// resumed, and the trip itself is an urgent alert.
func Effects(cfg *config.Config) engine.Effects {
	alerts := cfg.Alert.Enabled()
	// alerted reports whether jail's bans and suspensions are alerted; an
	// account jail's bans are its account's sources, which the account's
	// one alert names.
	alerted := func(jail string, accountsToo bool) bool {
		if !alerts {
			return false
		}
		if jail == engine.ManualJail {
			return cfg.Alert.ReportManual
		}
		j := cfg.Jail(jail)
		return j != nil && j.Alert && (accountsToo || !j.Accounts())
	}
	return func(tx *store.Tx, ch engine.Change) error {
		var items []outbox.Item
		for _, b := range ch.Bans {
			// A ban mirrored from another cluster node is alerted by
			// its own node, once for the cluster.
			if alerted(b.Jail, false) && b.Origin == "" {
				a, err := banAlert(tx, b)
				if err != nil {
					return err
				}
				items = append(items, outbox.Item{Kind: outbox.KindAlert, Payload: a})
			}
			if Given(b, ch.Held) {
				items = banCommands(cfg, items, b)
			}
		}
		for _, b := range ch.Resumed {
			items = banCommands(cfg, items, b)
		}
		for _, b := range ch.Lifted {
			mirrored := strings.HasPrefix(b.LiftedBy, engine.LiftedByCluster)
			// A would-be or held ban never ran its ban command.
			if j := cfg.Jail(b.Jail); j != nil && Given(b, ch.Held) {
				addr := rules.FormatPrefix(b.Prefix)
				items = appendAction(items, j, "unban", j.UnbanAction, actions.Vars{IP: addr, Jail: b.Jail})
				if !mirrored {
					items = appendHooks(cfg, items, j, actions.HookEvent{Event: "unban", Jail: b.Jail, Addr: addr, Since: b.Since, Until: b.Until, Reason: liftReason(b.LiftedBy)})
				}
			}
			if cfg.Alert.ReportUnbans && alerted(b.Jail, false) && !b.LogOnly && !mirrored {
				items = append(items, outbox.Item{Kind: outbox.KindAlert, Payload: unbanAlert(b)})
			}
		}
		// Webhooks of suspensions and releases; one that a jail with
		// suspend = false only recorded suspended nothing, so it is not
		// reported as a suspension (the alert tells of it).
		for _, sp := range ch.Suspended {
			if sp.Origin != "" {
				continue // its own node alerts and calls the webhooks
			}
			if j := cfg.Jail(sp.Jail); j != nil && sp.Enforced {
				items = appendHooks(cfg, items, j, actions.HookEvent{Event: "suspend", Jail: sp.Jail, Account: sp.Account, Since: sp.Since, Until: sp.Until, Reason: sp.Reason})
			}
			if alerted(sp.Jail, true) {
				a, err := suspensionAlert(cfg, tx, sp, ch.Bans)
				if err != nil {
					return err
				}
				items = append(items, outbox.Item{Kind: outbox.KindAlert, Payload: a})
			}
		}
		for _, sp := range ch.Released {
			if j := cfg.Jail(sp.Jail); j != nil && sp.Enforced && !strings.HasPrefix(sp.LiftedBy, engine.LiftedByCluster) {
				items = appendHooks(cfg, items, j, actions.HookEvent{Event: "release", Jail: sp.Jail, Account: sp.Account, Since: sp.Since, Until: sp.Until, Reason: liftReason(sp.LiftedBy)})
			}
		}
		for _, ev := range ch.Urgent {
			if j := cfg.Jail(ev.Jail); alerts && j != nil && j.Alert {
				items = append(items, outbox.Item{Kind: outbox.KindAlert, Payload: urgentAlert(ev)})
			}
		}
		if ch.Trip != nil && alerts {
			items = append(items, outbox.Item{Kind: outbox.KindAlert, Payload: tripAlert(*ch.Trip)})
		}
		return outbox.Queue(tx, ch.At, items...)
	}
}

// banCommands adds a jail's ban command and webhooks for b, now in force
// (manual bans run nothing; imported ones never get here).
func banCommands(cfg *config.Config, items []outbox.Item, b store.Ban) []outbox.Item {
	j := cfg.Jail(b.Jail)
	if j == nil {
		return items
	}
	addr := rules.FormatPrefix(b.Prefix)
	items = appendAction(items, j, "ban", j.BanAction, actions.Vars{IP: addr, Jail: b.Jail, BanTime: b.Until.Sub(b.Since)})
	if b.Origin != "" {
		// Mirrored from another cluster node: this node's firewall
		// command runs here, the webhooks once, on that node.
		return items
	}
	return appendHooks(cfg, items, j, actions.HookEvent{Event: "ban", Jail: b.Jail, Addr: addr, Since: b.Since, Until: b.Until, Reason: b.Reason})
}

// tripAlert tells of the circuit breaker tripping: urgent, since every
// ban from then on waits for an administrator.
func tripAlert(st engine.BreakerState) outbox.Alert {
	return outbox.Alert{Event: notify.EventBreaker, Since: st.Tripped, Command: "mailjail resume",
		Reason: fmt.Sprintf("%s. Bans are still recorded, but the targets get no new ones (nor their actions and webhooks) until mailjail resume; "+
			"check what is banned with mailjail list first: a filter matching every client after an upgrade looks like this", st.Reason)}
}

// unbanAlert tells of a lifted ban, when (Since) and by whom ("cli" for
// mailjail unban, "expired" at its end); Until is the end the ban had.
func unbanAlert(b store.Ban) outbox.Alert {
	return outbox.Alert{Event: "unban", Jail: b.Jail, Addr: rules.FormatPrefix(b.Prefix), Since: b.Lifted, Until: b.Until,
		Strikes: b.Strikes, Offense: b.Offense, Reason: fmt.Sprintf("ban of %s lifted by %s", b.Since.UTC().Format(time.RFC3339), b.LiftedBy)}
}

// appendAction adds the jail's command for event, when it has one, with
// the jail's action_timeout.
func appendAction(items []outbox.Item, j *config.Jail, event string, argv []string, v actions.Vars) []outbox.Item {
	if len(argv) == 0 {
		return items
	}
	return append(items, outbox.Item{Kind: outbox.KindAction, Payload: outbox.Action{Event: event, Jail: v.Jail, Addr: v.IP,
		Argv: actions.Expand(argv, v), TimeoutSec: j.ActionTimeout.Seconds()}})
}

// appendHooks adds an item for each of the jail's webhooks that wants
// the event, with the webhook's timeout.
func appendHooks(cfg *config.Config, items []outbox.Item, j *config.Jail, ev actions.HookEvent) []outbox.Item {
	for _, name := range j.Webhooks {
		if w := cfg.Webhook(name); w != nil && w.Wants(ev.Event) {
			items = append(items, outbox.Item{Kind: outbox.KindWebhook, Payload: outbox.Webhook{Hook: name, HookEvent: ev, TimeoutSec: w.Timeout.D.Seconds()}})
		}
	}
	return items
}

// liftReason is a webhook's reason for an unban or release: who lifted
// it ("expired", "cli", "ignoreip", "allow list").
func liftReason(by string) string {
	if by == "" {
		return "lifted"
	}
	return "lifted: " + by
}

func banAlert(tx *store.Tx, b store.Ban) (outbox.Alert, error) {
	a := outbox.Alert{Event: "ban", Jail: b.Jail, Addr: rules.FormatPrefix(b.Prefix), Since: b.Since, Until: b.Until,
		Strikes: b.Strikes, Offense: b.Offense, Reason: b.Reason}
	if b.LogOnly {
		a.Event = notify.EventWouldBan
		a.Reason += ` (mode = "log-only": recorded, not enforced)`
	}
	if b.Prefix.IsSingleIP() {
		strikes, err := tx.RecentStrikes(b.Prefix.Addr(), alertLines)
		if err != nil {
			return a, err
		}
		for _, s := range strikes {
			if s.Line != "" { // cleared beyond dbmaxmatches
				a.Lines = append(a.Lines, s.Line)
			}
		}
	}
	history, err := tx.BanHistory(b.Prefix, alertHistory+1)
	if err != nil {
		return a, err
	}
	for _, h := range history {
		if h.ID != b.ID {
			a.History = append(a.History, historyLine(h))
		}
	}
	return a, nil
}

// alertHistory is how many earlier bans of the same address an alert
// lists: enough to see a repeat offender's escalation.
const alertHistory = 5

// historyLine is one earlier ban as an alert lists it.
func historyLine(b store.Ban) string {
	length := "permanent"
	if !b.Until.IsZero() {
		length = config.FormatDuration(b.Until.Sub(b.Since))
	}
	line := fmt.Sprintf("%s %s %s", b.Since.UTC().Format(time.RFC3339), b.Jail, length)
	if !b.Lifted.IsZero() {
		line += " (lifted " + b.Lifted.UTC().Format(time.RFC3339) + " by " + b.LiftedBy + ")"
	}
	return line
}

func urgentAlert(ev store.RateEvent) outbox.Alert {
	return outbox.Alert{Event: "urgent rate", Jail: ev.Jail, Addr: ev.Key, Since: ev.At,
		Reason: fmt.Sprintf("%s reached %.1f, %.1f× the burst of %g (rate %s): %s", ev.What, ev.Level, ev.Level/ev.Burst, ev.Burst, ev.Rate, ev.Detail)}
}

// suspensionAlert tells of an account over its limit: the limit it
// crossed, where its strikes came from (and which of those addresses
// were banned), its latest log lines and the command that releases it.
func suspensionAlert(cfg *config.Config, tx *store.Tx, sp store.Suspension, bans []store.Ban) (outbox.Alert, error) {
	a := outbox.Alert{Event: "suspend", Jail: sp.Jail, Addr: sp.Account, Since: sp.Since, Until: sp.Until,
		Strikes: sp.Strikes, Offense: sp.Offense, Reason: sp.Reason, Command: notify.ReleaseCommand(sp.Account)}
	switch j := cfg.Jail(sp.Jail); {
	case sp.Enforced:
	case j != nil && j.LogOnly():
		a.Event = notify.EventWouldSuspend
		a.Reason += ` (mode = "log-only": not suspended)`
		a.Command = ""
	default:
		a.Event = "account over its limit"
		a.Reason += " (the jail has suspend = false: not suspended)"
		a.Command = ""
	}
	for _, src := range sp.Sources {
		state := "not banned (ignoreip, already banned or ban_sources = false)"
		for _, b := range bans {
			if b.Jail == sp.Jail && b.Prefix.Contains(src.Addr) {
				state = "banned as " + rules.FormatPrefix(b.Prefix)
				if b.LogOnly {
					state = "would be banned as " + rules.FormatPrefix(b.Prefix)
				}
				break
			}
		}
		a.Sources = append(a.Sources, fmt.Sprintf("%s: %d of its strikes, %s", src.Addr, src.Count, state))
	}
	strikes, err := tx.RecentAccountStrikes(sp.Account, alertLines)
	if err != nil {
		return a, err
	}
	for _, st := range strikes {
		a.Lines = append(a.Lines, st.Line)
	}
	return a, nil
}
