// Package metrics exports the daemon's state to Prometheus and answers
// health checks. It holds no counters of its own (but the sync duration
// histogram, which needs observations): at each scrape it asks the daemon
// for a Snapshot of the counters the daemon keeps anyway and turns it
// into metrics, so the core stays free of instrumentation. Every label
// value comes from the configuration (jail names, followed paths, target
// names), never from log content.
package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Snapshot is what the daemon knows at one instant, as plain numbers.
type Snapshot struct {
	Sources []Source
	Jails   []Jail
	Targets []Target
	Outbox  *Outbox // nil: not known (no outbox table)
	// BreakerHeld is how many active bans the tripped circuit breaker
	// holds back from the targets (0: none, or not tripped).
	BreakerHeld int
}

// Source is one followed log file or journal selection.
type Source struct {
	Name    string // the path, or the journal selection's key
	Kind    string // "file" or "journal"
	Lines   uint64 // lines read since the start
	Matches uint64 // filter matches among them
	// Lag is how many bytes of the file are not read yet (size minus
	// offset); only files have one.
	Lag    int64
	HasLag bool
	Last   time.Time // when its latest line was read (zero: none since the start)
}

// Jail is one jail's counters since the start and its state now.
type Jail struct {
	Name string
	// FromLogs is set for the configured jails, which read logs; the
	// manual jail (the CLI's bans) has no matches, strikes or keys.
	FromLogs bool
	Filter   string // "" for a rate jail, which has no prefilter
	// Prefiltered lines passed the filter's prefilter; Matches were
	// matched by the filter.
	Prefiltered, Matches                                     uint64
	Strikes, Bans, Unbans, Suspensions, Releases, RateEvents uint64
	ActiveBans, ActiveSuspensions                            int
	WouldBans                                                int // a log-only jail's active would-be bans (not in ActiveBans)
	BucketKeys                                               int // keys a rate jail tracks
	Tracked                                                  int // addresses or accounts holding strikes
}

// Target is one enforcement target's counters.
type Target struct {
	Name    string
	Syncs   uint64 // successful syncs
	Errors  uint64 // failed syncs
	Entries int    // entries it holds
	Repairs uint64 // drifts found and repaired
}

// Outbox counts the outbox's items now.
type Outbox struct {
	Pending, Failed, GaveUp int64
}

// SnapshotFunc takes a snapshot; ctx bounds how long it may wait (the
// daemon answers between log batches).
type SnapshotFunc func(ctx context.Context) (Snapshot, error)

// Collector is a prometheus.Collector over SnapshotFunc.
type Collector struct {
	snap    SnapshotFunc
	timeout time.Duration
	failed  prometheus.Counter
}

// desc is one metric: its name, help, labels and type.
type desc struct {
	name string
	d    *prometheus.Desc
	t    prometheus.ValueType
}

func newDesc(name, help string, t prometheus.ValueType, labels ...string) desc {
	return desc{"mailjail_" + name, prometheus.NewDesc("mailjail_"+name, help, labels, nil), t}
}

// The metrics, documented in the README ("Metrics"): keep both in step.
var (
	linesRead   = newDesc("lines_read_total", "Log lines read from a source since the daemon started.", prometheus.CounterValue, "source", "kind")
	linesMatch  = newDesc("lines_matched_total", "Log lines of a source that a jail's filter matched.", prometheus.CounterValue, "source", "kind")
	readLag     = newDesc("read_lag_bytes", "Bytes of a followed log file not read yet (size minus read offset).", prometheus.GaugeValue, "source")
	prefiltered = newDesc("prefilter_hits_total", "Lines that passed a jail filter's literal prefilter (matched or not).", prometheus.CounterValue, "jail", "filter")
	matches     = newDesc("filter_matches_total", "Lines a jail's filter matched (events).", prometheus.CounterValue, "jail")
	strikes     = newDesc("strikes_total", "Strikes counted against addresses or accounts.", prometheus.CounterValue, "jail")
	bans        = newDesc("bans_total", "Bans made (committed); jail \"manual\" for the CLI's.", prometheus.CounterValue, "jail")
	unbans      = newDesc("unbans_total", "Bans lifted: ended, by the CLI, or by an ignore or allow entry.", prometheus.CounterValue, "jail")
	suspensions = newDesc("suspensions_total", "Account suspensions made (committed).", prometheus.CounterValue, "jail")
	releases    = newDesc("releases_total", "Account suspensions lifted.", prometheus.CounterValue, "jail")
	rateEvents  = newDesc("rate_events_total", "Rate limit events (a key over its limit) recorded.", prometheus.CounterValue, "jail")
	activeBans  = newDesc("active_bans", "Bans in force now (would-be bans of log-only jails not counted).", prometheus.GaugeValue, "jail")
	activeSusp  = newDesc("active_suspensions", "Account suspensions in force now.", prometheus.GaugeValue, "jail")
	bucketKeys  = newDesc("bucket_keys", "Keys a rate jail's bucket table tracks now.", prometheus.GaugeValue, "jail")
	tracked     = newDesc("tracked_keys", "Addresses or accounts holding strikes in a jail's window now.", prometheus.GaugeValue, "jail")
	syncs       = newDesc("target_syncs_total", "Successful writes of an enforcement target.", prometheus.CounterValue, "target")
	syncErrors  = newDesc("target_sync_errors_total", "Failed writes of an enforcement target (retried).", prometheus.CounterValue, "target")
	repairs     = newDesc("target_repairs_total", "Drifts of an enforcement target found and repaired.", prometheus.CounterValue, "target")
	entries     = newDesc("target_entries", "Entries an enforcement target holds after its last successful write.", prometheus.GaugeValue, "target")
	obPending   = newDesc("outbox_pending", "Actions, webhooks and alerts waiting in the outbox.", prometheus.GaugeValue)
	obFailed    = newDesc("outbox_failed", "Outbox items waiting after a failed attempt (a subset of pending).", prometheus.GaugeValue)
	obGaveUp    = newDesc("outbox_given_up", "Outbox items abandoned after retrying for a day, kept in the database.", prometheus.GaugeValue)
	wouldBans   = newDesc("would_bans", "Would-be bans of a log-only jail now: recorded, in no target.", prometheus.GaugeValue, "jail")
	held        = newDesc("breaker_held_bans", "Active bans the tripped circuit breaker holds back from the targets (0: not tripped).", prometheus.GaugeValue)
)

var all = []desc{linesRead, linesMatch, readLag, prefiltered, matches, strikes, bans, unbans, suspensions, releases, rateEvents,
	activeBans, activeSusp, bucketKeys, tracked, syncs, syncErrors, repairs, entries, obPending, obFailed, obGaveUp, wouldBans, held}

// NewCollector collects snap's snapshots; a snapshot not taken within
// timeout (the daemon busy restoring strikes, or stuck) leaves the
// daemon's metrics out of that scrape and counts a failure.
func NewCollector(snap SnapshotFunc, timeout time.Duration) *Collector {
	return &Collector{snap: snap, timeout: timeout, failed: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mailjail_snapshot_failures_total", Help: "Scrapes that got no answer from the daemon's main loop in time (its metrics were left out)."})}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range all {
		ch <- d.d
	}
	c.failed.Describe(ch)
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	s, err := c.snap(ctx)
	if err != nil {
		c.failed.Inc()
		c.failed.Collect(ch)
		return
	}
	c.failed.Collect(ch)
	emit := func(d desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d.d, d.t, v, labels...)
	}
	for _, src := range s.Sources {
		emit(linesRead, float64(src.Lines), src.Name, src.Kind)
		emit(linesMatch, float64(src.Matches), src.Name, src.Kind)
		if src.HasLag {
			emit(readLag, float64(src.Lag), src.Name)
		}
	}
	for _, j := range s.Jails {
		if j.Filter != "" {
			emit(prefiltered, float64(j.Prefiltered), j.Name, j.Filter)
		}
		if j.FromLogs {
			emit(matches, float64(j.Matches), j.Name)
			emit(strikes, float64(j.Strikes), j.Name)
			emit(bucketKeys, float64(j.BucketKeys), j.Name)
			emit(tracked, float64(j.Tracked), j.Name)
		}
		emit(bans, float64(j.Bans), j.Name)
		emit(unbans, float64(j.Unbans), j.Name)
		emit(suspensions, float64(j.Suspensions), j.Name)
		emit(releases, float64(j.Releases), j.Name)
		emit(rateEvents, float64(j.RateEvents), j.Name)
		emit(activeBans, float64(j.ActiveBans), j.Name)
		emit(activeSusp, float64(j.ActiveSuspensions), j.Name)
		emit(wouldBans, float64(j.WouldBans), j.Name)
	}
	emit(held, float64(s.BreakerHeld))
	for _, t := range s.Targets {
		emit(syncs, float64(t.Syncs), t.Name)
		emit(syncErrors, float64(t.Errors), t.Name)
		emit(repairs, float64(t.Repairs), t.Name)
		emit(entries, float64(t.Entries), t.Name)
	}
	if o := s.Outbox; o != nil {
		emit(obPending, float64(o.Pending))
		emit(obFailed, float64(o.Failed))
		emit(obGaveUp, float64(o.GaveUp))
	}
}

// SyncTimer observes how long target writes take: the one metric the
// daemon's counters cannot give at scrape time.
type SyncTimer struct {
	h *prometheus.HistogramVec
}

// NewSyncTimer makes the histogram mailjail_target_sync_duration_seconds.
func NewSyncTimer() *SyncTimer {
	return &SyncTimer{h: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "mailjail_target_sync_duration_seconds",
		Help: "How long writing an enforcement target took, failed writes included.",
		// A map rename takes a millisecond; postmap, a reload or a
		// remote Redis take up to seconds.
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"target"})}
}

// Observe records one sync attempt; its signature is
// enforce.Options.OnSyncDone's.
func (t *SyncTimer) Observe(target string, took time.Duration, _ error) {
	t.h.WithLabelValues(target).Observe(took.Seconds())
}

// NewRegistry registers c, t and the Go runtime and process collectors.
func NewRegistry(c *Collector, t *SyncTimer) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c, t.h, newGoCollector(), newProcessCollector())
	return reg
}
