package engine

import (
	"fmt"

	"github.com/mailjail/mailjail/rules"
)

// SetIgnore puts in force the addresses that ignoreip's host names and
// list files stand for (and, with ignoreself, the host's own addresses),
// as internal/allowlist last read and resolved them; until it is first
// called those entries ignore nothing. The caller then lifts the bans the
// new addresses exempt (LiftIgnored). On error nothing changes.
func (e *Engine) SetIgnore(res rules.Resolved) error {
	self := e.cfg.Global.IgnoreSelf
	global, err := rules.NewIgnoreSet(e.cfg.Global.IgnoreIP, res, self)
	if err != nil {
		return fmt.Errorf("global ignoreip: %w", err)
	}
	sets := make([]*rules.IPSet, len(e.jails))
	for i, j := range e.jails {
		if sets[i], err = rules.NewIgnoreSet(j.Cfg.IgnoreIP, res, self); err != nil {
			return fmt.Errorf("jail %s: ignoreip: %w", j.Cfg.Name, err)
		}
	}
	e.resolved, e.globalIgnore = res, global
	for i, j := range e.jails {
		j.ignore = sets[i]
	}
	return nil
}

// ignoreOf is the ignore list that applies to a ban in jail: the jail's,
// or [global]'s for a manual ban or one of a jail no longer configured.
func (e *Engine) ignoreOf(jail string) *rules.IPSet {
	if j := e.jail(jail); j != nil {
		return j.ignore
	}
	return e.globalIgnore
}
