package enforce

import (
	"context"
	"io"
	"sync"
	"time"

	"github.com/mailjail/mailjail/internal/engine"
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

// Holder is a Source with a circuit breaker (the engine): it returns the
// active bans with, of the same moment, the first ban ID held back while
// it is tripped (0: none).
type Holder interface {
	ActiveBansHeld() ([]store.Ban, int64)
}

// Given reports whether a target is given b, an active ban, while bans
// from held on are held (0: none): a log-only jail's would-be ban never
// is, nor is a ban a tripped breaker holds.
func Given(b store.Ban, held int64) bool {
	return !b.LogOnly && !engine.Held(b, held)
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

// Counter is a Target that tells how many entries it held after its last
// successful sync (nftables intervals, Postfix keys after expansion), for
// status; a target without it is counted by the bans it was given.
type Counter interface {
	Entries() int
}

// Scoped wraps t so that it is given only the bans and suspensions of
// the jails keep accepts: each jail names its own targets.
func Scoped(t Target, keep func(jail string) bool) Target {
	return &scoped{Target: t, keep: keep}
}

type scoped struct {
	Target
	keep func(jail string) bool

	mu   sync.Mutex
	bans int // given at the last successful sync
}

func (s *scoped) Sync(ctx context.Context, st State) error {
	out := State{At: st.At}
	for _, b := range st.Bans {
		if s.keep(b.Jail) {
			out.Bans = append(out.Bans, b)
		}
	}
	for _, sp := range st.Suspensions {
		if s.keep(sp.Jail) {
			out.Suspensions = append(out.Suspensions, sp)
		}
	}
	if err := s.Target.Sync(ctx, out); err != nil {
		return err
	}
	s.mu.Lock()
	s.bans = len(out.Bans)
	s.mu.Unlock()
	return nil
}

func (s *scoped) Drifted() bool {
	c, ok := s.Target.(Checker)
	return ok && c.Drifted()
}

// Close closes the target when it holds a connection (Redis, netlink).
func (s *scoped) Close() error {
	if c, ok := s.Target.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

func (s *scoped) Entries() int {
	if c, ok := s.Target.(Counter); ok {
		return c.Entries()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bans
}
