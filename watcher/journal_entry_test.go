package watcher

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

const testCursor = "s=19048c5cb43942ebb9ef5b116fe23d86;i=156;b=23e358f2ac22446187e9e972b8d4c14f;m=5c59b823;t=66121265c0c70;x=90e96a69e1c1e9f"

// 2026-11-25T03:34:39.123456Z
const testRealtime = "1795577679123456"

func entryJSON(fields map[string]any) []byte {
	b, err := json.Marshal(fields)
	if err != nil {
		panic(err)
	}
	return b
}

// byteValues is how journalctl writes a value that is not printable UTF-8.
func byteValues(s string) []int {
	out := make([]int, len(s))
	for i := range len(s) {
		out[i] = int(s[i])
	}
	return out
}

func TestJournalEntryToLine(t *testing.T) {
	read := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	base := func(extra map[string]any) []byte {
		m := map[string]any{
			"__CURSOR":             testCursor,
			"__REALTIME_TIMESTAMP": testRealtime,
			"_HOSTNAME":            "mx",
			"SYSLOG_IDENTIFIER":    "postfix/cleanup",
			"_PID":                 "4696",
			"MESSAGE":              "5346CBA274: milter-reject: END-OF-MESSAGE",
		}
		for k, v := range extra {
			if v == nil {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		return entryJSON(m)
	}
	huge := strings.Repeat("x", 1<<20)
	tests := []struct {
		name string
		in   []byte
		want string
		err  bool
	}{
		{name: "postfix line", in: base(nil),
			want: "2026-11-25T03:34:39.123456+00:00 mx postfix/cleanup[4696]: 5346CBA274: milter-reject: END-OF-MESSAGE"},
		{name: "SYSLOG_PID wins over _PID", in: base(map[string]any{"SYSLOG_PID": "77"}),
			want: "2026-11-25T03:34:39.123456+00:00 mx postfix/cleanup[77]: 5346CBA274: milter-reject: END-OF-MESSAGE"},
		{name: "byte-array message (invalid UTF-8, control byte)", in: base(map[string]any{"MESSAGE": byteValues("a\x01b\xffc")}),
			want: "2026-11-25T03:34:39.123456+00:00 mx postfix/cleanup[4696]: a\x01b\xffc"},
		{name: "NUL byte", in: base(map[string]any{"MESSAGE": byteValues("a\x00b")}),
			want: "2026-11-25T03:34:39.123456+00:00 mx postfix/cleanup[4696]: a\x00b"},
		{name: "newline in message stays one line", in: base(map[string]any{"MESSAGE": "one\ntwo postfix/cleanup[1]: forged"}),
			want: "2026-11-25T03:34:39.123456+00:00 mx postfix/cleanup[4696]: one#012two postfix/cleanup[1]: forged"},
		{name: "repeated field takes the first value", in: base(map[string]any{"MESSAGE": []any{"first", "second"}}),
			want: "2026-11-25T03:34:39.123456+00:00 mx postfix/cleanup[4696]: first"},
		{name: "repeated field of byte arrays", in: base(map[string]any{"MESSAGE": []any{byteValues("\xfe1"), "second"}}),
			want: "2026-11-25T03:34:39.123456+00:00 mx postfix/cleanup[4696]: \xfe1"},
		{name: "null message (too large without --all)", in: base(map[string]any{"MESSAGE": json.RawMessage("null")}),
			want: "2026-11-25T03:34:39.123456+00:00 mx postfix/cleanup[4696]: "},
		{name: "missing message", in: base(map[string]any{"MESSAGE": nil}),
			want: "2026-11-25T03:34:39.123456+00:00 mx postfix/cleanup[4696]: "},
		{name: "missing pid", in: base(map[string]any{"_PID": nil}),
			want: "2026-11-25T03:34:39.123456+00:00 mx postfix/cleanup: 5346CBA274: milter-reject: END-OF-MESSAGE"},
		{name: "missing identifier uses _COMM", in: base(map[string]any{"SYSLOG_IDENTIFIER": nil, "_COMM": "smtpd"}),
			want: "2026-11-25T03:34:39.123456+00:00 mx smtpd[4696]: 5346CBA274: milter-reject: END-OF-MESSAGE"},
		{name: "missing identifier and host", in: base(map[string]any{"SYSLOG_IDENTIFIER": nil, "_HOSTNAME": nil}),
			want: "2026-11-25T03:34:39.123456+00:00 - -[4696]: 5346CBA274: milter-reject: END-OF-MESSAGE"},
		{name: "missing time uses read time", in: base(map[string]any{"__REALTIME_TIMESTAMP": nil}),
			want: "2030-01-02T03:04:05.000000+00:00 mx postfix/cleanup[4696]: 5346CBA274: milter-reject: END-OF-MESSAGE"},
		{name: "bad time uses read time", in: base(map[string]any{"__REALTIME_TIMESTAMP": "-5"}),
			want: "2030-01-02T03:04:05.000000+00:00 mx postfix/cleanup[4696]: 5346CBA274: milter-reject: END-OF-MESSAGE"},
		{name: "time past year 9999 uses read time", in: base(map[string]any{"__REALTIME_TIMESTAMP": "9223372036854775807"}),
			want: "2030-01-02T03:04:05.000000+00:00 mx postfix/cleanup[4696]: 5346CBA274: milter-reject: END-OF-MESSAGE"},
		{name: "blanks in prefix fields cannot shift the prefix", in: base(map[string]any{"_HOSTNAME": "m x", "SYSLOG_IDENTIFIER": "postfix/cleanup[1]: x\ny", "_PID": "1 2"}),
			want: "2026-11-25T03:34:39.123456+00:00 m_x postfix/cleanup[1]:_x_y[1_2]: 5346CBA274: milter-reject: END-OF-MESSAGE"},
		{name: "byte value out of range drops the field", in: base(map[string]any{"MESSAGE": []int{97, 256}}),
			want: "2026-11-25T03:34:39.123456+00:00 mx postfix/cleanup[4696]: "},
		{name: "huge message is kept whole by the parser", in: base(map[string]any{"MESSAGE": huge}),
			want: "2026-11-25T03:34:39.123456+00:00 mx postfix/cleanup[4696]: " + huge},
		{name: "no cursor", in: base(map[string]any{"__CURSOR": nil}), err: true},
		{name: "empty cursor", in: base(map[string]any{"__CURSOR": ""}), err: true},
		{name: "not JSON", in: []byte("-- Logs begin at Tue 2026-11-25 --"), err: true},
		{name: "JSON array", in: []byte(`[1,2]`), err: true},
		{name: "truncated JSON", in: base(nil)[:40], err: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := parseJournalEntry(tc.in)
			if tc.err {
				if err == nil {
					t.Fatalf("parse: no error, entry %+v", e)
				}
				return
			}
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if e.Cursor != testCursor {
				t.Errorf("cursor %q", e.Cursor)
			}
			got := appendJournalLine(nil, &e, read)
			if string(got) != tc.want {
				t.Errorf("line\n got %.200q\nwant %.200q", got, tc.want)
			}
			if n := journalLineLen(&e); n != len(got) {
				t.Errorf("journalLineLen = %d, line has %d bytes", n, len(got))
			}
		})
	}
}

// The rendered time must be what the rules package reads: RFC 3339 with a
// numeric zone. (rules is not imported here: watcher must not depend on it.)
func TestJournalLineTimeLayout(t *testing.T) {
	e := journalEntry{Cursor: "c", Realtime: 1795577679123456, HasTime: true, Identifier: []byte("x")}
	line := appendJournalLine(nil, &e, time.Time{})
	ts, _, _ := bytes.Cut(line, []byte(" "))
	got, err := time.Parse(time.RFC3339Nano, string(ts))
	if err != nil {
		t.Fatalf("%s: %v", ts, err)
	}
	if want := time.UnixMicro(e.Realtime); !got.Equal(want) {
		t.Errorf("time %v, want %v", got, want)
	}
}

func TestJournalMatchArgs(t *testing.T) {
	tests := []struct {
		units, idents []string
		want          []string
		err           bool
	}{
		{units: []string{"postfix@-.service"}, want: []string{"_SYSTEMD_UNIT=postfix@-.service"}},
		{idents: []string{"postfix/smtpd", "postfix/cleanup"}, want: []string{"SYSLOG_IDENTIFIER=postfix/smtpd", "SYSLOG_IDENTIFIER=postfix/cleanup"}},
		{units: []string{"postfix@-.service"}, idents: []string{"postfix/*"}, want: []string{"_SYSTEMD_UNIT=postfix@-.service"}},
		{idents: []string{"postfix/smtpd", "postfix*"}, want: nil},
		{idents: []string{""}, err: true},
		{idents: []string{"post*fix"}, err: true},
		{units: []string{"a\nb"}, err: true},
	}
	for i, tc := range tests {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			u, err1 := parsePatterns("unit", tc.units)
			id, err2 := parsePatterns("identifier", tc.idents)
			if tc.err {
				if err1 == nil && err2 == nil {
					t.Fatal("no error")
				}
				return
			}
			if err1 != nil || err2 != nil {
				t.Fatal(err1, err2)
			}
			got := append(serverMatches("_SYSTEMD_UNIT", u), serverMatches("SYSLOG_IDENTIFIER", id)...)
			if !slices.Equal(got, tc.want) {
				t.Errorf("matches %q, want %q", got, tc.want)
			}
		})
	}
	ps, _ := parsePatterns("identifier", []string{"postfix*", "smtpd"})
	for in, want := range map[string]bool{"postfix/smtpd": true, "postfix-out/qmgr": true, "smtpd": true, "smtpd2": false, "rspamd": false, "": false} {
		if got := anyMatch(ps, []byte(in)); got != want {
			t.Errorf("anyMatch(%q) = %v", in, got)
		}
	}
	if !anyMatch(nil, []byte("anything")) {
		t.Error("no patterns must match everything")
	}
}

func TestJournalMatchKey(t *testing.T) {
	if k := (JournalMatch{Name: "postfix", Identifiers: []string{"x"}}).Key(); k != "journal:postfix" {
		t.Errorf("key %q", k)
	}
	if k := (JournalMatch{Units: []string{"postfix@-.service"}, Identifiers: []string{"postfix/*"}}).Key(); k != "journal:postfix@-.service,postfix/*" {
		t.Errorf("key %q", k)
	}
}

// FuzzJournalEntry feeds the parser arbitrary bytes: it must never panic,
// and what it accepts must render to a line of the predicted length with
// no newline in it.
func FuzzJournalEntry(f *testing.F) {
	f.Add([]byte(`{"__CURSOR":"c","__REALTIME_TIMESTAMP":"1795577679123456","_HOSTNAME":"mx","SYSLOG_IDENTIFIER":"postfix/cleanup","_PID":"1","MESSAGE":"m"}`))
	f.Add([]byte(`{"__CURSOR":"c","MESSAGE":[97,1,98,255,99]}`))
	f.Add([]byte(`{"__CURSOR":"c","MESSAGE":[[97,10],"x",null]}`))
	f.Add([]byte(`{"__CURSOR":["c","d"],"MESSAGE":null,"SYSLOG_PID":[]}`))
	f.Add([]byte(`{"__CURSOR":"c","__REALTIME_TIMESTAMP":"99999999999999999999","MESSAGE":"a\nb"}`))
	f.Add([]byte(`{"__CURSOR":"c","MESSAGE":[256,-1,1.5]}`))
	f.Add([]byte(`nonsense`))
	read := time.Unix(0, 0)
	f.Fuzz(func(t *testing.T, in []byte) {
		e, err := parseJournalEntry(in)
		if err != nil {
			return
		}
		if e.Cursor == "" {
			t.Fatal("accepted an entry without cursor")
		}
		line := appendJournalLine(nil, &e, read)
		if n := journalLineLen(&e); n != len(line) {
			t.Fatalf("journalLineLen %d, line %d bytes: %q", n, len(line), line)
		}
		if bytes.IndexByte(line, '\n') >= 0 {
			t.Fatalf("newline in line %q", line)
		}
	})
}

// BenchmarkJournalEntry measures the per-entry cost of turning journalctl's
// JSON into a line (parse and render; journalctl itself not included).
func BenchmarkJournalEntry(b *testing.B) {
	in := []byte(`{"__CURSOR":"` + testCursor + `","__REALTIME_TIMESTAMP":"` + testRealtime + `","__MONOTONIC_TIMESTAMP":"1549373893","_BOOT_ID":"23e358f2ac22446187e9e972b8d4c14f","_HOSTNAME":"mx","SYSLOG_IDENTIFIER":"postfix/cleanup","SYSLOG_PID":"4696","_PID":"4696","_COMM":"cleanup","MESSAGE":"5346CBA274: milter-reject: END-OF-MESSAGE from unknown[198.18.5.6]: 4.7.1 Ratelimit \"ip\" exceeded; from=<carol@example.net> to=<bob@example.org> proto=ESMTP helo=<vm>"}`)
	buf := make([]byte, 0, 1024)
	read := time.Now()
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		e, err := parseJournalEntry(in)
		if err != nil {
			b.Fatal(err)
		}
		buf = appendJournalLine(buf[:0], &e, read)
	}
}
