package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// mailLogPath is where e2e/setup.sh has Postfix log (maillog_file).
const mailLogPath = "/var/log/mail.log"

// TestRateJailFromRealPostfixLog sends real mail through Postfix: one envelope sender goes
// over a rate jail's limit of messages per hour (each message from a different client, so
// rspamd's own per-address limit stays out of the way), and `mailjail show SENDER` reports
// the rate events; a sender that stays below the limit has none. The mail is authenticated
// (XCLIENT LOGIN: Postfix logs sasl_username=): a sender counts only then, so mail from
// strangers writing the same sender on port 25 adds nothing.
func TestRateJailFromRealPostfixLog(t *testing.T) {
	requireE2E(t)
	dir := daemonDir(t)
	run := time.Now().UnixNano() % 1e6
	over := fmt.Sprintf("rate-over-%d@example.org", run)
	under := fmt.Sprintf("rate-under-%d@example.org", run)
	cfgPath := filepath.Join(dir, "mailjail.toml")
	toml := fmt.Sprintf(`[global]
database = %q
map_file = %q
socket = %q

[jail.sender-rate]
rate_key = "sender"
logpath = [%q]
messages = { burst = 3, rate = "3 / 1h" }
`, filepath.Join(dir, "mailjail.db"), filepath.Join(dir, "rate.map"), filepath.Join(dir, "mailjail.sock"), mailLogPath)
	if err := os.WriteFile(cfgPath, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := mailjailBinary(t)
	flushRatelimit(t)
	d := startDaemon(t, dir, cfgPath, 1)
	defer d.stop()

	send := func(from, login string, n, first int) {
		for i := range n {
			args := []string{"--from", from}
			if login != "" {
				args = append(args, "--xclient-login", login)
			}
			if code, reply := swaksAs(t, fmt.Sprintf("198.51.100.%d", first+i), args...); code != 250 {
				t.Fatalf("%s, message %d: %q", from, i+1, reply)
			}
		}
	}
	send(under, "under", 3, 150)
	send(under, "", 3, 170) // unauthenticated: not counted
	send(over, "over", 5, 160)

	type show struct {
		Rate []struct {
			Jail, What string
			Level      float64
			Burst      float64
		} `json:"rate_events"`
	}
	showKey := func(key string) (show, int) {
		var s show
		out, err := mjCommand(bin, "--config", cfgPath, "show", key, "--json").Output()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(out, &s); err != nil {
			t.Fatalf("show %s: %v in %q", key, err, out)
		}
		return s, code
	}
	var got show
	if !waitFor(func() bool { got, _ = showKey(over); return len(got.Rate) >= 2 }, 15*time.Second) {
		t.Fatalf("sender %s: %d rate events after 5 messages with a burst of 3, want 2\n%s", over, len(got.Rate), d.output())
	}
	if e := got.Rate[0]; e.Jail != "sender-rate" || e.What != "messages" || e.Burst != 3 || e.Level <= 3 {
		t.Errorf("rate event = %+v", e)
	}
	// Below the limit: no rate event (show still knows it: mailjail saw it send).
	if s, code := showKey(under); len(s.Rate) != 0 || code != 0 {
		t.Errorf("sender %s below the limit: %d events, exit %d", under, len(s.Rate), code)
	}
	if len(got.Rate) != 2 {
		t.Errorf("sender %s: %d rate events, want exactly 2 (messages 4 and 5)", over, len(got.Rate))
	}
}

// TestProviderPolicyThroughPostfix is the provider's submission policy end to end: a rate
// jail on Postfix's log counts one login's messages in a sliding window (XCLIENT LOGIN, so
// Postfix logs sasl_username=); past twice the limit the account is suspended, written to
// the account map, and rspamd refuses its next message with 554 "account suspended", while
// another login from the same client passes.
func TestProviderPolicyThroughPostfix(t *testing.T) {
	requireE2E(t)
	dir := daemonDir(t)
	run := time.Now().UnixNano() % 1e6
	login := fmt.Sprintf("policy-%d@example.org", run)
	other := fmt.Sprintf("policy-other-%d@example.org", run)
	accounts := filepath.Join(filepath.Dir(mapFilePath()), "accounts.map")
	cfgPath := filepath.Join(dir, "mailjail.toml")
	toml := fmt.Sprintf(`[global]
database = %q
map_file = %q
account_map_file = %q
socket = %q

[jail.policy]
rate_key = "sasl_username"
logpath = [%q]
accounting = "window"
window = "60m"
max_messages = 2
suspend_factor = 2
mode = "suspend"
maxretry = 10
bantime = "1h"
`, filepath.Join(dir, "mailjail.db"), filepath.Join(dir, "rate.map"), accounts, filepath.Join(dir, "mailjail.sock"), mailLogPath)
	if err := os.WriteFile(cfgPath, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	flushRatelimit(t)
	d := startDaemon(t, dir, cfgPath, 1)
	defer d.stop()
	listed := func() bool {
		data, _ := os.ReadFile(accounts)
		return strings.Contains(string(data), "\n"+login+" # ")
	}
	// Messages 1 and 2 are within the limit, 3 is over (a rate event and a strike, not
	// yet a suspension: maxretry 10), 4 reaches twice the limit: suspended at once.
	for i := range 4 {
		if code, reply := swaksAs(t, fmt.Sprintf("198.51.100.%d", 180+i), "--from", login, "--xclient-login", login); code != 250 {
			t.Fatalf("message %d: %q", i+1, reply)
		}
		if i == 2 && holdsFor(func() bool { return !listed() }, time.Second) == false {
			t.Fatalf("suspended after 3 messages, before twice the limit\n%s", d.output())
		}
	}
	if !waitFor(listed, 10*time.Second) {
		data, _ := os.ReadFile(accounts)
		t.Fatalf("%s not in the account map after 4 messages with a limit of 2 (suspend_factor 2):\n%s\n%s", login, data, d.output())
	}
	// rspamd rereads the map by itself; its user bucket (burst 5) is not full yet.
	var code int
	var reply string
	if !waitFor(func() bool {
		flushRatelimit(t) // a retry must not meet the user bucket's 451 instead
		code, reply = swaksAs(t, "198.51.100.190", "--from", login, "--xclient-login", login)
		return code == 554
	}, 10*time.Second) || !strings.Contains(reply, "account suspended") {
		t.Fatalf("suspended login: %d %q, want 554 account suspended", code, reply)
	}
	if code, reply := swaksAs(t, "198.51.100.190", "--from", other, "--xclient-login", other); code != 250 {
		t.Fatalf("another login from the same client: %q", reply)
	}
}
