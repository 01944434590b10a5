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
	"github.com/mailjail/mailjail/internal/engine"
	"github.com/mailjail/mailjail/internal/store"
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
// active bans (a would-be ban of a log-only jail is not shared) and the
// unbans made here lately. Called from the cluster's goroutine: the
// engine's cache and the store are safe for that.
func (d *daemon) localRecords() ([]cluster.Record, error) {
	var out []cluster.Record
	for _, b := range d.eng.ActiveBans() {
		if !b.LogOnly {
			out = append(out, cluster.FromBan(b, d.cluster.name))
		}
	}
	lifted, err := d.st.LiftedSince(d.opt.Clock.Now().Add(-d.cfg.Global.DBPurgeAge))
	if err != nil {
		return nil, err
	}
	for _, b := range lifted {
		if shared(b) {
			out = append(out, cluster.FromBan(b, d.cluster.name))
		}
	}
	return out, nil
}

// shared reports whether a ban (or its lift) made here is the cluster's
// business: not a would-be ban, not an expiry (every node expires bans
// itself), not a lift that mirrors another node's.
func shared(b store.Ban) bool {
	if b.LogOnly {
		return false
	}
	if b.Lifted.IsZero() {
		return b.Origin == ""
	}
	return b.LiftedBy != "expired" && b.LiftedBy != "replaced" && !strings.HasPrefix(b.LiftedBy, engine.LiftedByCluster)
}

// shareChange publishes the bans and unbans of a change made here; it is
// the enforcer's OnChange, called from the loop, and never blocks.
func (d *daemon) shareChange(ch engine.Change) {
	if d.cluster == nil || ch.Imported {
		return
	}
	var recs []cluster.Record
	for _, b := range append(ch.Bans[:len(ch.Bans):len(ch.Bans)], ch.Lifted...) {
		if shared(b) {
			recs = append(recs, cluster.FromBan(b, d.cluster.name))
		}
	}
	d.cluster.node.Publish(recs)
}

// applyShared mirrors records of other nodes into the database and puts
// them in force. A failure is logged: the next resync brings them again.
func (d *daemon) applyShared(ctx context.Context, recs []cluster.Record) {
	now := d.opt.Clock.Now()
	var bans []store.Ban
	var lifts []engine.Lift
	for _, r := range recs {
		b, err := r.Ban()
		if err != nil {
			d.log.Warn("cluster: shared record skipped", "err", err)
			continue
		}
		if r.Lifted == 0 {
			bans = append(bans, b)
			continue
		}
		lifts = append(lifts, engine.Lift{Jail: b.Jail, Prefix: b.Prefix, At: time.UnixMicro(r.Lifted), By: r.By, Node: r.Node})
	}
	ch, err := d.eng.Mirror(ctx, bans, lifts, now)
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
