package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Shared is the cluster's state in Redis: a hash of records by field, a
// channel that carries each record written, and a hash of the nodes'
// heartbeats. Keys start with the [redis] key_prefix.
type Shared struct {
	c                    redis.UniversalClient
	prefix               string
	bans, channel, nodes string
}

// NewShared uses c with keys under prefix.
func NewShared(c redis.UniversalClient, prefix string) *Shared {
	return &Shared{c: c, prefix: prefix, bans: prefix + "cluster:bans", channel: prefix + "cluster:events", nodes: prefix + "cluster:nodes"}
}

// putScript writes a record unless the hash holds a newer one of its
// field (later stamp; same stamp, node name sorting later), and publishes
// what it wrote: atomic on the server, so two nodes writing at once end
// with the same winner everywhere.
var putScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local c = cjson.decode(cur)
  local stamp = tonumber(ARGV[3])
  if c.stamp > stamp or (c.stamp == stamp and c.node >= ARGV[4]) then
    return 0
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PUBLISH', KEYS[2], ARGV[2])
return 1
`)

// Put writes r if it is newer than the shared record of its field and
// reports whether it did.
func (s *Shared) Put(ctx context.Context, r Record) (bool, error) {
	data, err := json.Marshal(r)
	if err != nil {
		return false, err
	}
	n, err := putScript.Run(ctx, s.c, []string{s.bans, s.channel}, r.Field(), data, r.Stamp, r.Node).Int()
	if err != nil {
		return false, fmt.Errorf("share %s: %w", r.Field(), err)
	}
	return n == 1, nil
}

// All reads every shared record. A record this node cannot read is
// skipped (and counted), not fatal: one bad field must not stop a resync.
func (s *Shared) All(ctx context.Context) (recs []Record, bad int, err error) {
	m, err := s.c.HGetAll(ctx, s.bans).Result()
	if err != nil {
		return nil, 0, fmt.Errorf("read shared bans: %w", err)
	}
	for _, v := range m {
		r, err := decode([]byte(v))
		if err != nil {
			bad++
			continue
		}
		recs = append(recs, r)
	}
	return recs, bad, nil
}

// dropScript deletes a field only if it still holds the record read.
var dropScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
`)

// Drop deletes r's field if it still holds r: records of bans that ended
// long ago are pruned without racing a node that bans the same key anew.
func (s *Shared) Drop(ctx context.Context, r Record) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return dropScript.Run(ctx, s.c, []string{s.bans}, r.Field(), data).Err()
}

// Beat records that node is alive at now.
func (s *Shared) Beat(ctx context.Context, node string, now time.Time) error {
	return s.c.HSet(ctx, s.nodes, node, now.UnixMilli()).Err()
}

// Peers are the nodes that ever beat, with their last beat.
func (s *Shared) Peers(ctx context.Context) (map[string]time.Time, error) {
	m, err := s.c.HGetAll(ctx, s.nodes).Result()
	if err != nil {
		return nil, err
	}
	out := make(map[string]time.Time, len(m))
	for n, v := range m {
		if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
			out[n] = time.UnixMilli(ms)
		}
	}
	return out, nil
}

// Subscribe listens to the records written from now on.
func (s *Shared) Subscribe(ctx context.Context) *redis.PubSub {
	return s.c.Subscribe(ctx, s.channel)
}
