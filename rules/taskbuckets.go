package rules

import (
	"bytes"
	"regexp"
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
	line *regexp.Regexp // a ratelimit.lua line; group 1 is the bucket

	mu    sync.Mutex
	ring  [taskMemory]taskEntry
	next  int            // the slot the next new task takes
	index map[string]int // task key -> slot
}

type taskEntry struct{ task, bucket string }

func newTaskBuckets(line *regexp.Regexp) *taskBuckets {
	return &taskBuckets{line: line, index: make(map[string]int, taskMemory)}
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
	m := t.line.FindSubmatchIndex(msg)
	if m == nil {
		return
	}
	key := taskKey(msg)
	bucket := internBucket(msg[m[2]:m[3]])
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
