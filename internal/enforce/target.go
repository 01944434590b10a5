package enforce

import (
	"context"
	"time"

	"github.com/mailjail/mailjail/internal/store"
)

// State is what every target must hold.
type State struct {
	// Bans are the active bans: single addresses and prefixes, of every
	// jail. The same prefix may be banned by several jails.
	Bans []store.Ban
	// Suspensions are the enforced active suspensions of accounts.
	Suspensions []store.Suspension
	// At is when the state was taken, by the enforcer's clock.
	At time.Time
}

// Source is what targets follow: the engine's cache of the database's
// active bans and suspensions.
type Source interface {
	ActiveBans() []store.Ban
	ActiveSuspensions() []store.Suspension
}

// Target is one place where bans are enforced: the rspamd map file today;
// a Postfix table, an nftables set and an rspamd Redis hash plug in the
// same way.
type Target interface {
	// Name identifies the target in logs and status ("rspamd-map:PATH").
	Name() string
	// Sync makes the target hold exactly s. It must leave the target
	// as it was, or wholly updated: never half-written.
	Sync(ctx context.Context, s State) error
}

// Checker is a Target that can tell cheaply whether it still holds what
// it was last synced to (a map file deleted or replaced by hand). The
// reconciler asks every check interval and resyncs one that drifted.
type Checker interface {
	Drifted() bool
}
