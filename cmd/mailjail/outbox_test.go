package main

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/testutil"
)

// outboxJSON is `outbox --json`.
type outboxJSON struct {
	Outbox []struct {
		ID          int64
		Kind        string
		State       string
		Event       string
		Jail        string
		Addr        string
		Attempts    int
		Created     time.Time
		NextAttempt *time.Time `json:"next_attempt"`
		LastError   string     `json:"last_error"`
	}
}

// withFailingOutbox gives the jail a ban action that fails and alerts a
// relay that refuses connections: what a ban queues stays in the outbox.
func withFailingOutbox(e *env, c *testutil.Config) {
	c.Jails[0].Extra = `ban_action = ["/bin/false", "<ip>"]

[alert]
smtp = "127.0.0.1:1"
to = ["postmaster@example.org"]`
}

// `mailjail outbox` lists what a ban queued and could not deliver, with
// and without a daemon; retry makes an item due, drop deletes it; an
// unknown id is not found (exit 1), a word is no id (exit 2); status
// counts them.
func TestOutboxListRetryDrop(t *testing.T) {
	t.Parallel()
	for _, withDaemon := range []bool{false, true} {
		t.Run(fmt.Sprintf("daemon=%v", withDaemon), func(t *testing.T) {
			e := newEnv(t, withFailingOutbox)
			if withDaemon {
				e.startDaemon()
			}
			if _, errs, code := e.mj("ban", "198.51.100.7", "--jail", "rspamd-ratelimit"); code != 0 {
				t.Fatalf("ban: exit %d %s", code, errs)
			}
			var list outboxJSON
			e.waitFor("both items attempted", func() bool {
				list = outboxJSON{}
				e.mustJSON(&list, "outbox")
				return len(list.Outbox) == 2 && list.Outbox[0].Attempts > 0 && list.Outbox[1].Attempts > 0
			})
			kinds := map[string]int64{}
			for _, it := range list.Outbox {
				kinds[it.Kind] = it.ID
				if it.State != "failed-retrying" || it.Event != "ban" || it.Addr != "198.51.100.7" || it.Jail != "rspamd-ratelimit" ||
					it.LastError == "" || it.NextAttempt == nil || it.Created.IsZero() {
					t.Errorf("item %+v", it)
				}
			}
			if kinds["action"] == 0 || kinds["alert"] == 0 {
				t.Fatalf("items %+v", list.Outbox)
			}
			out, _, code := e.mj("outbox")
			if code != 0 || !strings.Contains(out, "STATE") || !strings.Contains(out, "action: ban 198.51.100.7 in jail rspamd-ratelimit") ||
				!strings.Contains(out, "alert: ban 198.51.100.7 in jail rspamd-ratelimit") {
				t.Errorf("outbox: exit %d\n%s", code, out)
			}
			var st struct {
				Outbox struct {
					Pending, Failed, GaveUp int64
					OldestPending           *time.Time `json:"oldest_pending"`
				}
			}
			e.mustJSON(&st, "status")
			if st.Outbox.Pending != 2 || st.Outbox.Failed != 2 || st.Outbox.OldestPending == nil {
				t.Errorf("status outbox %+v", st.Outbox)
			}
			if out, _, _ := e.mj("status"); !strings.Contains(out, "outbox: 2 pending (2 after a failure), 0 given up, oldest pending queued ") {
				t.Errorf("status text:\n%s", out)
			}
			action, alert := strconv.FormatInt(kinds["action"], 10), strconv.FormatInt(kinds["alert"], 10)
			for _, tt := range []struct {
				args     []string
				code     int
				contains string
			}{
				{[]string{"outbox", "retry", action}, 0, "item " + action + " (action: ban 198.51.100.7 in jail rspamd-ratelimit) is due now"},
				{[]string{"outbox", "retry", "999"}, 1, "no outbox item 999"},
				{[]string{"outbox", "retry", "abc"}, 2, `"abc" is not an item id`},
				{[]string{"outbox", "retry"}, 2, "needs one item id"},
				{[]string{"outbox", "drop", "1", "2"}, 2, "needs one item id"},
				{[]string{"outbox", "frob"}, 2, `outbox takes retry ID or drop ID, not "frob"`},
				{[]string{"outbox", "drop", action}, 0, "dropped item " + action + " (action: ban"},
				{[]string{"outbox", "drop", action}, 1, "no outbox item " + action},
				{[]string{"outbox", "drop", action, "--json"}, 1, `"outbox": []`},
				{[]string{"outbox", "drop", alert, "--json"}, 0, `"state": "failed-retrying"`},
			} {
				out, errs, code := e.mj(tt.args...)
				if code != tt.code || !strings.Contains(out+errs, tt.contains) {
					t.Errorf("%v: exit %d, want %d; output %q %q, want %q", tt.args, code, tt.code, out, errs, tt.contains)
				}
			}
			list = outboxJSON{}
			e.mustJSON(&list, "outbox", "--all")
			if len(list.Outbox) != 0 {
				t.Errorf("after the drops: %+v", list.Outbox)
			}
			if out, _, code := e.mj("outbox"); code != 0 || !strings.Contains(out, "nothing pending or given up") {
				t.Errorf("empty outbox: exit %d %q", code, out)
			}
		})
	}
}
