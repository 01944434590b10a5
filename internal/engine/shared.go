package engine

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/mailjail/mailjail/rules"
)

// SharedStrike is one strike as the cluster counts it. ID names the log
// line it came from (node, file identity and offset, or journal cursor),
// so that a line read again after a crash between the shared count and
// the local commit is not counted twice.
type SharedStrike struct {
	Jail     string
	Key      netip.Addr
	ID       string
	At       time.Time
	FindTime time.Duration
	MaxRetry int
}

// SharedStrikes counts strikes together with the other nodes of a
// cluster. Strike returns the strikes of the key inside findtime on every
// node, this one included, and whether this node is the one to ban (the
// first to see maxretry reached: one ban record, one alert, cluster-wide).
// An error means the cluster cannot count now: the strike is counted
// here alone, as without a cluster.
type SharedStrikes interface {
	Strike(ctx context.Context, s SharedStrike) (count int, ban bool, err error)
}

// SetSharedStrikes makes the address jails count with the cluster.
func (e *Engine) SetSharedStrikes(s SharedStrikes, node string) { e.cluster, e.node = s, node }

// decide counts a strike of key in j and decides, with the cluster when
// there is one. The local window is kept either way, so that an outage
// of the cluster goes on from what this node saw.
func (e *Engine) decide(j *Jail, key netip.Addr, at, now time.Time) rules.Decision {
	k := rules.KeyOf(key)
	if e.cluster == nil || now.Sub(at) > j.Cfg.FindTime {
		return j.Policy.Strike(k, at, now)
	}
	count, ban, err := e.cluster.Strike(context.Background(), SharedStrike{Jail: j.Cfg.Name, Key: key, ID: e.strikeID(),
		At: at, FindTime: j.Cfg.FindTime, MaxRetry: j.Cfg.MaxRetry})
	if err != nil {
		return j.Policy.Strike(k, at, now)
	}
	j.Policy.Restore(k, at, now)
	if !ban {
		return rules.Decision{Counted: true, Count: count}
	}
	return j.Policy.Ban(k, now, count)
}

// strikeID names the line being staged, cluster-wide.
func (e *Engine) strikeID() string {
	p := e.linePos
	if p.Cursor != "" {
		return e.node + "|" + p.Cursor
	}
	return fmt.Sprintf("%s|%x:%x:%x:%d", e.node, p.Dev, p.Ino, p.Head, p.Offset)
}
