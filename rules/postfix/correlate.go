package postfix

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Defaults for Config's zero fields.
const (
	// DefaultTimeout is generous: between smtpd's client= line and qmgr's
	// line lie the whole DATA phase and every milter, which for a large
	// message on a slow link can take many minutes.
	DefaultTimeout = 30 * time.Minute
	// DefaultMaxPending bounds memory if a flood of transactions never
	// completes (for example clients that drop the connection after RCPT).
	DefaultMaxPending = 10000
)

// Message is one message accepted into the queue, with what the log said
// about its origin. Sender and MessageID are chosen by the remote side.
type Message struct {
	QueueID    string
	Host       string // syslog host, part of the correlation key
	Client     netip.Addr
	ClientName string
	SASLUser   string // "" when the client did not authenticate
	Sender     string
	Size       int64
	Rcpts      int
	MessageID  string
	Time       time.Time // timestamp of qmgr's line: when it was queued
}

// Config bounds a Correlator.
type Config struct {
	Timeout    time.Duration // pending transactions older than this are dropped; 0 = DefaultTimeout
	MaxPending int           // at most this many pending transactions; 0 = DefaultMaxPending
}

// Stats are counters for logs and metrics.
type Stats struct {
	Pending   int    // transactions waiting for qmgr
	Emitted   uint64 // messages returned
	Rejected  uint64 // transactions ended by a reject or discard
	Expired   uint64 // transactions dropped after Timeout
	Dropped   uint64 // transactions dropped, oldest first, because MaxPending was reached
	Replaced  uint64 // client= lines for a queue id that was still pending
	Unmatched uint64 // qmgr lines without a client= line (pickup, re-queued, or logs started mid-way)
	Malformed uint64 // lines of a used kind that did not parse
}

// key identifies a transaction. Queue ids are unique within one host's
// queue filesystem (they encode the inode), across Postfix instances too,
// so the instance name is deliberately not part of the key: a submission
// service logging under another syslog_name still joins with cleanup and
// qmgr.
type key struct {
	host, qid string
}

type pending struct {
	key        key
	start      time.Time
	client     netip.Addr
	clientName string
	saslUser   string
	messageID  string
	prev, next *pending // towards older, newer
}

// Correlator joins smtpd, cleanup and qmgr lines by queue id. It is not
// safe for concurrent use.
type Correlator struct {
	cfg            Config
	byKey          map[key]*pending
	oldest, newest *pending
	stats          Stats
}

// NewCorrelator returns a Correlator, applying defaults for zero fields.
func NewCorrelator(cfg Config) (*Correlator, error) {
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxPending == 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("postfix correlator: negative timeout %v", cfg.Timeout)
	}
	if cfg.MaxPending < 0 {
		return nil, fmt.Errorf("postfix correlator: negative max pending %d", cfg.MaxPending)
	}
	return &Correlator{cfg: cfg, byKey: make(map[key]*pending)}, nil
}

// Stats returns the counters.
func (c *Correlator) Stats() Stats {
	s := c.stats
	s.Pending = len(c.byKey)
	return s
}

// Feed parses line, stamped ts by the caller, and returns the Message it
// completes, if any. Lines of no interest return ok false and a nil error;
// a malformed line of a used kind returns its parse error (counted in
// Stats.Malformed) so the caller can log it. Pending transactions older
// than the timeout relative to ts are dropped on the way.
func (c *Correlator) Feed(line []byte, ts time.Time) (msg Message, ok bool, err error) {
	l, err := ParseLine(line)
	if err != nil {
		if errors.Is(err, ErrIgnored) {
			return Message{}, false, nil
		}
		c.stats.Malformed++
		return Message{}, false, err
	}
	msg, ok = c.Observe(l, ts)
	return msg, ok, nil
}

// Observe applies an already parsed line; see Feed.
func (c *Correlator) Observe(l Line, ts time.Time) (Message, bool) {
	c.Expire(ts)
	k := key{host: l.Host, qid: l.QueueID}
	switch l.Kind {
	case KindClient:
		if old := c.byKey[k]; old != nil {
			c.remove(old)
			c.stats.Replaced++
		}
		if c.cfg.MaxPending > 0 && len(c.byKey) >= c.cfg.MaxPending {
			c.remove(c.oldest)
			c.stats.Dropped++
		}
		c.add(&pending{key: k, start: ts, client: l.Client, clientName: l.ClientName, saslUser: l.SASLUser})
	case KindMessageID:
		if p := c.byKey[k]; p != nil {
			p.messageID = l.MessageID
		}
	case KindQueued:
		p := c.byKey[k]
		if p == nil {
			c.stats.Unmatched++
			return Message{}, false
		}
		c.remove(p)
		c.stats.Emitted++
		return Message{
			QueueID: l.QueueID, Host: l.Host, Client: p.client, ClientName: p.clientName,
			SASLUser: p.saslUser, Sender: l.Sender, Size: l.Size, Rcpts: l.Rcpts,
			MessageID: p.messageID, Time: ts,
		}, true
	case KindRejected:
		if p := c.byKey[k]; p != nil {
			c.remove(p)
			c.stats.Rejected++
		}
	case KindRemoved:
		if p := c.byKey[k]; p != nil {
			c.remove(p)
		}
	}
	return Message{}, false
}

// Expire drops transactions that started more than the timeout before now
// and returns how many. Transactions are kept in arrival order, so it stops
// at the first one still young: with logs replayed slightly out of order
// an entry may outlive its timeout a little, never the reverse.
func (c *Correlator) Expire(now time.Time) int {
	n := 0
	for c.oldest != nil && now.Sub(c.oldest.start) > c.cfg.Timeout {
		c.remove(c.oldest)
		n++
	}
	c.stats.Expired += uint64(n)
	return n
}

func (c *Correlator) add(p *pending) {
	c.byKey[p.key] = p
	p.prev, p.next = c.newest, nil
	if c.newest != nil {
		c.newest.next = p
	} else {
		c.oldest = p
	}
	c.newest = p
}

func (c *Correlator) remove(p *pending) {
	delete(c.byKey, p.key)
	if p.prev != nil {
		p.prev.next = p.next
	} else {
		c.oldest = p.next
	}
	if p.next != nil {
		p.next.prev = p.prev
	} else {
		c.newest = p.prev
	}
	p.prev, p.next = nil, nil
}
