package daemon

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mailjail/mailjail/internal/cluster"
	"github.com/mailjail/mailjail/internal/control"
	"github.com/mailjail/mailjail/internal/enforce"
	"github.com/mailjail/mailjail/internal/engine"
)

// clusterNode is the daemon's part in a [cluster]: nil without one.
type clusterNode struct {
	node   *cluster.Node
	client redis.UniversalClient
	name   string
}

// newCluster joins the cluster of the configuration, if any. Nothing is
// connected yet: a node starts, reads logs and bans while Redis is down.
func (d *daemon) newCluster() error {
	if !d.cfg.Cluster.Enabled {
		return nil
	}
	c, err := openRedis(d.cfg)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	name := d.cfg.Cluster.Node
	sh := cluster.NewShared(c, d.cfg.Redis.KeyPrefix)
	node := cluster.NewNode(sh, cluster.Options{
		Name: name, Resync: d.cfg.Cluster.ResyncInterval.D, Local: d.localRecords, Clock: d.opt.Clock, Log: d.log.With("cluster", name)})
	d.cluster = &clusterNode{node: node, client: c, name: name}
	d.eng.SetSharedStrikes(cluster.NewStrikes(sh, node), name)
	return nil
}

// runCluster runs the node until ctx ends, then closes its client.
func (d *daemon) runCluster(ctx context.Context) {
	if d.cluster == nil {
		return
	}
	d.wg.Go(func() {
		d.cluster.node.Run(ctx)
		d.cluster.client.Close()
	})
}

// incoming is the channel of records from the cluster (nil without one:
// never ready).
func (d *daemon) incoming() <-chan []cluster.Record {
	if d.cluster == nil {
		return nil
	}
	return d.cluster.node.Incoming()
}

// localRecords is this node's state as the cluster compares it: the
// active bans and suspensions and those lifted here lately (what
// shareChange would publish). Called from the cluster's goroutine: the
// engine's cache and the store are safe for that.
func (d *daemon) localRecords() ([]cluster.Record, error) {
	since := d.opt.Clock.Now().Add(-d.cfg.Global.DBPurgeAge)
	lifted, err := d.st.LiftedSince(since)
	if err != nil {
		return nil, err
	}
	released, err := d.st.ReleasedSince(since)
	if err != nil {
		return nil, err
	}
	bans, held := d.eng.ActiveBansHeld()
	return d.records(engine.Change{Bans: bans, Held: held, Lifted: lifted, Suspended: d.eng.ActiveSuspensions(), Released: released}), nil
}

// records are the parts of a change that are the cluster's business: not
// a would-be ban of a log-only jail nor one a tripped circuit breaker
// holds (shared once resumed: a broken filter on one node must not lock
// clients out of every node), not an expiry (every node expires bans
// itself), not what mirrors another node's ban or unban.
func (d *daemon) records(ch engine.Change) []cluster.Record {
	var out []cluster.Record
	for _, b := range append(ch.Bans[:len(ch.Bans):len(ch.Bans)], ch.Resumed...) {
		if enforce.Given(b, ch.Held) && b.Origin == "" {
			out = append(out, cluster.FromBan(b, d.cluster.name))
		}
	}
	for _, b := range ch.Lifted {
		if !b.LogOnly && ownLift(b.LiftedBy) {
			out = append(out, cluster.FromBan(b, d.cluster.name))
		}
	}
	for _, s := range ch.Suspended {
		if s.Origin == "" {
			out = append(out, cluster.FromSuspension(s, d.cluster.name))
		}
	}
	for _, s := range ch.Released {
		if ownLift(s.LiftedBy) {
			out = append(out, cluster.FromSuspension(s, d.cluster.name))
		}
	}
	return out
}

// ownLift reports whether a lift was decided here (an unban, ignoreip,
// the allow list), not an expiry, a replacement or a peer's.
func ownLift(by string) bool {
	return by != "expired" && by != "replaced" && !strings.HasPrefix(by, engine.LiftedByCluster)
}

// shareChange publishes what a change made here; it is the enforcer's
// OnChange, called from the loop, and never blocks.
func (d *daemon) shareChange(ch engine.Change) {
	if d.cluster == nil || ch.Imported {
		return
	}
	d.cluster.node.Publish(d.records(ch))
}

// applyShared mirrors records of other nodes into the database and puts
// them in force. A failure is logged: the next resync brings them again.
func (d *daemon) applyShared(ctx context.Context, recs []cluster.Record) {
	now := d.opt.Clock.Now()
	var m engine.Mirrored
	for _, r := range recs {
		if err := mirrored(&m, r); err != nil {
			d.log.Warn("cluster: shared record skipped", "err", err)
		}
	}
	ch, err := d.eng.Mirror(ctx, m, now)
	if err != nil {
		d.log.Error("cluster: shared bans not mirrored (the next resync brings them again)", "err", err)
		return
	}
	d.enf.Apply(ctx, ch)
}

// fillCluster adds the cluster's state to status.
func (d *daemon) fillCluster(s *control.Status) {
	if d.cluster == nil {
		return
	}
	cs := d.cluster.node.Status()
	out := &control.ClusterStatus{Node: cs.Node, Connected: cs.Connected, LastError: cs.LastError,
		LastResync: timeOrNil(cs.LastResync), LastReceived: timeOrNil(cs.LastReceived), LagMS: cs.Lag.Milliseconds(),
		Published: cs.Published, Received: cs.Received, Peers: []control.ClusterPeer{}}
	for _, name := range slices.Sorted(maps.Keys(cs.Peers)) {
		out.Peers = append(out.Peers, control.ClusterPeer{Node: name, LastSeen: cs.Peers[name].UTC()})
	}
	if !cs.Connected && cs.LastError != "" {
		s.Warnings = append(s.Warnings, "cluster: Redis not reachable ("+cs.LastError+"); bans are enforced and recorded here and shared once it is back")
	}
	s.Cluster = out
}

// mirrored adds a record of another node to m.
func mirrored(m *engine.Mirrored, r cluster.Record) error {
	at, lifted := time.UnixMicro(r.Lifted), r.Lifted != 0
	if r.Account != "" {
		s, err := r.Suspension()
		if err == nil && lifted {
			m.Releases = append(m.Releases, engine.Release{Jail: s.Jail, Account: s.Account, At: at, By: r.By, Node: r.Node})
		} else if err == nil {
			m.Suspensions = append(m.Suspensions, s)
		}
		return err
	}
	b, err := r.Ban()
	if err == nil && lifted {
		m.Lifts = append(m.Lifts, engine.Lift{Jail: b.Jail, Prefix: b.Prefix, At: at, By: r.By, Node: r.Node})
	} else if err == nil {
		m.Bans = append(m.Bans, b)
	}
	return err
}
