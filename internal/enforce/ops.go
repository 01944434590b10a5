package enforce

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/core"
	"github.com/mailjail/mailjail/internal/engine"
	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/rules"
)

// BanRequest is an operator's ban.
type BanRequest struct {
	Prefixes  []netip.Prefix
	Jail      string        // "" or "manual": a manual ban
	For       time.Duration // 0: the jail's bantime (1h for manual bans)
	Permanent bool
	Reason    string
	// Force bans a prefix shorter than min_prefix_v4/v6 (a whole
	// provider, a country): refused without it.
	Force bool
}

// UnbanRequest is an operator's unban.
type UnbanRequest struct {
	Prefixes []netip.Prefix
	All      bool   // every active ban (of Jail, when set)
	Jail     string // "" for every jail
	// Covering also lifts a banned prefix that covers an address asked
	// for (the /64 a client was banned with): without it such an address
	// is reported, naming the prefix.
	Covering bool
}

// Ops carries out operator requests on the engine and puts them into
// force before returning: the daemon calls it from its loop (between log
// batches, so commands and bans from logs never race), the CLI under the
// lock when no daemon runs.
type Ops struct {
	Eng   *engine.Engine
	Cfg   *config.Config
	Enf   *Enforcer
	Clock core.Clock
}

// ErrNotEnforced means the change is saved in the database but a target
// could not be updated yet; it is retried.
var ErrNotEnforced = errors.New("state saved but not yet in force")

// Ban bans every prefix of r. One refused prefix (in ignoreip) stops the
// request there; the bans made before it stay, and are returned.
func (o *Ops) Ban(ctx context.Context, r BanRequest) ([]store.Ban, error) {
	if len(r.Prefixes) == 0 {
		return nil, fmt.Errorf("no address given: %w", core.ErrInvalid)
	}
	for _, p := range r.Prefixes {
		if err := o.checkSize(p, r.Force); err != nil {
			return nil, err
		}
		if err := o.checkExpressible(p, r.Jail); err != nil {
			return nil, err
		}
	}
	d := time.Hour
	if j := o.Cfg.Jail(r.Jail); j != nil {
		d = j.BanTime
	} else if r.Jail != "" && r.Jail != engine.ManualJail {
		return nil, fmt.Errorf("unknown jail %q: %w", r.Jail, core.ErrInvalid)
	}
	d = length(d, r.Permanent, r.For)
	reason := cmp.Or(r.Reason, "manual ban")
	now := o.Clock.Now()
	done := engine.Change{At: now}
	for _, p := range r.Prefixes {
		ch, err := o.Eng.Ban(ctx, p, r.Jail, d, reason, now)
		if err != nil {
			if errors.Is(err, engine.ErrIgnored) {
				err = fmt.Errorf("%w (remove it from ignoreip first)", err)
			}
			return done.Bans, errors.Join(err, o.enforce(ctx, done))
		}
		done.Bans = append(done.Bans, ch.Bans...)
	}
	return done.Bans, o.enforce(ctx, done)
}

// Unban lifts the bans of every prefix of r (or all of them). Prefixes
// that are not banned are reported with core.ErrNotFound after the
// others are lifted.
func (o *Ops) Unban(ctx context.Context, r UnbanRequest) ([]store.Ban, error) {
	if r.Jail != "" && r.Jail != engine.ManualJail && o.Cfg.Jail(r.Jail) == nil {
		return nil, fmt.Errorf("unknown jail %q: %w", r.Jail, core.ErrInvalid)
	}
	prefixes := r.Prefixes
	if r.All {
		prefixes = o.banned(r.Jail)
		if len(prefixes) == 0 {
			return nil, fmt.Errorf("no active bans: %w", core.ErrNotFound)
		}
	} else if len(prefixes) == 0 {
		return nil, fmt.Errorf("no address given (or --all): %w", core.ErrInvalid)
	}
	now := o.Clock.Now()
	done := engine.Change{At: now}
	var missing []string
	for _, p := range prefixes {
		ch, err := o.Eng.Unban(ctx, p, r.Jail, now, "cli")
		if errors.Is(err, core.ErrNotFound) {
			covering := o.covering(p, r.Jail)
			if len(covering) == 0 {
				missing = append(missing, rules.FormatPrefix(p))
				continue
			}
			if !r.Covering {
				missing = append(missing, fmt.Sprintf("%s (covered by the ban of %s: unban that, or use --covering)", rules.FormatPrefix(p), joinPrefixes(covering)))
				continue
			}
			for _, c := range covering {
				if ch, err = o.Eng.Unban(ctx, c, r.Jail, now, "cli"); err != nil && !errors.Is(err, core.ErrNotFound) {
					return done.Lifted, errors.Join(err, o.enforce(ctx, done))
				}
				done.Lifted = append(done.Lifted, ch.Lifted...)
			}
			continue
		}
		if err != nil {
			return done.Lifted, errors.Join(err, o.enforce(ctx, done))
		}
		done.Lifted = append(done.Lifted, ch.Lifted...)
	}
	err := o.enforce(ctx, done)
	if len(missing) > 0 {
		err = errors.Join(fmt.Errorf("not banned: %v: %w", missing, core.ErrNotFound), err)
	}
	return done.Lifted, err
}

// checkSize refuses a prefix shorter than the configured minimum unless
// forced.
func (o *Ops) checkSize(p netip.Prefix, force bool) error {
	min, family := o.Cfg.Global.MinPrefixV6, "min_prefix_v6"
	if p.Addr().Is4() {
		min, family = o.Cfg.Global.MinPrefixV4, "min_prefix_v4"
	}
	if p.Bits() < min && !force {
		return fmt.Errorf("refusing to ban %s: wider than /%d (%s); use --force if you mean it: %w", rules.FormatPrefix(p), min, family, core.ErrInvalid)
	}
	return nil
}

// checkExpressible refuses a prefix a target of the ban's jail cannot
// hold, even with force: rspamd looks a client up in a Redis map under
// its prefixes down to /8 and /64 only, so a wider one would be recorded
// and never enforced there.
func (o *Ops) checkExpressible(p netip.Prefix, jail string) error {
	if !slices.Contains(o.Cfg.TargetsOf(jail), config.TargetRspamdRedis) {
		return nil
	}
	min := config.MinRedisPrefixV6
	if p.Addr().Is4() {
		min = config.MinRedisPrefixV4
	}
	if p.Bits() < min {
		return fmt.Errorf("cannot ban %s: target %s holds prefixes of /%d and longer only (rspamd looks no wider): %w",
			rules.FormatPrefix(p), config.TargetRspamdRedis, min, core.ErrInvalid)
	}
	return nil
}

// covering is every banned prefix (not p itself) that contains p, of
// jail when set.
func (o *Ops) covering(p netip.Prefix, jail string) []netip.Prefix {
	var out []netip.Prefix
	for _, b := range o.Eng.ActiveBans() {
		if (jail == "" || b.Jail == jail) && b.Prefix != p && b.Prefix.Bits() <= p.Bits() && b.Prefix.Contains(p.Addr()) && !slices.Contains(out, b.Prefix) {
			out = append(out, b.Prefix)
		}
	}
	return out
}

func joinPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = rules.FormatPrefix(p)
	}
	return strings.Join(s, ", ")
}

// banned is every distinctly banned prefix, of jail when set.
func (o *Ops) banned(jail string) []netip.Prefix {
	var out []netip.Prefix
	seen := map[netip.Prefix]bool{}
	for _, b := range o.Eng.ActiveBans() {
		if (jail == "" || b.Jail == jail) && !seen[b.Prefix] {
			seen[b.Prefix] = true
			out = append(out, b.Prefix)
		}
	}
	return out
}

func (o *Ops) enforce(ctx context.Context, ch engine.Change) error {
	if err := o.Enf.ApplyNow(ctx, ch); err != nil {
		return fmt.Errorf("%w: %w", ErrNotEnforced, err)
	}
	return nil
}

// SuspendRequest is an operator's suspension of accounts.
type SuspendRequest struct {
	Accounts  []string // normalised
	For       time.Duration
	Permanent bool // until released
	Reason    string
}

// DefaultSuspension is how long a manual suspension lasts when the
// operator gives neither --for nor --permanent.
const DefaultSuspension = 24 * time.Hour

// Suspend suspends every account of r by hand.
func (o *Ops) Suspend(ctx context.Context, r SuspendRequest) ([]store.Suspension, error) {
	if len(r.Accounts) == 0 {
		return nil, fmt.Errorf("no account given: %w", core.ErrInvalid)
	}
	d := length(DefaultSuspension, r.Permanent, r.For)
	reason := cmp.Or(r.Reason, "manual suspension")
	now := o.Clock.Now()
	done := engine.Change{At: now}
	for _, a := range r.Accounts {
		ch, err := o.Eng.Suspend(ctx, a, "", d, reason, now)
		if err != nil {
			return done.Suspended, errors.Join(err, o.enforce(ctx, done))
		}
		done.Suspended = append(done.Suspended, ch.Suspended...)
	}
	return done.Suspended, o.enforce(ctx, done)
}

// Release lifts the suspensions of every account given (in every jail).
// Accounts that are not suspended are reported with core.ErrNotFound
// after the others are released.
func (o *Ops) Release(ctx context.Context, accounts []string) ([]store.Suspension, error) {
	if len(accounts) == 0 {
		return nil, fmt.Errorf("no account given: %w", core.ErrInvalid)
	}
	now := o.Clock.Now()
	done := engine.Change{At: now}
	var missing []string
	for _, a := range accounts {
		ch, err := o.Eng.Release(ctx, a, "", now, "cli")
		if errors.Is(err, core.ErrNotFound) {
			missing = append(missing, a)
			continue
		}
		if err != nil {
			return done.Released, errors.Join(err, o.enforce(ctx, done))
		}
		done.Released = append(done.Released, ch.Released...)
	}
	err := o.enforce(ctx, done)
	if len(missing) > 0 {
		err = errors.Join(fmt.Errorf("not suspended: %v: %w", missing, core.ErrNotFound), err)
	}
	return done.Released, err
}

// length is a manual change's length: config.Permanent, the one asked
// for, or def.
func length(def time.Duration, permanent bool, asked time.Duration) time.Duration {
	switch {
	case permanent:
		return config.Permanent
	case asked > 0:
		return asked
	}
	return def
}

// Resume releases a tripped circuit breaker: the held bans still active
// are given to every target before it returns. by names who resumed it
// (logged and recorded). It returns engine.ErrNotTripped (core.ErrNotFound)
// when the breaker is not tripped.
func (o *Ops) Resume(ctx context.Context, by string) (engine.Change, error) {
	ch, err := o.Eng.Resume(ctx, by, o.Clock.Now())
	if err != nil {
		return ch, err
	}
	return ch, o.enforce(ctx, ch)
}
