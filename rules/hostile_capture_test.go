package rules

import (
	"bufio"
	"os"
	"strings"
	"testing"
	"time"
)

// The real rspamd 3.4 lines of messages whose Message-ID, folded headers,
// recipients and envelope sender carry "ip: 192.0.2.9" (captured by the
// e2e suite into testdata): the built-in filter never reads the injected
// address, and it reads the real client from every other rate-limited
// summary line.
func TestRealHostileRspamdLinesStrikeOnlyTheRealClient(t *testing.T) {
	f, err := os.Open("../testdata/rspamd-hostile-3.4.log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	filter, err := BuiltinFilter("rspamd-ratelimit")
	if err != nil {
		t.Fatal(err)
	}
	ref := time.Date(2026, 12, 1, 20, 0, 0, 0, time.UTC)
	var events, evading int
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		_, n, _ := ParseTime(line, time.UTC, ref)
		m, ok := filter.Match(line[n:])
		limited := strings.Contains(string(line), "rspamd_task_write_log:") && strings.HasSuffix(string(line), "(set by ratelimit)")
		switch {
		case ok && m.Addr.String() != "198.51.100.41":
			t.Errorf("strike for %s from %q", m.Addr, line)
		case ok:
			events++
		case limited && strings.Count(string(line), ", ip: ") > 1:
			evading++ // a second ip field: no event, whichever it is
		case limited:
			t.Errorf("a rate-limited summary line of the real client was not an event: %q", line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if events == 0 || evading == 0 {
		t.Fatalf("%d events, %d lines with a second ip field: the capture is not what this test expects", events, evading)
	}
	t.Logf("%d events of the real client, %d lines with a second ip field", events, evading)
}

// No text a sender chooses (Message-ID, envelope from, recipients, symbol
// options) stands in for the login or the address: the login is read only
// from rspamd's "user: " field right after "ip: ADDR, ", and only when
// rspamd's next field follows it.
func TestRspamdLoginResistsInjection(t *testing.T) {
	const (
		head   = `#3861(rspamd_proxy) <4854e1>; proxy; rspamd_task_write_log: id: `
		action = `(default: F (soft reject): [0.00/15.00] [ASN_FAIL(0.00){x;}]), len: 143, `
		forced = `forced: soft reject "Ratelimit "user" exceeded"; score=nan (set by ratelimit)`
	)
	tests := []struct {
		name, line string
		addr, user string // addr "" means no event
	}{
		{"unauthenticated, envelope from holds a user field",
			head + `<m@x>, ip: 192.0.2.9, from: <x, user: victim@example.org>, ` + action + forced, "192.0.2.9", ""},
		{"unauthenticated, quoted envelope from holds a user field",
			head + `<m@x>, ip: 192.0.2.9, from: <"a, user: victim@example.org, "@e>, ` + action + forced, "192.0.2.9", ""},
		{"msgid with escaped spaces holds ip and user fields",
			head + `<x>,?ip:?192.0.2.200,?user:?victim@example.org>, ip: 198.18.0.66, from: <m@e>, ` + action + forced, "198.18.0.66", ""},
		{"msgid without spaces holds a user field",
			head + `<x,user:victim@example.org,>, ip: 198.18.0.66, from: <m@e>, ` + action + forced, "198.18.0.66", ""},
		{"msgid with raw spaces copies the head with a login",
			head + `<x>, ip: 192.0.2.200, user: victim@example.org, from: <y>, ` + action + `<z>, ip: 198.18.0.66, from: <m@e>, ` + action + forced, "", ""},
		{"authenticated, envelope from names another account",
			head + `<m@x>, ip: 198.18.0.66, user: mallory@example.org, from: <"x, user: victim@example.org"@e>, ` + action + forced, "198.18.0.66", "mallory@example.org"},
		{"authenticated, recipients name another account",
			head + `<m@x>, ip: 198.18.0.66, user: mallory@example.org, from: <m@e>, ` + action + `rcpts: <user: victim@example.org>, mime_rcpts: <, user: victim@example.org, >, ` + forced, "198.18.0.66", "mallory@example.org"},
		{"symbol options name an account and an address",
			head + `<m@x>, ip: 198.18.0.66, from: <m@e>, (default: F (soft reject): [0.00/15.00] [HFILTER_HELO_5(3.00){user:victim@example.org;ip:192.0.2.200;}]), len: 1, ` + forced, "198.18.0.66", ""},
		{"no from field: the login is followed by the action",
			head + `<m@x>, ip: 198.18.0.66, user: mallory@example.org, ` + action + forced, "198.18.0.66", "mallory@example.org"},
		{"login with a space",
			head + `<m@x>, ip: 198.18.0.66, user: mallory x, from: <m@e>, ` + action + forced, "198.18.0.66", ""},
		{"login with a comma and a second account",
			head + `<m@x>, ip: 198.18.0.66, user: victim@example.org, mallory, from: <m@e>, ` + action + forced, "198.18.0.66", ""},
		{"login with quotes",
			head + `<m@x>, ip: 198.18.0.66, user: "victim"@example.org, from: <m@e>, ` + action + forced, "198.18.0.66", ""},
		{"login with an ip field",
			head + `<m@x>, ip: 198.18.0.66, user: a, ip: 192.0.2.200, from: <m@e>, ` + action + forced, "", ""},
		{"login with ip: text is only a login",
			head + `<m@x>, ip: 198.18.0.66, user: ip:192.0.2.200, from: <m@e>, ` + action + forced, "198.18.0.66", "ip:192.0.2.200"},
		{"overlong login",
			head + `<m@x>, ip: 198.18.0.66, user: ` + strings.Repeat("a", MaxAccountLen+1) + `, from: <m@e>, ` + action + forced, "198.18.0.66", ""},
		{"user field after the envelope from is not rspamd's",
			head + `<m@x>, ip: 198.18.0.66, from: <m@e>, user: victim@example.org, ` + action + forced, "198.18.0.66", ""},
		// The known limit: a login that itself holds rspamd's next field
		// is cut there. Such a login must have authenticated (or come from
		// an XCLIENT-trusted host); no SASL server's default rules allow
		// spaces, commas or '<' in a user name.
		{"authenticated login that holds rspamd's next field",
			head + `<m@x>, ip: 198.18.0.66, user: victim@example.org, from: <x, from: <m@e>, ` + action + forced, "198.18.0.66", "victim@example.org"},
	}
	f, err := BuiltinFilter("rspamd-ratelimit")
	if err != nil {
		t.Fatal(err)
	}
	slow := slowRspamd(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			agree(t, f, slow, []byte(tt.line))
			m, ok := f.Match([]byte(tt.line))
			switch {
			case tt.addr == "" && ok:
				t.Errorf("an event %+v", m)
			case tt.addr != "" && (!ok || m.Addr.String() != tt.addr || m.User != tt.user || m.Bucket != "user"):
				t.Errorf("%v %+v, want %s %q", ok, m, tt.addr, tt.user)
			}
		})
	}
}
