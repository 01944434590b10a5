package rules

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// matchesIn runs a fresh built-in rspamd filter over a file the way the
// engine does (prefilter, timestamp cut, Match) and lists the events as
// "ADDR BUCKET USER" ("-" for an empty field).
func matchesIn(t *testing.T, path string) []string {
	t.Helper()
	f, err := BuiltinFilter("rspamd-ratelimit")
	if err != nil {
		t.Fatal(err)
	}
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var got []string
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] == '#' || !f.Prefilter().Pass(line) {
			continue
		}
		_, n, _ := ParseTime(line, time.UTC, t0)
		if m, ok := f.Match(line[n:]); ok {
			got = append(got, fmt.Sprintf("%s %s %s", m.Addr, orDash(m.Bucket), orDash(m.User)))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// The lines of each rspamd release (built from its sources, see each
// file's header) give the same events: the address, the bucket, the
// login with its domain lowercased. A bucket with its own message is
// named by the task's ratelimit.lua line from 3.12.0 on; before, rspamd
// logs "(set by Unknown lua)" for it and the filter sees no ratelimit
// event.
func TestRspamdVersions(t *testing.T) {
	common := []string{
		"198.51.100.23 ip -",
		"203.0.113.7 user alice@example.com",
		"2001:db8::42 ip bob@example.org",
	}
	withMessage := append(append([]string(nil), common...), "198.18.0.66 sasl_user carol@example.org")
	want := map[string][]string{
		"3.4": common, "3.9.0": common, "3.11.1": common,
		"3.12.0": withMessage, "4.0.1": withMessage, "4.1.0": withMessage, "4.1.5": withMessage,
	}
	files, err := filepath.Glob("testdata/rspamd-versions/*.log")
	if err != nil || len(files) != len(want) {
		t.Fatalf("files %v (%v), want %d", files, err, len(want))
	}
	for _, file := range files {
		v := strings.TrimSuffix(filepath.Base(file), ".log")
		t.Run(v, func(t *testing.T) {
			got := matchesIn(t, file)
			if strings.Join(got, "\n") != strings.Join(want[v], "\n") {
				t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want[v], "\n"))
			}
		})
	}
}

// The real 3.4 capture: the user bucket's events name the account.
func TestRspamdRealLogNamesTheAccount(t *testing.T) {
	counts := map[string]int{}
	for _, e := range matchesIn(t, "../testdata/rspamd-3.4-proxy.log") {
		counts[e]++
	}
	want := map[string]int{
		"198.51.100.23 ip -":                 2,
		"198.18.0.66 ip -":                   3,
		"198.18.5.6 ip -":                    5,
		"2001:db8::42 ip -":                  2,
		"203.0.113.7 user alice@example.com": 7,
	}
	if !equalCounts(counts, want) {
		t.Errorf("events %v, want %v", counts, want)
	}
}

const (
	sumHead = `#3861(rspamd_proxy) <%s>; proxy; rspamd_task_write_log: id: <m@x>, ip: 198.18.0.66, user: carol@example.org, from: <carol@example.org>, (default: F (soft reject): [0.00/15.00] []), len: 143, `
	sumMsg  = `forced: soft reject "account over its limit"; score=nan (set by ratelimit)`
	info    = `#3861(rspamd_proxy) <%s>; lua; ratelimit.lua:423: ratelimit "%s(20000:carol@example.org)" exceeded, (5 / 0.0166): 4.99 (dynamic ratelimits disabled); redis key: RLx`
)

// A summary line with a bucket's own message takes its bucket from the
// ratelimit.lua line of the same task, which is no event itself; without
// one (or with two that disagree) the bucket is unknown.
func TestMessageBucketFromTaskLine(t *testing.T) {
	f, err := BuiltinFilter("rspamd-ratelimit")
	if err != nil {
		t.Fatal(err)
	}
	feed := func(format string, args ...any) (Match, bool) {
		line := []byte(fmt.Sprintf(format, args...))
		if !f.Prefilter().Pass(line) {
			t.Fatalf("the prefilter drops %q", line)
		}
		return f.Match(line)
	}
	summary := func(tag string) Match {
		t.Helper()
		m, ok := feed(sumHead+sumMsg, tag)
		if !ok || m.Addr.String() != "198.18.0.66" || m.User != "carol@example.org" {
			t.Fatalf("summary of %s: %v %+v", tag, ok, m)
		}
		return m
	}
	if m, ok := feed(info, "aa0001", "sasl"); ok {
		t.Fatalf("the ratelimit.lua line is an event: %+v", m)
	}
	feed(info, "aa0002", "other") // another task in between
	if m := summary("aa0001"); m.Bucket != "sasl" {
		t.Errorf("bucket %q, want sasl", m.Bucket)
	}
	if m := summary("aa0001"); m.Bucket != "" {
		t.Errorf("a task's bucket was used twice: %q", m.Bucket)
	}
	if m := summary("aa0003"); m.Bucket != "" {
		t.Errorf("bucket %q without a ratelimit.lua line", m.Bucket)
	}
	feed(info, "aa0004", "ip")
	feed(info, "aa0004", "user")
	if m := summary("aa0004"); m.Bucket != "" {
		t.Errorf("bucket %q of a task with two buckets", m.Bucket)
	}
	// Another worker's task with the same tag is another task.
	feed(strings.Replace(info, "#3861", "#3862", 1), "aa0005", "sasl")
	if m := summary("aa0005"); m.Bucket != "" {
		t.Errorf("bucket %q from another worker", m.Bucket)
	}
	// The summary naming its bucket wins over the task line.
	feed(info, "aa0006", "sasl")
	if m, ok := feed(sumHead+`forced: soft reject "Ratelimit "user" exceeded"; score=nan (set by ratelimit)`, "aa0006"); !ok || m.Bucket != "user" {
		t.Errorf("%v %+v, want bucket user", ok, m)
	}
}

// The memory holds the last taskMemory tasks, no more.
func TestTaskMemoryIsBounded(t *testing.T) {
	f, err := BuiltinFilter("rspamd-ratelimit")
	if err != nil {
		t.Fatal(err)
	}
	for i := range taskMemory + 1 {
		f.Match(fmt.Appendf(nil, info, fmt.Sprintf("t%05d", i), "sasl"))
	}
	if n := len(f.tasks.index); n != taskMemory {
		t.Errorf("%d tasks remembered", n)
	}
	if m, _ := f.Match(fmt.Appendf(nil, sumHead+sumMsg, "t00000")); m.Bucket != "" {
		t.Errorf("the oldest task is still remembered")
	}
	if m, _ := f.Match(fmt.Appendf(nil, sumHead+sumMsg, "t00001")); m.Bucket != "sasl" {
		t.Errorf("the second oldest task was forgotten")
	}
}

// Candidates, as the readers use it, passes the ratelimit.lua lines too.
func TestCandidatesPassTaskLines(t *testing.T) {
	f, err := BuiltinFilter("rspamd-ratelimit")
	if err != nil {
		t.Fatal(err)
	}
	buf, err := os.ReadFile("testdata/rspamd-versions/4.1.5.log")
	if err != nil {
		t.Fatal(err)
	}
	var infos, sums int
	Candidates(buf, f.Prefilter(), func(line []byte) {
		switch s := string(line); {
		case strings.Contains(s, "; lua; ratelimit.lua:"):
			infos++
		case strings.HasSuffix(s, "(set by ratelimit)"):
			sums++
		default:
			t.Errorf("candidate %q", s)
		}
	})
	if infos != 4 || sums != 4 {
		t.Errorf("%d ratelimit.lua lines, %d summary lines", infos, sums)
	}
}
