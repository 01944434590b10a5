// Package cluster shares bans between mailjail nodes through Redis, the
// engine rspamd sites already run for their ratelimit buckets. Each node's
// SQLite database stays the truth for its own targets: a ban or unban
// made on one node is written to a Redis hash (last writer wins, ordered
// by time and node name, in one Lua script) and published; the other
// nodes mirror it into their databases, and their targets follow as
// they follow any ban. A periodic full resync repairs what a lost message
// or an outage missed, in both directions: bans made while Redis was out
// of reach are published when it is back, ended ones are never revived.
//
// Nothing here removes a ban because Redis is empty or unreachable: the
// local database only gains what the shared state proves newer.
package cluster

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/rules"
)

// Record is the shared state of one (jail, prefix), or of one (jail,
// account) for a suspension: the latest ban or unban (suspension or
// release) any node made of it.
type Record struct {
	Jail   string `json:"jail"`
	Prefix string `json:"prefix,omitempty"` // canonical, as rules.FormatPrefix writes it
	// Account is set instead of Prefix for a suspension; Enforced is the
	// suspension's (false: recorded only, by a jail with suspend = false).
	Account  string `json:"account,omitempty"`
	Enforced bool   `json:"enforced,omitempty"`
	// Since and Until are the ban's start and end in unix microseconds
	// (Until 0: permanent); Lifted is when it was lifted (0: active).
	Since   int64  `json:"since"`
	Until   int64  `json:"until"`
	Lifted  int64  `json:"lifted,omitempty"`
	By      string `json:"by,omitempty"` // who lifted it
	Reason  string `json:"reason"`
	Strikes int    `json:"strikes"`
	Offense int    `json:"offense"`
	// Node made this state; Stamp is when (Since for a ban, Lifted for
	// an unban), in microseconds so that Lua's doubles compare it
	// exactly. The later (Stamp, Node) wins.
	Node  string `json:"node"`
	Stamp int64  `json:"stamp"`
}

// Field is the record's field in the shared hash.
func (r Record) Field() string {
	if r.Account != "" {
		return "s|" + r.Jail + "|" + r.Account
	}
	return r.Jail + "|" + r.Prefix
}

// Active reports whether the record is a ban still in force at now.
func (r Record) Active(now time.Time) bool {
	return r.Lifted == 0 && (r.Until == 0 || r.Until > now.UnixMicro())
}

// Newer reports whether r wins over o: a later stamp, or the same stamp
// from a node whose name sorts later (any fixed order will do, as long as
// every node applies the same one).
func (r Record) Newer(o Record) bool {
	return r.Stamp > o.Stamp || r.Stamp == o.Stamp && r.Node > o.Node
}

// FromBan is the record of a ban made or lifted on node.
func FromBan(b store.Ban, node string) Record {
	r := Record{Jail: b.Jail, Prefix: rules.FormatPrefix(b.Prefix), Reason: b.Reason, Strikes: b.Strikes, Offense: b.Offense}
	r.stamp(b.Since, b.Until, b.Lifted, b.LiftedBy, b.Origin, node)
	return r
}

// FromSuspension is the record of a suspension made or lifted on node.
func FromSuspension(s store.Suspension, node string) Record {
	r := Record{Jail: s.Jail, Account: s.Account, Enforced: s.Enforced, Reason: s.Reason, Strikes: s.Strikes, Offense: s.Offense}
	r.stamp(s.Since, s.Until, s.Lifted, s.LiftedBy, s.Origin, node)
	return r
}

// stamp sets the times and who made the state: the ban's node (its
// origin when it was mirrored), or for a lift the node that lifted it.
func (r *Record) stamp(since, until, lifted time.Time, by, origin, node string) {
	r.Since, r.Node, r.Stamp = since.UnixMicro(), node, since.UnixMicro()
	if origin != "" {
		r.Node = origin
	}
	if !until.IsZero() {
		r.Until = until.UnixMicro()
	}
	if !lifted.IsZero() {
		r.Lifted, r.By, r.Stamp, r.Node = lifted.UnixMicro(), by, lifted.UnixMicro(), node
	}
}

// Ban is the record as a local ban mirrored from its node.
func (r Record) Ban() (store.Ban, error) {
	p, err := rules.ParsePrefix(r.Prefix)
	if err != nil {
		return store.Ban{}, fmt.Errorf("shared ban %s: %w", r.Field(), err)
	}
	if !validName(r.Jail) || !validName(r.Node) {
		return store.Ban{}, fmt.Errorf("shared ban %s: bad jail or node name", r.Field())
	}
	b := store.Ban{Jail: r.Jail, Prefix: p, Since: time.UnixMicro(r.Since), Strikes: r.Strikes, Reason: r.Reason,
		Offense: r.Offense, Origin: r.Node}
	if r.Until != 0 {
		b.Until = time.UnixMicro(r.Until)
	}
	return b, nil
}

// Suspension is the record as a local suspension mirrored from its node.
func (r Record) Suspension() (store.Suspension, error) {
	account, err := rules.NormalizeAccount(r.Account)
	if err != nil || account != r.Account || !validName(r.Jail) || !validName(r.Node) {
		return store.Suspension{}, fmt.Errorf("shared suspension %s: bad account, jail or node name", r.Field())
	}
	s := store.Suspension{Jail: r.Jail, Account: account, Since: time.UnixMicro(r.Since), Strikes: r.Strikes, Reason: r.Reason,
		Offense: r.Offense, Enforced: r.Enforced, Origin: r.Node}
	if r.Until != 0 {
		s.Until = time.UnixMicro(r.Until)
	}
	return s, nil
}

// validName keeps names from other nodes to what a jail or node name may
// be here: they reach logs, status and alerts.
func validName(s string) bool {
	return s != "" && len(s) <= 128 && strings.IndexFunc(s, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._-", c))
	}) < 0
}

func decode(data []byte) (Record, error) {
	var r Record
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("shared record: %w", err)
	}
	return r, nil
}
