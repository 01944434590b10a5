package engine

import (
	"time"

	"github.com/mailjail/mailjail/internal/store"
)

// Retention is what the database keeps at now: history younger than age
// (dbpurgeage), and every jail's strikes inside its findtime however
// long that is, with the log lines of the maxMatches newest strikes of
// an address in a jail (dbmaxmatches).
func (e *Engine) Retention(now time.Time, age time.Duration, maxMatches int) store.Retention {
	r := store.Retention{Now: now, Age: age, MaxMatches: maxMatches, FindTime: map[string]time.Duration{}}
	for _, j := range e.jails {
		r.FindTime[j.Cfg.Name] = j.Cfg.FindTime
	}
	return r
}
