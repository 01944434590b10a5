package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// mailLogPath is where e2e/setup.sh has Postfix log (maillog_file).
const mailLogPath = "/var/log/mail.log"

// TestRateJailFromRealPostfixLog sends real mail through Postfix: one envelope sender goes
// over a rate jail's limit of messages per hour (each message from a different client, so
// rspamd's own per-address limit stays out of the way), and `mailjail show SENDER` reports
// the rate events; a sender that stays below the limit has none.
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

	send := func(from string, n, first int) {
		for i := range n {
			if code, reply := sendMailFrom(t, fmt.Sprintf("198.51.100.%d", first+i), from); code != 250 {
				t.Fatalf("%s, message %d: %q", from, i+1, reply)
			}
		}
	}
	send(under, 3, 150)
	send(over, 5, 160)

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
	if s, code := showKey(under); len(s.Rate) != 0 || code != 1 {
		t.Errorf("sender %s below the limit: %d events, exit %d", under, len(s.Rate), code)
	}
	if len(got.Rate) != 2 {
		t.Errorf("sender %s: %d rate events, want exactly 2 (messages 4 and 5)", over, len(got.Rate))
	}
}
