package control

import (
	"fmt"
	"time"
)

// Operation names: the path of each request is "/v1/" + the name.
const (
	OpBan      = "ban"
	OpUnban    = "unban"
	OpSuspend  = "suspend"
	OpRelease  = "release"
	OpAllowAdd = "allow-add"
	OpAllowDel = "allow-del"
	OpStatus   = "status"
	// The outbox: list its items, make one due now, delete one.
	OpOutboxList  = "outbox-list"
	OpOutboxRetry = "outbox-retry"
	OpOutboxDrop  = "outbox-drop"
	OpReload      = "reload"
	// OpResume releases the bans a tripped circuit breaker holds.
	OpResume = "resume"
)

// Request is one CLI command for the daemon, as it travels: addresses and
// durations as the operator typed them; the daemon parses them (Parse*),
// so a CLI and a daemon agree on what is valid.
type Request struct {
	Addrs     []string `json:"addrs,omitempty"`
	Accounts  []string `json:"accounts,omitempty"` // suspend, release
	Entries   []string `json:"entries,omitempty"`  // allow add, allow del
	All       bool     `json:"all,omitempty"`
	Jail      string   `json:"jail,omitempty"`
	For       string   `json:"for,omitempty"` // duration, "" = jail's bantime
	Permanent bool     `json:"permanent,omitempty"`
	Reason    string   `json:"reason,omitempty"`
	Force     bool     `json:"force,omitempty"`    // ban wider than the minimum prefix
	Covering  bool     `json:"covering,omitempty"` // unban the prefixes that cover an address
	ID        int64    `json:"id,omitempty"`       // outbox retry, outbox drop
	By        string   `json:"by,omitempty"`       // resume: who asks (the CLI's user)
}

// Ban is a ban as the CLI shows it (stable JSON schema).
type Ban struct {
	Addr      string     `json:"addr"`
	Jail      string     `json:"jail"`
	Since     time.Time  `json:"since"`
	Until     *time.Time `json:"until"` // null: permanent
	Permanent bool       `json:"permanent"`
	Strikes   int        `json:"strikes"`
	Reason    string     `json:"reason"`
	Lifted    *time.Time `json:"lifted,omitempty"`
	LiftedBy  string     `json:"lifted_by,omitempty"`
	// LogOnly marks a would-be ban of a jail with mode = "log-only": no
	// target holds it.
	LogOnly bool `json:"log_only"`
}

// Suspension is an account's suspension as the CLI shows it (stable JSON
// schema).
type Suspension struct {
	Account   string     `json:"account"`
	Jail      string     `json:"jail"`
	Since     time.Time  `json:"since"`
	Until     *time.Time `json:"until"` // null: until released
	Permanent bool       `json:"permanent"`
	// Enforced is false for a suspension a jail with suspend = false
	// recorded: no map holds it.
	Enforced bool       `json:"enforced"`
	Strikes  int        `json:"strikes"`
	Reason   string     `json:"reason"`
	Sources  []Source   `json:"sources"`
	Lifted   *time.Time `json:"lifted,omitempty"`
	LiftedBy string     `json:"lifted_by,omitempty"`
}

// Source is a client address an account's strikes came from.
type Source struct {
	Addr  string `json:"addr"`
	Count int    `json:"count"`
}

// Origins of an allow-list entry.
const (
	OriginConfig   = "config"   // global.allow_senders
	OriginDatabase = "database" // mailjail allow add
)

// AllowEntry is one entry of the rate allow list (stable JSON schema).
type AllowEntry struct {
	Entry  string     `json:"entry"`
	Origin string     `json:"origin"` // OriginConfig or OriginDatabase
	Added  *time.Time `json:"added"`  // null for configured entries
	Reason string     `json:"reason"`
}

// RateEvent is a rate jail's key over a limit, as the CLI shows it.
type RateEvent struct {
	Jail   string    `json:"jail"`
	Key    string    `json:"key"` // sender, account or address
	At     time.Time `json:"at"`
	What   string    `json:"what"` // "messages" or "recipients"
	Level  float64   `json:"level"`
	Burst  float64   `json:"burst"`
	Rate   string    `json:"rate"`
	Urgent bool      `json:"urgent"`
	Detail string    `json:"detail"`
}

// FileStatus is one followed file.
type FileStatus struct {
	Path   string `json:"path"`
	Offset int64  `json:"offset"`
	Size   int64  `json:"size"`
	Open   bool   `json:"open"`
}

// JailStatus is one jail in `status`.
type JailStatus struct {
	Name string `json:"name"`
	// Key is what the jail counts: "address" or "account" ("" for the
	// manual jail, which holds both).
	Key            string         `json:"key"`
	Filter         string         `json:"filter"`
	LogPath        []string       `json:"logpath"`
	Journal        string         `json:"journal"` // journal source key, for journalmatch jails
	Files          []FileStatus   `json:"files"`
	StrikesTracked int            `json:"strikes_tracked"` // addresses holding strikes inside findtime
	StrikesStored  int64          `json:"strikes_stored"`
	ActiveBans     int64          `json:"active_bans"`
	TotalBans      int64          `json:"total_bans"`
	ActiveSusp     int            `json:"active_suspensions"`
	RateEvents     int64          `json:"rate_events"`        // rate jails: limits exceeded
	RateKeys       map[string]int `json:"rate_keys"`          // rate jails: keys tracked per limit
	RateUntracked  uint64         `json:"rate_untracked"`     // rate jails: new keys let through or limited because the table was full
	EventsTooOld   uint64         `json:"events_too_old"`     // older than findtime when read (a wrong timezone?)
	EventsFuture   uint64         `json:"events_from_future"` // dated beyond the read time, taken at the read time
	// Mode is "ban" or "log-only" (a rate jail: also "suspend"; "" for
	// the manual jail); WouldBans are a log-only jail's active would-be
	// bans, among ActiveBans.
	Mode      string `json:"mode"`
	WouldBans int64  `json:"would_bans"`
}

// TargetStatus is one enforcement target in `status`.
type TargetStatus struct {
	Name      string     `json:"name"`
	Entries   int        `json:"entries"`    // bans it held after its last sync
	Syncs     uint64     `json:"syncs"`      // successful syncs since start
	LastSync  *time.Time `json:"last_sync"`  // null: never
	LastError string     `json:"last_error"` // "" when the last attempt succeeded
	Repairs   uint64     `json:"repairs"`    // drifts found and repaired
}

// Status is the answer to `status`.
type Status struct {
	Running    bool       `json:"running"`
	Degraded   string     `json:"degraded"` // why the daemon cannot do its work now; "" when it can
	Version    string     `json:"version"`
	PID        int        `json:"pid"`
	Started    *time.Time `json:"started"`
	UptimeSec  int64      `json:"uptime_seconds"`
	Database   string     `json:"database"`
	MapFile    string     `json:"map_file"`
	MapEntries int        `json:"map_entries"`
	MapWrites  uint64     `json:"map_writes"`
	MapError   string     `json:"map_error"`
	// MapReaderError says why rspamd's workers cannot open the map ("":
	// they can, or there is no rspamd account here).
	MapReaderError string `json:"map_reader_error"`
	// AccountMapFile and AccountMapEntries are the account map and the
	// accounts it holds (enforced active suspensions).
	AccountMapFile    string         `json:"account_map_file"`
	AccountMapEntries int            `json:"account_map_entries"`
	Lines             uint64         `json:"lines_read"`
	NoTime            uint64         `json:"lines_without_time"`
	Matches           uint64         `json:"matches"`
	Ignored           uint64         `json:"ignored"`
	Jails             []JailStatus   `json:"jails"`
	Targets           []TargetStatus `json:"targets"` // only a running daemon knows them
	Outbox            *OutboxStatus  `json:"outbox"`
	// Warnings are health problems of a running daemon: a source gone
	// quiet, a filter that stopped matching, an ignoreip name that never
	// resolved.
	Warnings []string `json:"warnings"`
	// Breaker is the tripped circuit breaker (null when not tripped).
	Breaker *BreakerStatus `json:"breaker"`
	// Ignore is what ignoreip's host names and files and ignoreself
	// stand for (null when no daemon runs).
	Ignore *IgnoreStatus `json:"ignore"`
	// LastPurge is the daemon's last purge of old history (null: none
	// since it started, or no daemon runs).
	LastPurge *PurgeStatus `json:"last_purge"`
	// Cluster is this node's view of the [cluster] (null without one, or
	// when no daemon runs).
	Cluster *ClusterStatus `json:"cluster"`
}

// PurgeStatus is a purge of the history older than dbpurgeage.
type PurgeStatus struct {
	At      time.Time `json:"at"` // when it ended
	TookSec float64   `json:"took_seconds"`
	Removed int64     `json:"removed"` // rows deleted
	Error   string    `json:"error"`   // why it stopped ("": it did not)
}

// ClusterStatus is a node's view of the cluster.
type ClusterStatus struct {
	Node         string        `json:"node"`
	Connected    bool          `json:"connected"`  // the last exchange with Redis succeeded
	LastError    string        `json:"last_error"` // of the last failed exchange
	LastResync   *time.Time    `json:"last_resync"`
	LastReceived *time.Time    `json:"last_received"` // the last record from another node
	LagMS        int64         `json:"lag_ms"`        // how long after it was made it arrived
	Published    uint64        `json:"published"`
	Received     uint64        `json:"received"`
	Peers        []ClusterPeer `json:"peers"`
}

// ClusterPeer is a node seen in the cluster, this one included.
type ClusterPeer struct {
	Node     string    `json:"node"`
	LastSeen time.Time `json:"last_seen"`
}

// IgnoreStatus is the resolved part of ignoreip.
type IgnoreStatus struct {
	Names []IgnoreName `json:"names"`
	Files []IgnoreFile `json:"files"`
	Self  []string     `json:"self"` // the host's own addresses; null with ignoreself = false
}

// IgnoreName is one ignoreip host name.
type IgnoreName struct {
	Name     string     `json:"name"`
	Addrs    []string   `json:"addrs"`
	Resolved *time.Time `json:"resolved"` // last successful lookup; null: never
	Error    string     `json:"error"`    // of the last lookup; "" when it succeeded
}

// IgnoreFile is one ignoreip list file.
type IgnoreFile struct {
	Path    string     `json:"path"`
	Entries int        `json:"entries"`
	Loaded  *time.Time `json:"loaded"` // when its content in force was read; null: never
	Error   string     `json:"error"`  // of the last read; "" when it succeeded
}

// BreakerStatus is the tripped circuit breaker for mass bans.
type BreakerStatus struct {
	Tripped     time.Time `json:"tripped"`
	Reason      string    `json:"reason"`
	Held        int       `json:"held"`          // active bans held back from the targets
	FirstHeldID int64     `json:"first_held_id"` // bans from this ID on are held (manual ones excepted)
}

// Summary is the breaker's state in one line, for status and systemd.
func (b *BreakerStatus) Summary() string {
	return fmt.Sprintf("circuit breaker tripped at %s: %s; %d %s held, run mailjail resume",
		b.Tripped.UTC().Format(time.RFC3339), b.Reason, b.Held, plural(b.Held, "ban", "bans"))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// OutboxStatus counts the actions and alerts waiting in the outbox.
type OutboxStatus struct {
	Pending int64 `json:"pending"`
	Failed  int64 `json:"failed"`  // pending after a failed attempt
	GaveUp  int64 `json:"gave_up"` // abandoned
	// OldestPending is when the longest waiting pending item was queued
	// (null: none pending).
	OldestPending *time.Time `json:"oldest_pending"`
}

// States of an outbox item.
const (
	OutboxPending  = "pending"         // not attempted yet (or waiting for its digest)
	OutboxRetrying = "failed-retrying" // pending after a failed attempt
	OutboxGaveUp   = "given-up"        // abandoned; retry or drop it
	OutboxDone     = "done"            // delivered
)

// OutboxItem is an action or alert of the outbox as the CLI shows it
// (stable JSON schema).
type OutboxItem struct {
	ID          int64      `json:"id"`
	Kind        string     `json:"kind"`  // "action", "webhook" or "alert"
	State       string     `json:"state"` // OutboxPending ...
	Urgent      bool       `json:"urgent"`
	Event       string     `json:"event"` // "ban", "unban", "suspend", ...
	Jail        string     `json:"jail"`
	Addr        string     `json:"addr"` // address, prefix or account
	Attempts    int        `json:"attempts"`
	Created     time.Time  `json:"created"`
	NextAttempt *time.Time `json:"next_attempt"` // null once done or given up
	LastError   string     `json:"last_error"`
	Done        *time.Time `json:"done"`
	GaveUp      *time.Time `json:"gave_up"`
}

// Response is the daemon's answer.
type Response struct {
	OK    bool   `json:"ok"`
	Code  int    `json:"code"` // the exit code the CLI should use
	Error string `json:"error,omitempty"`
	Bans  []Ban  `json:"bans,omitempty"`
	// Suspensions are those made or lifted (suspend, release).
	Suspensions []Suspension `json:"suspensions,omitempty"`
	// Allow are the entries added or removed (allow add, allow del).
	Allow  []AllowEntry `json:"allow,omitempty"`
	Status *Status      `json:"status,omitempty"`
	// Outbox are the items listed, retried or dropped.
	Outbox []OutboxItem `json:"outbox,omitempty"`
	Reload *Reload      `json:"reload,omitempty"`
}

// Reload is the outcome of a reload (stable JSON schema). Refused, the
// old configuration stays in force and Errors says why (each
// "file:line: key: problem"); applied, Warnings name what needs a
// restart.
type Reload struct {
	Config   string   `json:"config"`
	Applied  bool     `json:"applied"`
	Added    []string `json:"added"`   // jails
	Removed  []string `json:"removed"` // jails; their bans are kept until they end
	Changed  []string `json:"changed"` // jails
	Warnings []string `json:"warnings"`
	Errors   []string `json:"errors"`
}
