package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/control"
	"github.com/mailjail/mailjail/internal/engine"
	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/rules"
)

// Exit codes shared by the CLI and the daemon's answers.
const (
	ExitOK          = 0
	ExitNotFound    = 1 // not found / nothing to do
	ExitUsage       = 2 // usage or configuration error
	ExitUnreachable = 3 // daemon or state unreachable
)

// Apply carries out a ban or unban request on e. The daemon calls it from
// its main loop; the CLI calls it under the lock when no daemon runs. Both
// then rewrite the map before answering, so the change is in force when
// the command returns. Every address is checked before anything changes:
// one bad address fails the whole request and changes nothing.
func Apply(ctx context.Context, e *engine.Engine, cfg *config.Config, req control.Request, now time.Time) control.Response {
	switch req.Op {
	case "ban":
		return applyBan(ctx, e, cfg, req, now)
	case "unban":
		return applyUnban(ctx, e, req, now)
	}
	return control.Response{Code: ExitUsage, Error: fmt.Sprintf("unknown operation %q", req.Op)}
}

func parseAddrs(addrs []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, a := range addrs {
		p, err := rules.ParsePrefix(a)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func applyBan(ctx context.Context, e *engine.Engine, cfg *config.Config, req control.Request, now time.Time) control.Response {
	prefixes, err := parseAddrs(req.Addrs)
	if err != nil || len(prefixes) == 0 {
		if err == nil {
			err = errors.New("no address given")
		}
		return control.Response{Code: ExitUsage, Error: err.Error()}
	}
	d := time.Hour
	if j := cfg.Jail(req.Jail); j != nil {
		d = j.BanTime
	} else if req.Jail != "" && req.Jail != engine.ManualJail {
		return control.Response{Code: ExitUsage, Error: fmt.Sprintf("unknown jail %q", req.Jail)}
	}
	switch {
	case req.Permanent:
		d = config.Permanent
	case req.For != "":
		if d, err = config.ParseDuration(req.For); err != nil {
			return control.Response{Code: ExitUsage, Error: "--for: " + err.Error()}
		}
	}
	reason := req.Reason
	if reason == "" {
		reason = "manual ban"
	}
	var resp control.Response
	for _, p := range prefixes {
		b, err := e.Ban(ctx, p, req.Jail, d, reason, now)
		if errors.Is(err, engine.ErrIgnored) {
			return control.Response{Code: ExitUsage, Error: err.Error() + " (remove it from ignoreip first)", Bans: resp.Bans}
		}
		if err != nil {
			return control.Response{Code: ExitUnreachable, Error: err.Error(), Bans: resp.Bans}
		}
		resp.Bans = append(resp.Bans, BanView(b))
	}
	resp.OK = true
	return resp
}

func applyUnban(ctx context.Context, e *engine.Engine, req control.Request, now time.Time) control.Response {
	var prefixes []netip.Prefix
	if req.All {
		seen := map[netip.Prefix]bool{}
		for _, b := range e.ActiveBans() {
			if (req.Jail == "" || b.Jail == req.Jail) && !seen[b.Prefix] {
				seen[b.Prefix] = true
				prefixes = append(prefixes, b.Prefix)
			}
		}
		if len(prefixes) == 0 {
			return control.Response{Code: ExitNotFound, Error: "no active bans"}
		}
	} else {
		var err error
		if prefixes, err = parseAddrs(req.Addrs); err != nil || len(prefixes) == 0 {
			if err == nil {
				err = errors.New("no address given (or --all)")
			}
			return control.Response{Code: ExitUsage, Error: err.Error()}
		}
	}
	resp := control.Response{OK: true}
	var missing []string
	for _, p := range prefixes {
		lifted, err := e.Unban(ctx, p, req.Jail, now, "cli")
		if errors.Is(err, store.ErrNotFound) {
			missing = append(missing, rules.FormatPrefix(p))
			continue
		}
		if err != nil {
			return control.Response{Code: ExitUnreachable, Error: err.Error(), Bans: resp.Bans}
		}
		for _, b := range lifted {
			resp.Bans = append(resp.Bans, BanView(b))
		}
	}
	if len(missing) > 0 {
		resp.OK, resp.Code = false, ExitNotFound
		resp.Error = fmt.Sprintf("not banned: %v", missing)
	}
	return resp
}

// BanView is the CLI's view of a stored ban.
func BanView(b store.Ban) control.Ban {
	v := control.Ban{Addr: rules.FormatPrefix(b.Prefix), Jail: b.Jail, Since: b.Since.UTC(), Permanent: b.Permanent(), Strikes: b.Strikes, Reason: b.Reason, LiftedBy: b.LiftedBy}
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
