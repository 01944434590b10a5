package control

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
	"unicode"

	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/core"
	"github.com/mailjail/mailjail/internal/enforce"
	"github.com/mailjail/mailjail/internal/outbox"
	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/rules"
)

// MaxAddrs bounds the addresses of one request: each is a durable
// transaction in the daemon's loop, which must answer well within the
// client's and the server's timeouts and go back to reading logs.
const MaxAddrs = 1000

// BanView is the CLI's view of a stored ban.
func BanView(b store.Ban) Ban {
	return Ban{Addr: rules.FormatPrefix(b.Prefix), Jail: b.Jail, Since: b.Since.UTC(), Until: optUTC(b.Until), Permanent: b.Permanent(),
		Strikes: b.Strikes, Reason: b.Reason, Lifted: optUTC(b.Lifted), LiftedBy: b.LiftedBy, LogOnly: b.LogOnly}
}

// optUTC is t in UTC, or nil for the zero time (null in JSON: no end,
// not lifted, not known).
func optUTC(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// viewsOf is view of each of xs, never nil (an empty JSON list, not null).
func viewsOf[T, V any](xs []T, view func(T) V) []V {
	out := make([]V, 0, len(xs))
	for _, x := range xs {
		out = append(out, view(x))
	}
	return out
}

// SuspensionView is the CLI's view of a stored suspension.
func SuspensionView(s store.Suspension) Suspension {
	return Suspension{Account: s.Account, Jail: s.Jail, Since: s.Since.UTC(), Until: optUTC(s.Until), Permanent: s.Permanent(), Enforced: s.Enforced,
		Strikes: s.Strikes, Reason: s.Reason, Sources: SourceViews(s.Sources), Lifted: optUTC(s.Lifted), LiftedBy: s.LiftedBy}
}

// SuspensionViews is SuspensionView of each, never nil.
func SuspensionViews(ss []store.Suspension) []Suspension { return viewsOf(ss, SuspensionView) }

// SourceViews is the CLI's view of an account's source addresses, never
// nil.
func SourceViews(srcs []store.Source) []Source {
	return viewsOf(srcs, func(s store.Source) Source { return Source{Addr: s.Addr.String(), Count: s.Count} })
}

// AllowView is the CLI's view of an entry of the database's allow list.
func AllowView(a store.Allowed) AllowEntry {
	return AllowEntry{Entry: a.Entry, Origin: OriginDatabase, Added: optUTC(a.Added), Reason: a.Reason}
}

// AllowViews is AllowView of each, never nil.
func AllowViews(as []store.Allowed) []AllowEntry { return viewsOf(as, AllowView) }

// RateEventView is the CLI's view of a rate event.
func RateEventView(e store.RateEvent) RateEvent {
	return RateEvent{Jail: e.Jail, Key: e.Key, At: e.At.UTC(), What: e.What, Level: e.Level, Burst: e.Burst, Rate: e.Rate, Urgent: e.Urgent, Detail: e.Detail}
}

// OutboxItemView is the CLI's view of an outbox item, with what it is
// about read from its payload.
func OutboxItemView(it store.OutboxItem) OutboxItem {
	sum := outbox.Describe(it)
	v := OutboxItem{ID: it.ID, Kind: it.Kind, State: OutboxPending, Urgent: it.Urgent, Event: sum.Event, Jail: sum.Jail, Addr: sum.Addr,
		Attempts: it.Attempts, Created: it.Created.UTC(), LastError: it.LastError, Done: optUTC(it.Done), GaveUp: optUTC(it.GaveUp)}
	switch {
	case !it.Done.IsZero():
		v.State = OutboxDone
	case !it.GaveUp.IsZero():
		v.State = OutboxGaveUp
	default:
		v.NextAttempt = optUTC(it.NextAttempt)
		if it.Attempts > 0 {
			v.State = OutboxRetrying
		}
	}
	return v
}

// OutboxItemViews is OutboxItemView of each, never nil.
func OutboxItemViews(items []store.OutboxItem) []OutboxItem { return viewsOf(items, OutboxItemView) }

// ParseOutboxID checks the item id of an outbox retry or drop.
func ParseOutboxID(r Request) (int64, error) {
	if r.ID <= 0 {
		return 0, fmt.Errorf("%w: an outbox item id is a positive number (mailjail outbox lists them), not %d", core.ErrInvalid, r.ID)
	}
	return r.ID, nil
}

// BanViews is BanView of each ban, never nil (JSON [] rather than null).
func BanViews(bans []store.Ban) []Ban { return viewsOf(bans, BanView) }

// ParseBan checks a ban request and turns it into the domain's. Every
// address is checked before anything changes: one bad address fails the
// whole request.
func ParseBan(r Request) (enforce.BanRequest, error) {
	out := enforce.BanRequest{Jail: r.Jail, Permanent: r.Permanent, Reason: r.Reason, Force: r.Force}
	var err error
	if out.Prefixes, err = parseAddrs(r.Addrs); err != nil {
		return out, err
	}
	out.For, err = parseFor(r)
	return out, err
}

// parseFor is the length a ban or suspension request asks for: 0 when it
// names none.
func parseFor(r Request) (time.Duration, error) {
	if r.For == "" {
		return 0, nil
	}
	if r.Permanent {
		return 0, fmt.Errorf("--for and --permanent exclude each other: %w", core.ErrInvalid)
	}
	d, err := config.ParseDuration(r.For)
	if err == nil && d <= 0 {
		err = fmt.Errorf("must be positive")
	}
	if err != nil {
		return 0, fmt.Errorf("--for: %v: %w", err, core.ErrInvalid)
	}
	return d, nil
}

// ParseUnban checks an unban request and turns it into the domain's.
func ParseUnban(r Request) (enforce.UnbanRequest, error) {
	out := enforce.UnbanRequest{All: r.All, Jail: r.Jail, Covering: r.Covering}
	if r.All && len(r.Addrs) > 0 {
		return out, fmt.Errorf("addresses or --all, not both: %w", core.ErrInvalid)
	}
	var err error
	out.Prefixes, err = parseAddrs(r.Addrs)
	return out, err
}

// ParseSuspend checks a suspension request and turns it into the
// domain's: every account normalised first, so one invalid account
// changes nothing.
func ParseSuspend(r Request) (enforce.SuspendRequest, error) {
	out := enforce.SuspendRequest{Permanent: r.Permanent, Reason: r.Reason}
	var err error
	if out.Accounts, err = parseAccounts(r.Accounts); err != nil {
		return out, err
	}
	out.For, err = parseFor(r)
	return out, err
}

// ParseRelease checks a release request: the accounts, normalised.
func ParseRelease(r Request) ([]string, error) { return parseAccounts(r.Accounts) }

// AllowRequest is an allow add or del as the daemon carries it out.
type AllowRequest struct {
	Entries []string // normalised senders and domains
	Reason  string
}

// ParseAllow checks an allow add or del: every entry normalised
// (rules.NormalizeAllowEntry) before anything changes.
func ParseAllow(r Request) (AllowRequest, error) {
	out := AllowRequest{Reason: r.Reason}
	if len(r.Entries) > MaxAddrs {
		return out, fmt.Errorf("%d entries in one request, at most %d: %w", len(r.Entries), MaxAddrs, core.ErrInvalid)
	}
	for _, e := range r.Entries {
		n, err := rules.NormalizeAllowEntry(e)
		if err != nil {
			return out, fmt.Errorf("allow list entry %q: %v: %w", e, err, core.ErrInvalid)
		}
		out.Entries = append(out.Entries, n)
	}
	return out, nil
}

func parseAccounts(accounts []string) ([]string, error) {
	if len(accounts) > MaxAddrs {
		return nil, fmt.Errorf("%d accounts in one request, at most %d: %w", len(accounts), MaxAddrs, core.ErrInvalid)
	}
	out := make([]string, 0, len(accounts))
	for _, a := range accounts {
		n, err := rules.NormalizeAccount(a)
		if err != nil {
			return nil, fmt.Errorf("invalid account %q: %v: %w", a, err, core.ErrInvalid)
		}
		out = append(out, n)
	}
	return out, nil
}

func parseAddrs(addrs []string) ([]netip.Prefix, error) {
	if len(addrs) > MaxAddrs {
		return nil, fmt.Errorf("%d addresses in one request, at most %d: %w", len(addrs), MaxAddrs, core.ErrInvalid)
	}
	out := make([]netip.Prefix, 0, len(addrs))
	for _, a := range addrs {
		p, err := rules.ParsePrefix(a)
		if err != nil {
			return nil, fmt.Errorf("%v: %w", err, core.ErrInvalid)
		}
		out = append(out, p)
	}
	return out, nil
}

// maxBy bounds who a resume names ("root (uid 0)").
const maxBy = 100

// ParseResume is who asks for a resume: the CLI's user, as it says ("" is
// recorded as "cli").
func ParseResume(r Request) (string, error) {
	if r.By == "" {
		return "cli", nil
	}
	if len(r.By) > maxBy || strings.ContainsFunc(r.By, unicode.IsControl) {
		return "", fmt.Errorf("resume: by must be at most %d printable bytes: %w", maxBy, core.ErrInvalid)
	}
	return r.By, nil
}
