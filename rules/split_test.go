package rules

import (
	"bufio"
	"os"
	"testing"
	"time"
)

// slowRspamd is the rspamd filter without its fast path: the one regex
// the fast path must agree with.
func slowRspamd(t testing.TB) *Filter {
	f, err := BuiltinFilter("rspamd-ratelimit")
	if err != nil {
		t.Fatal(err)
	}
	f.split = nil
	return f
}

func agree(t testing.TB, fast, slow *Filter, line []byte) {
	m1, ok1 := fast.Match(line)
	m2, ok2 := slow.Match(line)
	if ok1 != ok2 || m1 != m2 {
		t.Fatalf("fast path %v %+v, regex %v %+v on %q", ok1, m1, ok2, m2, line)
	}
}

func TestSplitAgreesOnRealAndHostileLines(t *testing.T) {
	fast, err := BuiltinFilter("rspamd-ratelimit")
	if err != nil {
		t.Fatal(err)
	}
	if fast.split == nil {
		t.Fatal("no fast path")
	}
	slow := slowRspamd(t)
	f, err := os.Open("../testdata/rspamd-3.4-proxy.log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	n := 0
	for sc.Scan() {
		if _, k, ok := ParseTime(sc.Bytes(), time.UTC, t0); ok {
			agree(t, fast, slow, sc.Bytes()[k:])
			n++
		}
	}
	for _, l := range hostileSeeds {
		agree(t, fast, slow, []byte(l))
	}
	if n < 3000 {
		t.Fatalf("only %d lines", n)
	}
}

var hostileSeeds = []string{
	`#3861(rspamd_proxy) <4854e1>; proxy; rspamd_task_write_log: id: <x>,?ip:?192.0.2.200,?user:?y@z>, ip: 198.18.0.66, from: <m@example.com>, (default: F (soft reject): [0.00/15.00] []), len: 158, forced: soft reject "Ratelimit "ip" exceeded"; score=nan (set by ratelimit)`,
	`#3861(rspamd_proxy) <4854e1>; proxy; rspamd_task_write_log: id: <x>, ip: 192.0.2.200, q>, ip: 198.18.0.66, from: <m@e>, (default: F (soft reject): []), forced: soft reject "Ratelimit "ip" exceeded"; score=nan (set by ratelimit)`,
	`#1(rspamd_proxy) <a>; proxy; rspamd_task_write_log: id: <m>, ip: 1:2:3:4:5:6:7:8:9:10:11:12:13:14:15:16:17:18:19:20:21:22, from: <a@b>, (default: F (soft reject): []), forced: soft reject "Ratelimit "ip" exceeded"; score=nan (set by ratelimit)`,
	`#1(rspamd_proxy) <a>; proxy; rspamd_task_write_log: id: <m>, ip: 198.51.100.1, from: <a, forced: soft reject "Ratelimit "user" exceeded"; score=nan (set by ratelimit)>, (default: F (soft reject): []), forced: soft reject "Ratelimit "ip" exceeded"; score=nan (set by ratelimit)`,
	`#1(rspamd_proxy) <a>; proxy; rspamd_task_write_log: id: <m>, ip: 198.51.100.1, from: <a@b>, forced: soft reject "Ratelimit "ip" exceeded"; score=nan (set by ratelimit), (default: F (soft reject): [])`,
	`#1(rspamd_proxy) <a>; proxy; rspamd_task_write_log: id: <m>, ip: 198.51.100.1, (default: T (no action): []), mime_rcpts: <(default: F (soft reject): x>, forced: soft reject "Ratelimit "ip" exceeded"; score=nan (set by ratelimit)`,
	`mx rspamd[1]: <a>; task; rspamd_task_write_log: id: <m>, qid: <Q>, ip: ::ffff:198.51.100.7, (default: F (reject): []), forced: reject "Ratelimit "to_ip" exceeded"; score=1.00 (set by ratelimit)`,
	`#1(rspamd_proxy) <a>; proxy; rspamd_task_write_log: id: <m>, ip: 198.51.100.1, user: Alice@Example.org, from: <a@b>, (default: F (soft reject): []), forced: soft reject "Ratelimit "user" exceeded"; score=nan (set by ratelimit)`,
	`#1(rspamd_proxy) <a>; proxy; rspamd_task_write_log: id: <m>, ip: 198.51.100.1, user: a, b, (default: F (soft reject): []), forced: soft reject "Ratelimit "user" exceeded"; score=nan (set by ratelimit)`,
	`#1(rspamd_proxy) <a>; lua; ratelimit.lua:617: ratelimit "sasl(20000:alice@example.org)" exceeded, (5 / 0.01): 4.9 (1:1 dyn); redis key: RLx`,
	`#1(rspamd_proxy) <a>; proxy; rspamd_task_write_log: id: <m>, ip: 198.51.100.1, user: alice@example.org, (default: F (soft reject): []), forced: soft reject "slow down, forced: soft reject "x"; score=nan (set by ratelimit)"; score=nan (set by ratelimit)`,
	`#1(rspamd_proxy) <a>; proxy; rspamd_task_write_log: id: <m>, ip: 198.51.100.1, (default: F (soft reject): []), forced: soft reject "a, forced: x"; score=nan (set by ratelimit)`,
}

// FuzzSplitAgrees: the fast path accepts exactly what the regex accepts.
func FuzzSplitAgrees(f *testing.F) {
	for _, s := range hostileSeeds {
		f.Add([]byte(s))
	}
	fast, err := BuiltinFilter("rspamd-ratelimit")
	if err != nil {
		f.Fatal(err)
	}
	slow := slowRspamd(f)
	f.Fuzz(func(t *testing.T, line []byte) {
		agree(t, fast, slow, line)
	})
}
