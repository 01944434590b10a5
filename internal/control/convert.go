package control

import (
	"fmt"
	"net/netip"

	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/core"
	"github.com/mailjail/mailjail/internal/enforce"
	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/rules"
)

// MaxAddrs bounds the addresses of one request: each is a durable
// transaction in the daemon's loop, which must answer well within the
// client's and the server's timeouts and go back to reading logs.
const MaxAddrs = 1000

// BanView is the CLI's view of a stored ban.
func BanView(b store.Ban) Ban {
	v := Ban{Addr: rules.FormatPrefix(b.Prefix), Jail: b.Jail, Since: b.Since.UTC(), Permanent: b.Permanent(), Strikes: b.Strikes, Reason: b.Reason, LiftedBy: b.LiftedBy}
	if !b.Until.IsZero() {
		u := b.Until.UTC()
		v.Until = &u
	}
	if !b.Lifted.IsZero() {
		l := b.Lifted.UTC()
		v.Lifted = &l
	}
	return v
}

// RateEventView is the CLI's view of a rate event.
func RateEventView(e store.RateEvent) RateEvent {
	return RateEvent{Jail: e.Jail, Key: e.Key, At: e.At.UTC(), What: e.What, Level: e.Level, Burst: e.Burst, Rate: e.Rate, Urgent: e.Urgent, Detail: e.Detail}
}

// BanViews is BanView of each ban, never nil (JSON [] rather than null).
func BanViews(bans []store.Ban) []Ban {
	out := make([]Ban, 0, len(bans))
	for _, b := range bans {
		out = append(out, BanView(b))
	}
	return out
}

// ParseBan checks a ban request and turns it into the domain's. Every
// address is checked before anything changes: one bad address fails the
// whole request.
func ParseBan(r Request) (enforce.BanRequest, error) {
	out := enforce.BanRequest{Jail: r.Jail, Permanent: r.Permanent, Reason: r.Reason, Force: r.Force}
	var err error
	if out.Prefixes, err = parseAddrs(r.Addrs); err != nil {
		return out, err
	}
	if r.For != "" {
		if r.Permanent {
			return out, fmt.Errorf("--for and --permanent exclude each other: %w", core.ErrInvalid)
		}
		if out.For, err = config.ParseDuration(r.For); err != nil || out.For <= 0 {
			if err == nil {
				err = fmt.Errorf("must be positive")
			}
			return out, fmt.Errorf("--for: %v: %w", err, core.ErrInvalid)
		}
	}
	return out, nil
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
