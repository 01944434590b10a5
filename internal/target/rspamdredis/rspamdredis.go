// Package rspamdredis is the rspamd-redis enforcement target: two Redis
// hashes that rspamd's multimap reads without any map file,
//
//	MAILJAIL_BANS     { type = "ip";   map = "redis://mailjail_bans";     action = "reject"; }
//	MAILJAIL_ACCOUNTS { type = "user"; map = "redis://mailjail_accounts"; action = "reject"; }
//
// For each message rspamd 3.4 asks the ban hash (HMGET) for the client
// address as text (192.0.2.7, 2001:db8::7) and for every prefix of it
// down to /8 (IPv4) or /64 (IPv6) as "net/len" (192.0.2.0/24,
// 2001:db8::/64), and the account hash (HGET) for the SASL login; a hit
// rejects the message, at once, with no reload. A field is therefore the
// address of a single-address ban, "net/len" of a prefix, or the login.
// Prefixes shorter than /8 or /64 cannot be looked up (Expressible).
//
// Several mailjail hosts may share the hashes (one list for every rspamd
// host). Each field's value names its owner and its end (see value), and
// a Sync changes only what it may: it writes the fields its state wants,
// removes those it owns and no longer wants, and sweeps fields of any
// owner that ended more than SweepGrace ago (a stopped host's leftovers:
// without per-field expiry in Redis 7.0 nothing else would remove them).
// A live field of another owner is never removed or shortened.
package rspamdredis

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mailjail/mailjail/internal/enforce"
)

// SweepGrace is how long after its end a field of another owner is left
// before a Sync removes it: its owner removes it itself when it runs, and
// the grace absorbs clocks that differ between hosts.
const SweepGrace = 5 * time.Minute

// Shortest prefixes rspamd 3.4 looks up in a Redis "ip" map: it tries the
// address and its prefixes down to these lengths (multimap.lua).
const (
	MinBitsV4 = 8
	MinBitsV6 = 64
)

// Expressible reports whether a ban of p can be a field rspamd finds: an
// IPv4 prefix of /8 or longer, an IPv6 prefix of /64 or longer (single
// addresses included). The check of the configuration and of manual bans
// uses it to refuse the rest.
func Expressible(p netip.Prefix) bool {
	if !p.IsValid() {
		return false
	}
	if p.Addr().Is4() {
		return p.Bits() >= MinBitsV4
	}
	return p.Bits() >= MinBitsV6
}

// chunk bounds the fields of one HSET or HDEL: a burst of 10,000 bans is a
// few commands in the one MULTI/EXEC, not one command of 20,000 arguments.
const chunk = 1000

// Config names the hashes and this host.
type Config struct {
	// Bans and Accounts are the full keys of the hashes
	// (mailjail_bans, mailjail_accounts); an empty one is not managed.
	Bans, Accounts string
	// Owner marks this host's fields (its name): Sync removes only
	// fields it owns, besides the long-expired ones.
	Owner string
}

// Hash is the target. It owns the client: Close closes it.
type Hash struct {
	c   redis.UniversalClient
	cfg Config

	mu      sync.Mutex
	synced  bool     // a Sync succeeded: lens is what it left
	lens    [2]int64 // HLEN of Bans and Accounts after it
	entries int      // fields its state wanted
}

// New makes the target on client c. An empty cfg.Owner is "mailjail":
// Owner must never be empty, or fields without one would count as ours.
func New(c redis.UniversalClient, cfg Config) *Hash {
	if cfg.Owner == "" {
		cfg.Owner = "mailjail"
	}
	return &Hash{c: c, cfg: cfg}
}

// Name is "rspamd-redis:" and the ban hash's key, as status shows it.
func (h *Hash) Name() string { return "rspamd-redis:" + h.cfg.Bans }

// Close closes the client.
func (h *Hash) Close() error { return h.c.Close() }

// Entries is how many fields the last successful Sync's state wanted
// (bans by distinct prefix, plus accounts), whoever owns them now.
func (h *Hash) Entries() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.entries
}

// drift bounds Drifted, which runs every second on the reconciler's
// goroutine: a Redis that does not answer at once is for Sync to report.
const drift = time.Second

// Drifted reports whether a hash's length differs from what the last Sync
// left: a DEL, a restarted Redis without persistence, a field removed or
// added by hand. Another owner's writes to a shared hash count too; the
// Sync that follows then changes nothing. False before the first Sync and
// when Redis does not answer.
func (h *Hash) Drifted() bool {
	h.mu.Lock()
	synced, want := h.synced, h.lens
	h.mu.Unlock()
	if !synced {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), drift)
	defer cancel()
	keys := h.keys()
	cmds := make([]*redis.IntCmd, len(keys))
	_, err := h.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			if k != "" {
				cmds[i] = p.HLen(ctx, k)
			}
		}
		return nil
	})
	if err != nil {
		return false
	}
	for i, c := range cmds {
		if c != nil && c.Val() != want[i] {
			return true
		}
	}
	return false
}

func (h *Hash) keys() [2]string { return [2]string{h.cfg.Bans, h.cfg.Accounts} }

// watchTries is how often Sync rereads and retries when another writer
// changed a hash between its read and its write.
const watchTries = 3

// Sync makes the hashes hold s, as far as this owner may: one read of
// both hashes (HGETALL) and one MULTI/EXEC of every HSET and HDEL, under
// WATCH, so that a field another host wrote in between is not overwritten
// by a stale decision (the transaction fails and is recomputed). Either
// the whole diff is applied or none of it.
//
// A ban rspamd cannot look up (Expressible) is an error naming it, but
// the other bans are still written: one such ban must not lift all the
// rest.
func (h *Hash) Sync(ctx context.Context, s enforce.State) error {
	want, bad := desired(s)
	keys := h.keys()
	var lens [2]int64
	var err error
	for range watchTries {
		lens, err = h.apply(ctx, keys, want, s.At)
		if !errors.Is(err, redis.TxFailedErr) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("sync redis %s: %w", strings.Join(nonEmpty(keys[:]), ", "), err)
	}
	h.mu.Lock()
	h.synced, h.lens, h.entries = true, lens, len(want[0])+len(want[1])
	h.mu.Unlock()
	if len(bad) > 0 {
		names := strings.Join(bad[:min(len(bad), 5)], ", ")
		if len(bad) > 5 {
			names += fmt.Sprintf(" and %d more", len(bad)-5)
		}
		return fmt.Errorf("redis %s: ban of %s not written: rspamd looks up IPv4 prefixes down to /%d and IPv6 down to /%d only",
			h.cfg.Bans, names, MinBitsV4, MinBitsV6)
	}
	return nil
}

// apply reads both hashes and writes the diff in one transaction; it
// returns the hashes' lengths after it.
func (h *Hash) apply(ctx context.Context, keys [2]string, want [2]map[string]value, at time.Time) (lens [2]int64, err error) {
	watched := nonEmpty(keys[:])
	if len(watched) == 0 {
		return lens, nil
	}
	err = h.c.Watch(ctx, func(tx *redis.Tx) error {
		var reads [2]*redis.MapStringStringCmd
		if _, err := tx.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, k := range keys {
				if k != "" {
					reads[i] = p.HGetAll(ctx, k)
				}
			}
			return nil
		}); err != nil {
			return fmt.Errorf("read: %w", err)
		}
		var diffs [2]diff
		for i, r := range reads {
			if r != nil {
				diffs[i] = plan(r.Val(), want[i], h.cfg.Owner, at)
				lens[i] = int64(len(r.Val()) + diffs[i].added - len(diffs[i].del))
			}
		}
		if diffs[0].empty() && diffs[1].empty() {
			return nil
		}
		_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			for i, d := range diffs {
				d.queue(ctx, p, keys[i])
			}
			return nil
		})
		return err
	}, watched...)
	return lens, err
}

func nonEmpty(ss []string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// desired is what the state wants in each hash: field -> value, a field
// banned (or suspended) several times kept once with the longest end. bad
// lists the bans no field can express.
func desired(s enforce.State) (want [2]map[string]value, bad []string) {
	want[0] = make(map[string]value, len(s.Bans))
	want[1] = make(map[string]value, len(s.Suspensions))
	over := func(until time.Time) bool { return !until.IsZero() && !until.After(s.At) }
	for _, b := range s.Bans {
		if over(b.Until) {
			continue
		}
		if !Expressible(b.Prefix) {
			bad = append(bad, b.Prefix.String())
			continue
		}
		keep(want[0], field(b.Prefix), value{Until: b.Until, Jail: b.Jail})
	}
	for _, sp := range s.Suspensions {
		if over(sp.Until) || sp.Account == "" {
			continue
		}
		keep(want[1], sp.Account, value{Until: sp.Until, Jail: sp.Jail})
	}
	return want, bad
}

// field is how rspamd asks for p: a single address as the address alone
// (the text of its client address), a prefix as "net/len".
func field(p netip.Prefix) string {
	p = p.Masked()
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

func keep(m map[string]value, f string, v value) {
	if old, ok := m[f]; ok && !outlasts(v.Until, old.Until) {
		return
	}
	m[f] = v
}

// diff is what one Sync writes to one hash.
type diff struct {
	set   []any    // field, value, field, value, ...
	del   []string // fields
	added int      // fields set that were not there
}

func (d diff) empty() bool { return len(d.set) == 0 && len(d.del) == 0 }

// plan compares the hash as read (cur) with what owner wants in it at
// at. For a field it wants:
//   - missing, or owned by owner with another value: set it;
//   - another owner's (or a long-expired one's) that ends before the
//     wanted one: set it, so that the field lasts as long as the longest
//     ban of any host (the other host then finds it covered and leaves
//     it; its unban no longer removes a ban this host still holds);
//   - another owner's lasting at least as long, or nobody's (written by
//     hand): leave it, it already enforces the ban.
//
// A field it does not want is removed when owner owns it or it ended more
// than SweepGrace before at; anything else stays.
func plan(cur map[string]string, want map[string]value, owner string, at time.Time) diff {
	var d diff
	for f, w := range want {
		w.Owner = owner
		text := w.format()
		raw, exists := cur[f]
		if exists {
			if raw == text {
				continue
			}
			old, ok := parseValue(raw)
			if !ok {
				continue // nobody's: enforced already, and not ours to change
			}
			if old.Owner != owner && !outlasts(w.Until, old.Until) {
				continue
			}
		} else {
			d.added++
		}
		d.set = append(d.set, f, text)
	}
	sweep := at.Add(-SweepGrace)
	for f, raw := range cur {
		if _, ok := want[f]; ok {
			continue
		}
		old, ok := parseValue(raw)
		if !ok {
			continue
		}
		if old.Owner == owner || (!old.Until.IsZero() && !old.Until.After(sweep)) {
			d.del = append(d.del, f)
		}
	}
	return d
}

// queue adds d's commands for key to p, in chunks.
func (d diff) queue(ctx context.Context, p redis.Pipeliner, key string) {
	for i := 0; i < len(d.del); i += chunk {
		p.HDel(ctx, key, d.del[i:min(i+chunk, len(d.del))]...)
	}
	for i := 0; i < len(d.set); i += 2 * chunk {
		p.HSet(ctx, key, d.set[i:min(i+2*chunk, len(d.set))]...)
	}
}
