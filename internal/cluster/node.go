package cluster

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/mailjail/mailjail/internal/core"
)

// Options configure a Node.
type Options struct {
	Name   string        // this node ([cluster] node)
	Resync time.Duration // full resync period ([cluster] resync_interval)
	// Local returns this node's state as records: its active bans and
	// the bans it lifted lately (not by expiry, not mirrored). It is
	// called from the node's goroutine and must be safe for that.
	Local func() ([]Record, error)
	Clock core.Clock
	Log   *slog.Logger
}

// Node keeps this node's bans and the shared state in step: it publishes
// what Publish is given, hands what other nodes publish to the daemon's
// loop (Incoming), and resyncs in full every Resync and after Redis comes
// back.
type Node struct {
	sh  *Shared
	opt Options
	in  chan []Record
	out chan []Record
	// kick asks for a resync at once (a publish failed: Redis is away,
	// and what it missed is published when it is back).
	kick chan struct{}

	mu sync.Mutex
	st Status
}

// Status is the node's view of the cluster, for status and metrics.
type Status struct {
	Node       string
	Connected  bool      // the last exchange with Redis succeeded
	LastError  string    // of the last failed exchange
	LastResync time.Time // end of the last full resync that succeeded
	// LastReceived is when the last record from another node arrived,
	// and Lag how long after it was made.
	LastReceived time.Time
	Lag          time.Duration
	Published    uint64
	Received     uint64
	Peers        map[string]time.Time // node -> last heartbeat
}

// beat is how often a node says it is alive; a peer silent for three
// beats is shown as such.
const beat = 5 * time.Second

// NewNode is a node on sh; Run starts it.
func NewNode(sh *Shared, opt Options) *Node {
	opt.Clock = core.OrReal(opt.Clock)
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	return &Node{sh: sh, opt: opt, in: make(chan []Record, 16), out: make(chan []Record, 1024), kick: make(chan struct{}, 1),
		st: Status{Node: opt.Name}}
}

// Incoming carries the records to mirror into the local database, to be
// applied by the daemon's loop.
func (n *Node) Incoming() <-chan []Record { return n.in }

// Publish shares records this node made. It never blocks the loop: when
// its queue is full the records are left to the next resync, which finds
// them in the database.
func (n *Node) Publish(recs []Record) {
	if len(recs) == 0 {
		return
	}
	select {
	case n.out <- recs:
	default:
		n.resyncSoon()
	}
}

func (n *Node) resyncSoon() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// Status returns the node's view of the cluster.
func (n *Node) Status() Status {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.st
	s.Peers = make(map[string]time.Time, len(n.st.Peers))
	for k, v := range n.st.Peers {
		s.Peers[k] = v
	}
	return s
}

func (n *Node) update(fn func(*Status)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	fn(&n.st)
}

// result records the outcome of an exchange with Redis; a failure after
// a success asks for a resync once Redis answers again.
func (n *Node) result(err error) {
	n.update(func(s *Status) {
		if err != nil {
			s.Connected, s.LastError = false, err.Error()
			return
		}
		s.Connected = true
	})
}

// Run runs the node until ctx ends: a subscriber, a publisher, the
// heartbeat and the resyncs.
func (n *Node) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { n.subscribe(ctx) })
	wg.Go(func() { n.publish(ctx) })
	n.loop(ctx)
	wg.Wait()
}

func (n *Node) loop(ctx context.Context) {
	resync := n.opt.Clock.NewTicker(n.opt.Resync)
	defer resync.Stop()
	heartbeat := n.opt.Clock.NewTicker(beat)
	defer heartbeat.Stop()
	n.heartbeat(ctx)
	n.resync(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-resync.C():
			n.resync(ctx)
		case <-n.kick:
			n.resync(ctx)
		case <-heartbeat.C():
			if wasDown := !n.Status().Connected; n.heartbeat(ctx) && wasDown {
				// Back: what happened meanwhile, in both directions.
				n.resync(ctx)
			}
		}
	}
}

func (n *Node) heartbeat(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, beat)
	defer cancel()
	err := n.sh.Beat(ctx, n.opt.Name, n.opt.Clock.Now())
	var peers map[string]time.Time
	if err == nil {
		peers, err = n.sh.Peers(ctx)
	}
	n.result(err)
	if err == nil {
		n.update(func(s *Status) { s.Peers = peers })
	}
	return err == nil
}

// resync compares the whole shared state with the local one and
// publishes and applies what Plan says.
func (n *Node) resync(ctx context.Context) {
	local, err := n.opt.Local()
	if err != nil {
		n.opt.Log.Error("cluster resync: local state not read", "err", err)
		return
	}
	shared, bad, err := n.sh.All(ctx)
	n.result(err)
	if err != nil {
		n.opt.Log.Warn("cluster resync: Redis not reachable; bans stay as they are here and are shared once it is back", "err", err)
		return
	}
	if bad > 0 {
		n.opt.Log.Warn("cluster resync: shared records this node cannot read were skipped", "count", bad)
	}
	now := n.opt.Clock.Now()
	publish, apply := Plan(local, shared, now)
	for _, r := range publish {
		if err := n.put(ctx, r); err != nil {
			return
		}
	}
	if len(apply) > 0 && !n.deliver(ctx, apply) {
		return
	}
	n.update(func(s *Status) { s.LastResync = now })
}

func (n *Node) put(ctx context.Context, r Record) error {
	ok, err := n.sh.Put(ctx, r)
	n.result(err)
	if err != nil {
		n.opt.Log.Warn("cluster: ban not shared yet (shared at the next resync)", "jail", r.Jail, "prefix", r.Prefix, "err", err)
		return err
	}
	if ok {
		n.update(func(s *Status) { s.Published++ })
	}
	return nil
}

func (n *Node) publish(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case recs := <-n.out:
			for _, r := range recs {
				if err := n.put(ctx, r); err != nil {
					n.resyncSoon()
					break
				}
			}
		}
	}
}

// deliver hands records to the daemon's loop.
func (n *Node) deliver(ctx context.Context, recs []Record) bool {
	select {
	case n.in <- recs:
		return true
	case <-ctx.Done():
		return false
	}
}

// subscribe hands each record another node publishes to the loop.
// go-redis reconnects and resubscribes by itself; what was published
// meanwhile is found by the resync that follows the heartbeat's return.
func (n *Node) subscribe(ctx context.Context) {
	ps := n.sh.Subscribe(ctx)
	defer ps.Close()
	ch := ps.Channel()
	for {
		select {
		case <-ctx.Done():
			return
		case msg, ok := <-ch:
			if !ok {
				return
			}
			r, err := decode([]byte(msg.Payload))
			if err != nil {
				n.opt.Log.Warn("cluster: unreadable shared record skipped", "err", err)
				continue
			}
			if r.Node == n.opt.Name {
				continue // our own, echoed
			}
			now := n.opt.Clock.Now()
			n.update(func(s *Status) {
				s.Received++
				s.LastReceived = now
				s.Lag = now.Sub(time.UnixMicro(r.Stamp))
			})
			if !n.deliver(ctx, []Record{r}) {
				return
			}
		}
	}
}
