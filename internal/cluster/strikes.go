package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mailjail/mailjail/internal/engine"
	"github.com/redis/go-redis/v9"
)

// lockFor is how long the node that takes a ban keeps others from taking
// the same one: long enough for its ban to reach them (milliseconds), and
// short, so that an address unbanned and back at once is banned again.
const lockFor = 10 * time.Second

// strikeScript adds a strike to the key's sorted set (once per line: the
// member is the line's identity), drops those older than findtime and
// counts the rest. At maxretry the first node to take the ban's lock
// bans and clears the window, as a ban clears it on one host; a node
// that finds its own lock for the same line (it crashed before saving
// the ban, and reads the line again) bans too.
var strikeScript = redis.NewScript(`
redis.call('ZADD', KEYS[1], 'NX', ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
local n = redis.call('ZCARD', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
if n < tonumber(ARGV[5]) then
  return {n, 0}
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[6]) then
  redis.call('DEL', KEYS[1])
  return {n, 1}
end
if redis.call('GET', KEYS[2]) == ARGV[1] then
  return {n, 1}
end
return {n, 0}
`)

// Strikes counts the address jails' strikes of every node together
// (engine.SharedStrikes). While the node sees Redis down it answers at
// once with an error, so the engine counts alone without waiting for a
// timeout on every line.
type Strikes struct {
	sh   *Shared
	node *Node
}

// NewStrikes counts on sh, asking node whether Redis is reachable.
func NewStrikes(sh *Shared, node *Node) *Strikes { return &Strikes{sh: sh, node: node} }

// errDown is the answer while Redis is known to be unreachable.
var errDown = errors.New("cluster: Redis not reachable")

// Strike implements engine.SharedStrikes.
func (s *Strikes) Strike(ctx context.Context, st engine.SharedStrike) (int, bool, error) {
	if !s.node.Status().Connected {
		return 0, false, errDown
	}
	key := s.sh.prefix + "cluster:strikes:" + st.Jail + ":" + st.Key.String()
	lock := s.sh.prefix + "cluster:banlock:" + st.Jail + ":" + st.Key.String()
	now := s.node.opt.Clock.Now()
	res, err := strikeScript.Run(ctx, s.sh.c, []string{key, lock},
		st.ID, st.At.UnixMilli(), now.Add(-st.FindTime).UnixMilli(), st.FindTime.Milliseconds()+1000, st.MaxRetry, lockFor.Milliseconds()).Int64Slice()
	s.node.result(err)
	if err != nil || len(res) != 2 {
		return 0, false, fmt.Errorf("cluster strike: %w", err)
	}
	return int(res[0]), res[1] == 1, nil
}
