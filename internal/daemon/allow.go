package daemon

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/control"
	"github.com/mailjail/mailjail/internal/core"
	"github.com/mailjail/mailjail/internal/engine"
	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/rules"
)

// AllowAdd puts every entry of r on the database's allow list, for the
// daemon's socket and the CLI without a daemon alike. Entries already
// there are reported with core.ErrNotFound (nothing to do) after the
// others are added; the engine's list follows at once.
func AllowAdd(ctx context.Context, eng *engine.Engine, r control.AllowRequest, now time.Time) ([]store.Allowed, error) {
	if len(r.Entries) == 0 {
		return nil, fmt.Errorf("no entry given: %w", core.ErrInvalid)
	}
	var added []store.Allowed
	var already []string
	for _, e := range r.Entries {
		ok, err := eng.AllowAdd(ctx, e, r.Reason, now)
		if err != nil {
			return added, err
		}
		if !ok {
			already = append(already, e)
			continue
		}
		added = append(added, store.Allowed{Entry: e, Added: now, Reason: r.Reason})
	}
	if len(already) > 0 {
		return added, fmt.Errorf("already on the allow list: %v: %w", already, core.ErrNotFound)
	}
	return added, nil
}

// AllowDel takes every entry of r off the database's allow list. Entries
// that are not there are reported with core.ErrNotFound after the others
// are removed; one that allow_senders lists is named as such, since only
// the configuration can take it off.
func AllowDel(ctx context.Context, eng *engine.Engine, cfg *config.Config, r control.AllowRequest) ([]store.Allowed, error) {
	if len(r.Entries) == 0 {
		return nil, fmt.Errorf("no entry given: %w", core.ErrInvalid)
	}
	var removed []store.Allowed
	var missing []string
	for _, e := range r.Entries {
		ok, err := eng.AllowDel(ctx, e)
		if err != nil {
			return removed, err
		}
		switch {
		case ok:
			removed = append(removed, store.Allowed{Entry: e})
		case configured(cfg, e):
			missing = append(missing, e+" (listed in global.allow_senders of "+cfg.Source+": remove it there)")
		default:
			missing = append(missing, e)
		}
	}
	if len(missing) > 0 {
		return removed, fmt.Errorf("not on the database's allow list: %v: %w", missing, core.ErrNotFound)
	}
	return removed, nil
}

// configured reports whether allow_senders lists entry (normalised).
func configured(cfg *config.Config, entry string) bool {
	return slices.ContainsFunc(cfg.Global.AllowSenders, func(s string) bool {
		n, err := rules.NormalizeAllowEntry(s)
		return err == nil && n == entry
	})
}
