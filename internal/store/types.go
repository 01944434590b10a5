package store

import (
	"net/netip"
	"time"

	"github.com/mailjail/mailjail/internal/core"
)

// Strike is one counted event.
type Strike struct {
	Jail   string
	Addr   netip.Addr
	At     time.Time
	Bucket string
	Line   string
}

// Ban is one ban, active or lifted.
type Ban struct {
	ID       int64
	Jail     string
	Prefix   netip.Prefix
	Since    time.Time
	Until    time.Time // zero: permanent
	Strikes  int
	Reason   string
	Offense  int       // 1 for a first ban, n for the nth in the lookback; 0 for manual bans
	Lifted   time.Time // zero while active
	LiftedBy string
	// LogOnly marks a would-be ban of a jail in mode = "log-only": recorded
	// and alerted, never given to a target, not counted by escalation.
	LogOnly bool
	// Origin is the cluster node that made the ban when it was mirrored
	// from another node ("": made here).
	Origin string
}

// Permanent reports whether the ban has no end.
func (b Ban) Permanent() bool { return b.Until.IsZero() }

// ErrNotFound is returned when a lifted or looked-up ban does not exist.
var ErrNotFound = core.ErrNotFound
