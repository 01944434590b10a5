package e2e

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

var captureHostile = flag.String("capture-hostile", "",
	"write the real rspamd log lines of TestHostileHeadersNeverStrikeTheInjectedAddress to this file")

// injectedAddr is the address the hostile messages try to get banned.
const injectedAddr = "192.0.2.9"

// forgedTail is what rspamd writes at the end of the summary line of a rate-limited message.
const forgedTail = `forced: soft reject "Ratelimit "ip" exceeded"; score=nan (set by ratelimit)`

// hostileMessage is a message whose sender-controlled fields try to make a log line say
// "ip: 192.0.2.9" where a filter would read the client address.
type hostileMessage struct {
	name  string
	from  string // envelope sender
	data  string // headers and body, lines ending in LF (swaks sends CRLF)
	inLog bool   // rspamd's summary line holds the injected address (seen with rspamd 3.4)
	// evades: the summary line holds a second ", ip: " field (in from: or
	// mime_rcpts:, which rspamd does not escape), so it is no event at
	// all: the filter cannot tell which field rspamd wrote, and a line
	// that might ban another address must not count. The client escapes
	// a mailjail strike for it; rspamd still refuses the message.
	evades bool
}

func hostileMessages(run string) []hostileMessage {
	plain := "attacker@example.org"
	msg := func(headers ...string) string {
		return "From: <attacker@example.org>\nTo: <e2e@localhost>\n" + strings.Join(headers, "\n") + "\n\nbody\n"
	}
	return []hostileMessage{
		{"message-id with spaces", plain, msg("Subject: message-id with spaces",
			"Message-ID: <x>, ip: "+injectedAddr+", <y-"+run+"-1@example.org>"), true, false},
		{"message-id with tabs and quotes", plain, msg("Subject: tabs",
			"Message-ID: <a\tip: "+injectedAddr+",\t\"q\"-"+run+"-2@example.org>"), true, false},
		{"folded message-id, forged fields after the fold", plain, msg("Subject: folded message-id",
			"Message-ID: <f-"+run+"-3@example.org>",
			" , ip: "+injectedAddr+", (default: F (soft reject): [0.00/1000.00] []), "+forgedTail), true, false},
		{"message-id folded inside the brackets", plain, msg("Subject: folded inside",
			"Message-ID: <x-"+run+"-4",
			" ip: "+injectedAddr+", "+forgedTail,
			" y@example.org>"), true, false},
		{"folded subject", plain, msg("Message-ID: <s-"+run+"-5@example.org>",
			"Subject: folded",
			" ip: "+injectedAddr+", "+forgedTail), false, false},
		{"folded quoted recipient header", plain, "From: <attacker@example.org>\n" +
			"To: <\"t\n u, ip: " + injectedAddr + ", " + strings.ReplaceAll(forgedTail, `"`, `\"`) + "\"@example.org>\n" +
			"Subject: folded to\nMessage-ID: <t-" + run + "-6@example.org>\n\nbody\n", true, true},
		{"envelope sender with spaces", `"a b, ip: ` + injectedAddr + `, (default: F (soft reject): c"@example.org`,
			msg("Subject: envelope sender", "Message-ID: <e-"+run+"-7@example.org>"), true, true},
		{"control bytes in the message-id", plain, msg("Subject: control bytes",
			"Message-ID: <c\x01\x1b[2J\x7f\u00e9-"+run+"-8@example.org>"), false, false},
	}
}

// TestHostileHeadersNeverStrikeTheInjectedAddress sends, through the real Postfix and rspamd
// 3.4, messages whose Message-ID, folded headers and envelope sender carry
// "ip: 192.0.2.9, ... forced: soft reject ..." (with spaces, tabs and line feeds). Each goes
// once while the client is under its rate (accepted: no strike for anyone) and once over it
// (451: exactly one strike, of the real client, unless the line carries a second ip field:
// then none, see evades). 192.0.2.9 never has a strike and never appears in the map,
// although rspamd's log lines hold it.
func TestHostileHeadersNeverStrikeTheInjectedAddress(t *testing.T) {
	requireE2E(t)
	const client = "198.51.100.41"
	mapPath := mapFilePath()
	dir := daemonDir(t)
	cfg := newDaemonConfig(dir)
	cfg.MaxRetry = 100 // count strikes; a ban would stop them
	cfgPath := writeConfig(t, dir, cfg)
	bin := mailjailBinary(t)
	flushRatelimit(t)
	resetMap(t, mapPath)
	mw := watchMap(t, mapPath, rspamdLogPath)
	lt := tailLog(t, rspamdLogPath)
	d := startDaemon(t, dir, cfgPath, 1)
	defer resetMap(t, mapPath)
	defer d.stop()

	msgs := hostileMessages(fmt.Sprint(time.Now().UnixNano() % 1e9))
	for _, m := range msgs {
		flushRatelimit(t)
		if code, reply := sendMessage(t, client, m.from, []byte(m.data)); code != 250 {
			t.Fatalf("%s, under the rate: %q, want 250", m.name, reply)
		}
	}
	r := rateLimit(t, client, 1) // plain messages until the first 451: one strike
	for _, m := range msgs {
		if code, reply := sendMessage(t, client, m.from, []byte(m.data)); code != 451 || !strings.Contains(reply, `Ratelimit "ip" exceeded`) {
			t.Fatalf("%s, over the rate: %q, want 451 Ratelimit", m.name, reply)
		}
	}
	want := 1 + len(msgs)
	for _, m := range msgs {
		if m.evades {
			want--
		}
	}
	show := func(addr string) showJSON { return showAddr(t, bin, cfgPath, addr) }
	var got showJSON
	if !waitFor(func() bool { got = show(client); return len(got.Strikes) >= want }, 15*time.Second) {
		t.Fatalf("client %s: %d strikes after %d rate-limited messages, want %d\n%s", client, len(got.Strikes), want, want, d.output())
	}
	if len(got.Strikes) != want {
		t.Errorf("client %s: %d strikes, want exactly %d (one per rate-limited message, none for the %d accepted ones)",
			client, len(got.Strikes), want, r.Passed+len(msgs))
	}
	if s := show(injectedAddr); len(s.Strikes) != 0 || s.Banned {
		t.Errorf("%s: %d strikes, banned %v; the hostile headers made it a client:\n%+v", injectedAddr, len(s.Strikes), s.Banned, s.Strikes)
	}
	for _, s := range mw.history() {
		if s.has(injectedAddr) {
			t.Errorf("%s in the map at %v: %v", injectedAddr, s.At, s)
		}
	}
	// The attack reached the log: rspamd's lines hold the injected text.
	injected := lt.matching(func(s string) bool {
		return strings.Contains(s, "rspamd_task_write_log:") && strings.Contains(s, injectedAddr)
	}, d.readyAt)
	inLog := 0
	for _, m := range msgs {
		if m.inLog {
			inLog += 2 // sent twice
		}
	}
	if len(injected) != inLog {
		t.Errorf("%d rspamd summary lines hold %s, want %d: rspamd logs the hostile fields differently now", len(injected), injectedAddr, inLog)
	}
	if *captureHostile != "" {
		writeCapture(t, *captureHostile, lt, d.readyAt, client)
	}
}

var taskTag = regexp.MustCompile(`^\S+ \S+ #[0-9]+\([a-z_]+\) (<[0-9a-f]+>); `)

// writeCapture writes every rspamd log line (seen since from) of the tasks that scanned
// mail from client, under a header saying where they come from.
func writeCapture(t *testing.T, path string, lt *logTailer, from time.Time, client string) {
	t.Helper()
	tags := map[string]bool{}
	for _, l := range lt.matching(func(s string) bool {
		return strings.Contains(s, "rspamd_task_write_log:") && strings.Contains(s, ", ip: "+client+",")
	}, from) {
		if m := taskTag.FindStringSubmatch(l.Text); m != nil {
			tags[m[1]] = true
		}
	}
	version, _ := exec.Command("rspamd", "--version").Output()
	var b strings.Builder
	fmt.Fprintf(&b, "# Real rspamd log lines: %s", strings.SplitN(string(version), "\n", 2)[0])
	b.WriteString("\n# (Debian 12 package), configured by e2e/setup.sh, Postfix milter, proxy self_scan.\n" +
		"# Written by: MAILJAIL_E2E=1 go test ./e2e -run TestHostileHeadersNeverStrikeTheInjectedAddress \\\n" +
		"#   -capture-hostile ../testdata/rspamd-hostile-3.4.log\n" +
		"# Every task of client " + client + ": the hostile messages of e2e/hostile_headers_test.go,\n" +
		"# first under the rate (accepted), then over it (soft reject), with plain messages between.\n" +
		"# rspamd replaced each space, tab, control byte and non-ASCII byte of the Message-ID with '?'\n" +
		"# and unfolded folded headers (no LF reaches the log); from:, rcpts: and mime_rcpts: keep\n" +
		"# spaces. These comment lines are not rspamd's.\n")
	for _, l := range lt.matching(func(s string) bool {
		m := taskTag.FindStringSubmatch(s)
		return m != nil && tags[m[1]]
	}, from) {
		b.WriteString(l.Text + "\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatalf("writing the capture: %v", err)
	}
	t.Logf("wrote %d tasks' lines to %s", len(tags), path)
}
