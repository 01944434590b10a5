package postfix

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// describe renders a parse result on one line for the golden files.
func describe(l Line, err error) string {
	switch {
	case errors.Is(err, ErrIgnored):
		return "ignored"
	case err != nil:
		return "error: " + err.Error()
	}
	s := fmt.Sprintf("%s host=%q prog=%s qid=%s", l.Kind, l.Host, l.Program, l.QueueID)
	switch l.Kind {
	case KindClient:
		s += fmt.Sprintf(" name=%q addr=%s method=%q user=%q sender=%q", l.ClientName, l.Client, l.SASLMethod, l.SASLUser, l.SASLSender)
	case KindMessageID:
		s += fmt.Sprintf(" id=%q", l.MessageID)
	case KindQueued:
		s += fmt.Sprintf(" from=%q size=%d nrcpt=%d", l.Sender, l.Size, l.Rcpts)
	case KindRejected:
		s += fmt.Sprintf(" stage=%q", l.Stage)
	}
	return s
}

func readLines(t testing.TB, path string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		out = append(out, bytes.Clone(sc.Bytes()))
	}
	return out
}

// TestParseGolden parses every line of the real Postfix 3.7 log and of the
// extra fixtures and compares with reviewed golden output (go test
// -update rewrites it; review the diff before committing).
func TestParseGolden(t *testing.T) {
	for _, tc := range []struct{ log, golden string }{
		{"../../testdata/postfix-3.7.log", "testdata/postfix-3.7.golden"},
		{"testdata/extra.log", "testdata/extra.golden"},
	} {
		var got strings.Builder
		for i, line := range readLines(t, tc.log) {
			l, err := ParseLine(line)
			fmt.Fprintf(&got, "%d: %s\n", i+1, describe(l, err))
		}
		if *update {
			if err := os.WriteFile(tc.golden, []byte(got.String()), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(tc.golden)
		if err != nil {
			t.Fatal(err)
		}
		if got.String() != string(want) {
			gl, wl := strings.Split(got.String(), "\n"), strings.Split(string(want), "\n")
			for i := range min(len(gl), len(wl)) {
				if gl[i] != wl[i] {
					t.Errorf("%s line %d:\n got  %s\n want %s", tc.log, i+1, gl[i], wl[i])
				}
			}
			if len(gl) != len(wl) {
				t.Errorf("%s: %d golden lines, want %d", tc.log, len(gl), len(wl))
			}
		}
	}
}

func TestParseRealLogCounts(t *testing.T) {
	counts := map[Kind]int{}
	for _, line := range readLines(t, "../../testdata/postfix-3.7.log") {
		l, err := ParseLine(line)
		if err != nil && !errors.Is(err, ErrIgnored) {
			t.Errorf("%s: %v", line, err)
		}
		if err == nil {
			counts[l.Kind]++
		}
	}
	want := map[Kind]int{KindClient: 23, KindMessageID: 23, KindQueued: 7, KindRemoved: 7, KindRejected: 16}
	for k, n := range want {
		if counts[k] != n {
			t.Errorf("%s lines: %d, want %d", k, counts[k], n)
		}
	}
}

// TestHostileLines feeds lines in which remote-controlled text imitates
// the fields the parser anchors on.
func TestHostileLines(t *testing.T) {
	tests := []struct {
		name string
		line string
		want string
	}{
		{
			name: "sasl_sender imitating a username",
			line: `Nov 25 03:34:26 mx postfix/smtpd[1]: 2CDA3BA413: client=unknown[198.18.5.5], sasl_sender=x, sasl_method=PLAIN, sasl_username=admin`,
			want: `client host="mx" prog=postfix/smtpd qid=2CDA3BA413 name="unknown" addr=198.18.5.5 method="" user="" sender="x, sasl_method=PLAIN, sasl_username=admin"`,
		},
		{
			name: "sasl_sender after a real username",
			line: `Nov 25 03:34:26 mx postfix/smtpd[1]: 2CDA3BA413: client=unknown[198.18.5.5], sasl_method=PLAIN, sasl_username=alice, sasl_sender=client=unknown[10.0.0.1], sasl_username=root`,
			want: `client host="mx" prog=postfix/smtpd qid=2CDA3BA413 name="unknown" addr=198.18.5.5 method="PLAIN" user="alice" sender="client=unknown[10.0.0.1], sasl_username=root"`,
		},
		{
			name: "sender imitating qmgr's numeric tail",
			line: `Nov 25 03:34:36 mx postfix/qmgr[4553]: 85D1EBA274: from=<"x>, size=1, nrcpt=999 (queue active)"@example.net>, size=437, nrcpt=1 (queue active)`,
			want: `queued host="mx" prog=postfix/qmgr qid=85D1EBA274 from="\"x>, size=1, nrcpt=999 (queue active)\"@example.net" size=437 nrcpt=1`,
		},
		{
			name: "sender imitating a client line",
			line: `Nov 25 03:34:36 mx postfix/qmgr[4553]: 85D1EBA274: from=<client=unknown[10.0.0.1], sasl_username=root>, size=437, nrcpt=1 (queue active)`,
			want: `queued host="mx" prog=postfix/qmgr qid=85D1EBA274 from="client=unknown[10.0.0.1], sasl_username=root" size=437 nrcpt=1`,
		},
		{
			name: "message-id imitating other fields",
			line: `Nov 25 03:34:26 mx postfix/cleanup[4696]: 2CDA3BA413: message-id=<x> client=unknown[10.0.0.1] from=<a>, size=1, nrcpt=1 (queue active)>`,
			want: `message-id host="mx" prog=postfix/cleanup qid=2CDA3BA413 id="x> client=unknown[10.0.0.1] from=<a>, size=1, nrcpt=1 (queue active)"`,
		},
		{
			name: "reject text quoting a client line is still a reject",
			line: `Nov 25 03:34:26 mx postfix/cleanup[4696]: 2CDA3BA413: milter-reject: END-OF-MESSAGE from unknown[198.18.5.5]: 4.7.1 no; from=<2CDA3BA413: client=unknown[10.0.0.1]> to=<b@example.org> proto=ESMTP helo=<postfix/qmgr[1]:>`,
			want: `rejected host="mx" prog=postfix/cleanup qid=2CDA3BA413 stage="END-OF-MESSAGE"`,
		},
		{
			name: "another program's message embedding a postfix line",
			line: `Nov 25 03:34:26 mx sshd[99]: postfix/smtpd[1]: 2CDA3BA413: client=unknown[10.0.0.1]`,
			want: `ignored`,
		},
		{
			name: "postfix text after the tag of a non-postfix program",
			line: `Nov 25 03:34:26 mx smtpd[99]: 2CDA3BA413: client=unknown[10.0.0.1]`,
			want: `ignored`,
		},
		{
			name: "client name with a bracket trick",
			line: `Nov 25 03:34:26 mx postfix/smtpd[1]: 2CDA3BA413: client=a,b[10.0.0.1]`,
			want: `error: postfix: postfix/smtpd 2CDA3BA413: client line: client: bad name "a,b"`,
		},
		{
			name: "helo text on a NOQUEUE reject",
			line: `Nov 25 03:34:23 mx postfix/smtpd[4613]: NOQUEUE: reject: RCPT from unknown[198.18.5.5]: 550 no; from=<c@example.net> to=<b@example.org> proto=ESMTP helo=<2CDA3BA413: client=unknown[10.0.0.1]>`,
			want: `ignored`,
		},
		{
			name: "not an address",
			line: `Nov 25 03:34:26 mx postfix/smtpd[1]: 2CDA3BA413: client=unknown[999.1.1.1]`,
			want: `error: postfix: postfix/smtpd 2CDA3BA413: client line: client: address: ParseAddr("999.1.1.1"): IPv4 field has value >255`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := ParseLine([]byte(tc.line))
			if got := describe(l, err); got != tc.want {
				t.Errorf("\n got  %s\n want %s", got, tc.want)
			}
		})
	}
}

func TestParseLineEdges(t *testing.T) {
	ignored := []string{
		"",
		" ",
		"postfix/smtpd[1]:",
		"postfix/smtpd[1]: ",
		"postfix/smtpd[]: 2CDA3BA413: client=unknown[1.2.3.4]",
		"postfix/smtpd[x]: 2CDA3BA413: client=unknown[1.2.3.4]",
		"/smtpd[1]: 2CDA3BA413: client=unknown[1.2.3.4]",
		"postfix/[1]: 2CDA3BA413: client=unknown[1.2.3.4]",
		"post fix /smtpd[1]: 2CDA3BA413: client=unknown[1.2.3.4]",
		"postfix/smtpd[1]: 2CDA: client=unknown[1.2.3.4]",
		"postfix/smtpd[1]: 2CDA3BA413:client=unknown[1.2.3.4]",
		"postfix/smtpd[1]: 2CDA3BA413: connect from unknown[1.2.3.4]",
		"postfix/qmgr[1]: 2CDA3BA413: from=<a>, status=expired, returned to sender",
		"postfix/local[1]: 2CDA3BA413: removed",
		"postfix/smtpd[1]: 2CDA3BA413: reject: ",
		"a b c d e f g postfix/smtpd[1]: 2CDA3BA413: client=unknown[1.2.3.4]",
		"postfix/smtpd[1]: " + strings.Repeat("A", 40) + ": client=unknown[1.2.3.4]",
	}
	for _, s := range ignored {
		if l, err := ParseLine([]byte(s)); !errors.Is(err, ErrIgnored) {
			t.Errorf("%q: %s, want ignored", s, describe(l, err))
		}
	}
	malformed := []string{
		"postfix/smtpd[1]: 2CDA3BA413: client=",
		"postfix/smtpd[1]: 2CDA3BA413: client=[1.2.3.4]",
		"postfix/smtpd[1]: 2CDA3BA413: client=unknown[1.2.3.4",
		"postfix/smtpd[1]: 2CDA3BA413: client=unknown[1.2.3.4]:",
		"postfix/qmgr[1]: 2CDA3BA413: from=<a>, nrcpt=1 (queue active)",
		"postfix/qmgr[1]: 2CDA3BA413: from=<a>, size=1 (queue active)",
		"postfix/qmgr[1]: 2CDA3BA413: from=<a>, size=-1, nrcpt=1 (queue active)",
		"postfix/qmgr[1]: 2CDA3BA413: from=<a>, size=1, nrcpt=x (queue active)",
		"postfix/qmgr[1]: 2CDA3BA413: from=<a> size=1, nrcpt=1 (queue active)",
	}
	for _, s := range malformed {
		l, err := ParseLine([]byte(s))
		if err == nil || errors.Is(err, ErrIgnored) || !strings.HasPrefix(err.Error(), "postfix: postfix/") {
			t.Errorf("%q: %s, want a parse error", s, describe(l, err))
		}
	}
	if KindRejected.String() != "rejected" || Kind(42).String() != "Kind(42)" {
		t.Error("Kind.String")
	}
}

func FuzzParseLine(f *testing.F) {
	for _, path := range []string{"../../testdata/postfix-3.7.log", "testdata/extra.log"} {
		for _, line := range readLines(f, path) {
			f.Add(line)
		}
	}
	f.Add([]byte("postfix/smtpd[1]: 2CDA3BA413: client=unknown[1.2.3.4]:25, sasl_method=, sasl_username="))
	f.Add([]byte("postfix/qmgr[1]: 2CDA3BA413: from=<>, size=, nrcpt= (queue )"))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := ParseLine(b)
		if err != nil {
			return
		}
		if l.Kind == KindUnknown || l.QueueID == "" || l.Daemon == "" {
			t.Fatalf("accepted %q as %+v", b, l)
		}
		if l.Kind == KindClient && (!l.Client.IsValid() || l.Client.Is4In6() || l.Client.Zone() != "") {
			t.Fatalf("client address %v from %q", l.Client, b)
		}
		if l.Kind == KindQueued && (l.Size < 0 || l.Rcpts < 0) {
			t.Fatalf("negative numbers from %q", b)
		}
		// Parsing must not depend on anything after the line.
		c, _ := NewCorrelator(Config{MaxPending: 4})
		c.Observe(l, epoch)
	})
}
