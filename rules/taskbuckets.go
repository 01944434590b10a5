package rules

import (
	"bytes"
	"sync"
)

// taskMemory is how many rspamd tasks taskBuckets remembers. rspamd writes
// a task's ratelimit.lua line a few lines before its summary line (the
// passthrough line lies between), and a worker runs a bounded number of
// tasks at once; 1024 tasks cover far more interleaving than a busy host
// shows, and bound the memory a flood of such lines can take.
const taskMemory = 1024

// taskBuckets remembers which bucket rspamd's ratelimit.lua line named for
// each of the last taskMemory tasks. A bucket that sets its own `message`
// makes the summary line say that message instead of `Ratelimit "x"
// exceeded`; its bucket is then only in the ratelimit.lua line of the same
// task, which carries the same worker and task tag (`#3861(rspamd_proxy)
// <b27634>`, verified in proxy/milter mode on rspamd 3.4).
//
// A Filter is shared by whoever calls Match, so the memory has its own
// lock; it is taken only for ratelimit.lua lines and for summary lines
// that do not name their bucket, never on the usual path.
type taskBuckets struct {
	mu    sync.Mutex
	ring  [taskMemory]taskEntry
	next  int            // the slot the next new task takes
	index map[string]int // task key -> slot
}

type taskEntry struct{ task, bucket string }

func newTaskBuckets() *taskBuckets {
	return &taskBuckets{index: make(map[string]int, taskMemory)}
}

// infoBucket reads a ratelimit.lua line: its task key (everything before
// the first ';', which rspamd writes right after the task tag's '>') and
// the bucket in `; lua; ratelimit.lua:NNN: ratelimit "BUCKET(`. It is
// parsed by hand, not by a regex: every such line is read, one per
// limited message, and only text rspamd writes before the key (which may
// hold sender text) is looked at.
func infoBucket(msg []byte) (key, bucket []byte, ok bool) {
	i := bytes.IndexByte(msg, ';')
	if i < 1 || msg[i-1] != '>' || bytes.IndexByte(msg[:i], '<') < 0 || !bytes.HasPrefix(msg[i:], []byte(rspamdInfoTask)) {
		return nil, nil, false
	}
	rest := msg[i+len(rspamdInfoTask):]
	n := 0
	for n < len(rest) && '0' <= rest[n] && rest[n] <= '9' {
		n++
	}
	const lead = `: ratelimit "`
	if n == 0 || !bytes.HasPrefix(rest[n:], []byte(lead)) {
		return nil, nil, false
	}
	rest = rest[n+len(lead):]
	n = 0
	for n < len(rest) && wordByte[rest[n]] {
		n++
	}
	if n == 0 || n == len(rest) || rest[n] != '(' {
		return nil, nil, false
	}
	return msg[:i], rest[:n], true
}

// taskKey is the part of an rspamd line that names its task: everything up
// to the task tag's '>' (worker or syslog tag, process id, task tag), so
// that tasks of different workers never share a key. The callers have
// checked the line's start with a regex that ends in `<tag>; `, and the
// text before the tag has no ">; ".
func taskKey(msg []byte) []byte {
	i := bytes.Index(msg, []byte(">; "))
	if i < 0 {
		return nil
	}
	return msg[:i+1]
}

// see remembers the bucket of msg when it is a ratelimit.lua line. A task
// whose lines name two different buckets gets bucket "" (unknown): which
// one its summary line is about cannot be told.
func (t *taskBuckets) see(msg []byte) {
	key, b, ok := infoBucket(msg)
	if !ok {
		return
	}
	bucket := internBucket(b)
	t.mu.Lock()
	defer t.mu.Unlock()
	if i, ok := t.index[string(key)]; ok {
		if t.ring[i].bucket != bucket {
			t.ring[i].bucket = ""
		}
		return
	}
	if old := t.ring[t.next].task; old != "" {
		delete(t.index, old)
	}
	t.ring[t.next] = taskEntry{task: string(key), bucket: bucket}
	t.index[string(key)] = t.next
	t.next = (t.next + 1) % taskMemory
}

// take returns and forgets the bucket remembered for msg's task, or "".
func (t *taskBuckets) take(msg []byte) string {
	key := taskKey(msg)
	t.mu.Lock()
	defer t.mu.Unlock()
	i, ok := t.index[string(key)]
	if !ok {
		return ""
	}
	b := t.ring[i].bucket
	delete(t.index, string(key))
	t.ring[i] = taskEntry{}
	return b
}

// wordByte marks letters, digits and '_' (the bytes of a bucket name).
var wordByte = func() (t [256]bool) {
	for c := range t {
		t[c] = c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
	}
	return t
}()
