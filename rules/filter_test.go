package rules

import (
	"bufio"
	"os"
	"sort"
	"strings"
	"testing"
	"time"
)

// eventsIn runs a filter over a log file the way the daemon does (strip
// the timestamp, match the rest) and counts matches per address/bucket.
func eventsIn(t *testing.T, f *Filter, path string) map[string]int {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	got := map[string]int{}
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		_, n, ok := ParseTime(line, time.UTC, time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
		if !ok {
			t.Fatalf("no timestamp in %q", line)
		}
		if m, ok := f.Match(line[n:]); ok {
			got[m.Addr.String()+" "+m.Bucket]++
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestBuiltinFiltersOnRealLogs(t *testing.T) {
	tests := []struct {
		filter, file string
		want         map[string]int
	}{
		{
			// Counted from the summary lines: one rejected message is one
			// event, although rspamd writes 2 or 3 lines for it.
			filter: "rspamd-ratelimit", file: "../testdata/rspamd-3.4-proxy.log",
			want: map[string]int{
				"198.51.100.23 ip": 2,
				"198.18.0.66 ip":   3,
				"198.18.5.6 ip":    5,
				"2001:db8::42 ip":  2,
				"203.0.113.7 user": 7,
			},
		},
		{
			filter: "postfix-ratelimit", file: "../testdata/postfix-3.7.log",
			want: map[string]int{"198.18.5.6 ip": 5},
		},
	}
	for _, tt := range tests {
		t.Run(tt.filter, func(t *testing.T) {
			f, err := BuiltinFilter(tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			got := eventsIn(t, f, tt.file)
			if !equalCounts(got, tt.want) {
				t.Errorf("events = %v, want %v", got, tt.want)
			}
		})
	}
}

func equalCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// Every field a remote sender chooses (Message-ID, envelope from, HELO,
// recipients, symbol options, subject) is tried with text that would make a
// naive filter ban someone else. None of these lines may produce an event
// for the injected address; the genuine ones must keep their real address.
func TestBuiltinFiltersResistInjection(t *testing.T) {
	const victim = "192.0.2.200"
	forced := `forced: soft reject "Ratelimit "ip" exceeded"; score=nan (set by ratelimit)`
	tests := []struct {
		name, filter, line string
		wantAddr           string // "" means no event
	}{
		{"msgid with escaped spaces (real rspamd)", "rspamd-ratelimit",
			`#3861(rspamd_proxy) <4854e1>; proxy; rspamd_task_write_log: id: <x>,?ip:?192.0.2.200,?user:?y@z>, ip: 198.18.0.66, from: <m@example.com>, (default: F (soft reject): [0.00/15.00] []), len: 158, ` + forced, "198.18.0.66"},
		{"msgid without spaces", "rspamd-ratelimit",
			`#3861(rspamd_proxy) <4854e1>; proxy; rspamd_task_write_log: id: <x>,ip:192.0.2.200,>, ip: 198.18.0.66, from: <m@example.com>, (default: F (soft reject): [0.00/15.00] []), ` + forced, "198.18.0.66"},
		{"envelope from carries the forced text, message not rejected", "rspamd-ratelimit",
			`#3861(rspamd_proxy) <aa11bb>; proxy; rspamd_task_write_log: id: <a@b>, ip: 192.0.2.200, from: <x@y>, (default: T (add header): [6.00/15.00] []), len: 1, mime_rcpts: <` + forced + `>`, ""},
		{"recipient ends the line with forced text", "rspamd-ratelimit",
			`#3861(rspamd_proxy) <aa11bb>; proxy; rspamd_task_write_log: id: <a@b>, ip: 198.51.100.1, from: <x@y>, (default: T (no action): [0.00/15.00] []), len: 1, rcpts: <v@w>, mime_rcpts: <a, ` + forced, ""},
		{"greylist soft reject is not ratelimit", "rspamd-ratelimit",
			`#4460(rspamd_proxy) <4793f4>; proxy; rspamd_task_write_log: id: <Ratelimit "ip" exceeded>, qid: <95740BA413>, ip: 198.18.5.5, from: <carol@example.net>, (default: F (soft reject): [0.00/15.00] []), len: 242, forced: soft reject "Try again later"; score=nan (set by greylist)`, ""},
		{"symbol option mentions ratelimit", "rspamd-ratelimit",
			`#4460(rspamd_proxy) <4793f4>; proxy; rspamd_task_write_log: id: <m@x>, ip: 198.18.5.5, from: <c@e>, (default: T (add header): [7.00/15.00] [HFILTER_HELO_5(3.00){ip: 192.0.2.200, forced: soft reject "Ratelimit "ip" exceeded"; score=nan (set by ratelimit)}]), len: 242`, ""},
		{"passthrough line is not the event line", "rspamd-ratelimit",
			`#3861(rspamd_proxy) <431996>; proxy; rspamd_add_passthrough_result: <x>,?ip:?192.0.2.200>: set pre-result to 'soft reject' (no score): 'Ratelimit "ip" exceeded' from ratelimit(1)`, ""},
		{"qid form", "rspamd-ratelimit",
			`#4772(rspamd_proxy) <2dc0b2>; proxy; rspamd_task_write_log: id: <20261125033439.004799@vm>, qid: <5346CBA274>, ip: 198.18.5.6, from: <carol@example.net>, (default: F (soft reject): [0.00/15.00] []), len: 242, ` + forced, "198.18.5.6"},
		{"mapped IPv4 is normalised", "rspamd-ratelimit",
			`#1(rspamd_proxy) <abc>; proxy; rspamd_task_write_log: id: <m>, ip: ::ffff:198.51.100.7, from: <a@b>, (default: F (soft reject): [0.00/15.00] []), ` + forced, "198.51.100.7"},
		{"syslog form of rspamd", "rspamd-ratelimit",
			`mx rspamd[3861]: <4854e1>; proxy; rspamd_task_write_log: id: <m>, ip: 2001:db8:0:0::42, from: <a@b>, (default: F (soft reject): [0.00/15.00] []), ` + forced, "2001:db8::42"},
		// rspamd 3.4 writes spaces in a Message-ID as '?'; were a raw one
		// ever to reach the log, a second ", ip: " field makes the line
		// ambiguous, and an ambiguous line is no event (issue 11 #22).
		{"msgid with raw spaces and a fake ip field", "rspamd-ratelimit",
			`#3861(rspamd_proxy) <4854e1>; proxy; rspamd_task_write_log: id: <x>, ip: 192.0.2.200, <y>, ip: 198.18.0.66, from: <m@example.com>, (default: F (soft reject): [0.00/15.00] []), len: 158, ` + forced, ""},
		{"msgid with raw spaces copying the whole head", "rspamd-ratelimit",
			`#3861(rspamd_proxy) <4854e1>; proxy; rspamd_task_write_log: id: <x>, ip: 192.0.2.200, user: v, from: <y>, (default: F (soft reject): [0.00/15.00] []), <z>, ip: 198.18.0.66, from: <m@example.com>, (default: F (soft reject): [0.00/15.00] []), len: 158, ` + forced, ""},
		{"envelope from with ip: and user: inside", "rspamd-ratelimit",
			`#3861(rspamd_proxy) <4854e1>; proxy; rspamd_task_write_log: id: <m@x>, ip: 198.18.0.66, from: <"ip: 192.0.2.200 user: v"@example.com>, (default: F (soft reject): [0.00/15.00] []), len: 158, ` + forced, "198.18.0.66"},
		{"envelope from with a whole ip field", "rspamd-ratelimit",
			`#3861(rspamd_proxy) <4854e1>; proxy; rspamd_task_write_log: id: <m@x>, ip: 198.18.0.66, from: <"a, ip: 192.0.2.200, user: v"@example.com>, (default: F (soft reject): [0.00/15.00] []), len: 158, ` + forced, ""},
		{"user field with an ip field", "rspamd-ratelimit",
			`#3861(rspamd_proxy) <4854e1>; proxy; rspamd_task_write_log: id: <m@x>, ip: 198.18.0.66, user: a, ip: 192.0.2.200, from: <b@example.com>, (default: F (soft reject): [0.00/15.00] []), len: 158, ` + forced, ""},
		{"postfix helo carries a bracketed address", "postfix-ratelimit",
			`mx postfix/cleanup[4696]: 5346CBA274: milter-reject: END-OF-MESSAGE from unknown[198.18.5.6]: 4.7.1 Ratelimit "ip" exceeded; from=<a@b> to=<c@d> proto=ESMTP helo=<unknown[192.0.2.200]: 4.7.1 Ratelimit "ip" exceeded; from=<>`, "198.18.5.6"},
		{"postfix sender carries the whole reject", "postfix-ratelimit",
			`mx postfix/cleanup[4696]: 5346CBA274: milter-reject: END-OF-MESSAGE from unknown[198.18.5.6]: 4.7.1 Try again later; from=<x END-OF-MESSAGE from unknown[192.0.2.200]: 4.7.1 Ratelimit "ip" exceeded; from=<y> to=<c@d> proto=ESMTP helo=<vm>`, ""},
		{"postfix IPv6 client", "postfix-ratelimit",
			`mx postfix/submission/cleanup[4696]: 5346CBA274: milter-reject: END-OF-MESSAGE from mail.example.net[2001:db8::42]: 4.7.1 Ratelimit "to_ip" exceeded; from=<a@b> to=<c@d> proto=ESMTP helo=<h>`, "2001:db8::42"},
		{"postfix smtpd reject text with ratelimit words", "postfix-ratelimit",
			`mx postfix/smtpd[4613]: NOQUEUE: reject: RCPT from unknown[198.18.5.5]: 550 5.1.1 <Ratelimit "ip" exceeded; from=<@x>: Recipient address rejected; from=<a@b> to=<unknown[192.0.2.200]: 4.7.1 Ratelimit "ip" exceeded; from=<> proto=ESMTP helo=<vm>`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := BuiltinFilter(tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			m, ok := f.Match([]byte(tt.line))
			got := ""
			if ok {
				got = m.Addr.String()
			}
			if got != tt.wantAddr {
				t.Errorf("match = %q, want %q", got, tt.wantAddr)
			}
			if got == victim {
				t.Errorf("injected address %s was captured", victim)
			}
		})
	}
}

func TestCompileFilterErrors(t *testing.T) {
	tests := []struct {
		name string
		spec FilterSpec
		want string
	}{
		{"no regex", FilterSpec{}, "no failregex"},
		{"no host", FilterSpec{FailRegex: []string{"exceeded"}}, "missing <HOST>"},
		{"two hosts", FilterSpec{FailRegex: []string{"<HOST> <HOST>"}}, "exactly one <HOST>"},
		{"bad regex", FilterSpec{FailRegex: []string{"from <HOST> ("}}, "missing closing )"},
		{"bad ignore", FilterSpec{FailRegex: []string{"x <HOST>"}, IgnoreRegex: []string{"["}}, "ignoreregex[0]"},
		{"prefilter not required", FilterSpec{FailRegex: []string{"a <HOST>"}, Prefilter: new("zzz")}, "not a literal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := CompileFilter("x", tt.spec)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want containing %q", err, tt.want)
			}
		})
	}
}

func TestUserFilter(t *testing.T) {
	f, err := CompileFilter("auth", FilterSpec{
		FailRegex:   []string{`^\S+ postfix/smtpd\[\d+\]: warning: [\w.-]+\[<HOST>\]: SASL (?:LOGIN|PLAIN) authentication failed`},
		IgnoreRegex: []string{`\[203\.0\.113\.`},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(f.Literal()); got != " authentication failed" {
		t.Errorf("derived literal = %q", got)
	}
	tests := []struct {
		line, want string
	}{
		{`mx postfix/smtpd[12]: warning: unknown[198.51.100.9]: SASL LOGIN authentication failed: UGFzc3dvcmQ6`, "198.51.100.9"},
		{`mx postfix/smtpd[12]: warning: unknown[203.0.113.9]: SASL LOGIN authentication failed`, ""},
		{`mx postfix/smtpd[12]: warning: unknown[999.1.1.1]: SASL LOGIN authentication failed`, ""},
		{`mx postfix/smtpd[12]: connect from unknown[198.51.100.9]`, ""},
	}
	for _, tt := range tests {
		m, ok := f.Match([]byte(tt.line))
		got := ""
		if ok {
			got = m.Addr.String()
		}
		if got != tt.want {
			t.Errorf("%q: got %q, want %q", tt.line, got, tt.want)
		}
	}
}

func TestBuiltinNames(t *testing.T) {
	names := BuiltinNames()
	if !sort.StringsAreSorted(names) || len(names) != 2 {
		t.Errorf("names = %v", names)
	}
	if _, err := BuiltinFilter("nope"); err == nil {
		t.Error("unknown built-in accepted")
	}
}

func FuzzFilterMatch(f *testing.F) {
	f.Add([]byte(`#3861(rspamd_proxy) <4854e1>; proxy; rspamd_task_write_log: id: <x>, ip: 198.18.0.66, from: <m@example.com>, (default: F (soft reject): [0.00/15.00] []), forced: soft reject "Ratelimit "ip" exceeded"; score=nan (set by ratelimit)`))
	f.Add([]byte(`mx postfix/cleanup[4696]: 5346CBA274: milter-reject: END-OF-MESSAGE from unknown[198.18.5.6]: 4.7.1 Ratelimit "ip" exceeded; from=<a@b>`))
	fs := []*Filter{}
	for _, n := range BuiltinNames() {
		flt, err := BuiltinFilter(n)
		if err != nil {
			f.Fatal(err)
		}
		fs = append(fs, flt)
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		for _, flt := range fs {
			if m, ok := flt.Match(line); ok && !m.Addr.IsValid() {
				t.Fatalf("match without a valid address: %q", line)
			}
		}
	})
}
