package rules_test

import (
	"bytes"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/mailjail/mailjail/bench/loggen"
	"github.com/mailjail/mailjail/rules"
)

// Benchmarks of the hot paths issue 7 names: filter match, candidate scan
// over a read buffer, strike record. Each runs in well under a second with
// -benchtime 20x (CI), and reports per-line figures with -benchtime 1s.

// genLog returns n lines of generated log of kind (cached per kind and n).
func genLog(b *testing.B, kind string, n int) []byte {
	b.Helper()
	key := fmt.Sprintf("%s/%d", kind, n)
	logMu.Lock()
	defer logMu.Unlock()
	if l, ok := logs[key]; ok {
		return l
	}
	o := loggen.Defaults()
	o.Kind, o.Lines = kind, n
	var buf bytes.Buffer
	if _, err := loggen.Generate(&buf, o); err != nil {
		b.Fatalf("generate %s: %v", key, err)
	}
	logs[key] = buf.Bytes()
	return buf.Bytes()
}

var (
	logMu sync.Mutex
	logs  = map[string][]byte{}
)

// linesWith returns the messages (lines without timestamp) of log that
// contain lit, and whether filter f matches each.
func linesWith(b *testing.B, log []byte, lit string) [][]byte {
	b.Helper()
	var out [][]byte
	for line := range bytes.SplitSeq(log, []byte{'\n'}) {
		if bytes.Contains(line, []byte(lit)) {
			_, n, ok := rules.ParseTime(line, time.UTC, time.Now())
			if !ok {
				b.Fatalf("no time in %q", line)
			}
			out = append(out, line[n:])
		}
	}
	if len(out) == 0 {
		b.Fatalf("no line contains %q", lit)
	}
	return out
}

// BenchmarkFilterMatch runs the built-in filters' Match on what reaches it
// in a real scan: candidate lines (events, and hostile lines that carry the
// literal but are no events) and, for comparison, a non-candidate line.
func BenchmarkFilterMatch(b *testing.B) {
	for _, tc := range []struct{ kind, filter, noise string }{
		{"rspamd", "rspamd-ratelimit", "proxy_accept_socket"}, {"postfix", "postfix-ratelimit", "postfix/qmgr"},
	} {
		f, err := rules.BuiltinFilter(tc.filter)
		if err != nil {
			b.Fatal(err)
		}
		cands := linesWith(b, genLog(b, tc.kind, 20000), string(f.Literal()))
		var events, hostile [][]byte
		for _, l := range cands {
			if _, ok := f.Match(l); ok {
				events = append(events, l)
			} else {
				hostile = append(hostile, l)
			}
		}
		if len(events) == 0 || len(hostile) == 0 {
			b.Fatalf("%s: %d events, %d hostile candidates", tc.filter, len(events), len(hostile))
		}
		noise := linesWith(b, genLog(b, tc.kind, 20000), tc.noise)[0]
		for _, set := range []struct {
			name  string
			lines [][]byte
			want  bool
		}{{"event", events, true}, {"hostile", hostile, false}, {"noise", [][]byte{noise}, false}} {
			b.Run(tc.kind+"/"+set.name, func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if _, ok := f.Match(set.lines[i%len(set.lines)]); ok != set.want {
						b.Fatalf("match %v on %q", ok, set.lines[i%len(set.lines)])
					}
					i++
				}
			})
		}
	}
}

// BenchmarkCandidates scans 1 MiB read buffers of generated log for the
// filter's literal, as test-filter, replay and the daemon do, and counts
// candidates; MB/s is over the whole buffer. "IndexByteLines" is the
// baseline of cutting every line out (what a line-by-line reader pays).
func BenchmarkCandidates(b *testing.B) {
	for _, tc := range []struct{ kind, filter string }{{"rspamd", "rspamd-ratelimit"}, {"postfix", "postfix-ratelimit"}} {
		f, err := rules.BuiltinFilter(tc.filter)
		if err != nil {
			b.Fatal(err)
		}
		log := genLog(b, tc.kind, 20000)
		buf := log[:min(len(log), 1<<20)]
		b.Run(tc.kind, func(b *testing.B) {
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			var lines, cands int
			for b.Loop() {
				cands = 0
				lines, _ = rules.Candidates(buf, f.Prefilter(), func([]byte) { cands++ })
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*lines), "ns/line")
			if cands == 0 {
				b.Fatal("no candidates")
			}
		})
		b.Run(tc.kind+"/IndexByteLines", func(b *testing.B) {
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				for rest := buf; len(rest) > 0; {
					i := bytes.IndexByte(rest, '\n')
					if i < 0 {
						break
					}
					rest = rest[i+1:]
				}
			}
		})
	}
}

// BenchmarkScanMatch is test-filter's whole per-buffer work: candidate
// scan, timestamp parse and Match on each candidate.
func BenchmarkScanMatch(b *testing.B) {
	f, err := rules.BuiltinFilter("rspamd-ratelimit")
	if err != nil {
		b.Fatal(err)
	}
	log := genLog(b, "rspamd", 20000)
	buf := log[:min(len(log), 1<<20)]
	ref := time.Now()
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	var lines, matched int
	for b.Loop() {
		matched = 0
		lines, _ = rules.Candidates(buf, f.Prefilter(), func(line []byte) {
			_, n, _ := rules.ParseTime(line, time.UTC, ref)
			if _, ok := f.Match(line[n:]); ok {
				matched++
			}
		})
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*lines), "ns/line")
	if matched == 0 {
		b.Fatal("no match")
	}
}

// policyConfig is the default jail's policy.
func policyConfig() rules.PolicyConfig {
	return rules.PolicyConfig{MaxRetry: 10, FindTime: 10 * time.Minute, BanTime: time.Hour, Escalation: rules.Escalation{Increment: true, Factor: 1, MaxTime: 7 * 24 * time.Hour},
		Lookback: 30 * 24 * time.Hour}
}

// BenchmarkPolicyStrike records strikes: "hot" cycles over 100 addresses
// (an attack: windows fill up and ban), "spread" over 100,000 addresses
// (a botnet: one or two strikes each, a map insert per strike).
func BenchmarkPolicyStrike(b *testing.B) {
	for _, tc := range []struct {
		name  string
		addrs int
	}{{"hot", 100}, {"spread", 100000}} {
		addrs := make([]netip.Addr, tc.addrs)
		for i := range addrs {
			addrs[i] = loggen.ClientAddr(i, 0.2, 1)
		}
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			p := rules.NewPolicy[rules.AddrKey](policyConfig())
			t0 := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
			i := 0
			for b.Loop() {
				now := t0.Add(time.Duration(i) * time.Millisecond)
				p.Strike(rules.KeyOf(addrs[i%len(addrs)]), now, now)
				i++
			}
		})
	}
}

// BenchmarkPolicyMemory holds strikes of many distinct addresses inside
// findtime and reports the heap per tracked address (bench/mem does the
// same for 1,000,000 addresses and reports RSS). Each address gets
// strikes strikes, fewer than maxretry, so none is banned.
func BenchmarkPolicyMemory(b *testing.B) {
	const n = 10000
	for _, strikes := range []int{1, 5} {
		b.Run(fmt.Sprintf("strikes=%d", strikes), func(b *testing.B) {
			addrs := make([]netip.Addr, n)
			for i := range addrs {
				addrs[i] = loggen.ClientAddr(i, 0.2, 1)
			}
			t0 := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
			var per float64
			for b.Loop() {
				before := heapInUse()
				p := rules.NewPolicy[rules.AddrKey](policyConfig())
				for s := range strikes {
					for i, a := range addrs {
						at := t0.Add(time.Duration(s*n+i) * time.Microsecond)
						p.Strike(rules.KeyOf(a), at, at)
					}
				}
				per = float64(heapInUse()-before) / float64(p.Tracked())
				runtime.KeepAlive(p)
			}
			b.ReportMetric(per, "B/addr")
		})
	}
}

func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}
