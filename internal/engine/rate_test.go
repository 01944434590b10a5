package engine

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/core"
)

const rateJail = `
[jail.sasl]
rate_key = "sasl_username"
logpath = ["/var/log/mail.log"]
messages = { burst = 10, rate = "10 / 1h" }
recipients = { burst = 100, rate = "100 / 1h" }
suspend_factor = 1.5
`

// postfixMessage is the smtpd, cleanup and qmgr lines of one accepted
// message, as Postfix 3.7 logs them.
func postfixMessage(at time.Time, qid, client, user, sender string, rcpts int) []core.Line {
	ts := at.Format("Jan _2 15:04:05")
	auth := ""
	if user != "" {
		auth = ", sasl_method=PLAIN, sasl_username=" + user
	}
	texts := []string{
		fmt.Sprintf("%s mx postfix/submission/smtpd[100]: %s: client=unknown[%s]%s", ts, qid, client, auth),
		fmt.Sprintf("%s mx postfix/cleanup[101]: %s: message-id=<%s@x>", ts, qid, qid),
		fmt.Sprintf("%s mx postfix/qmgr[102]: %s: from=<%s>, size=1234, nrcpt=%d (queue active)", ts, qid, sender, rcpts),
	}
	var out []core.Line
	for _, t := range texts {
		out = append(out, core.Line{Path: "/var/log/mail.log", Text: []byte(t), Read: at})
	}
	return out
}

func TestRateJailLogOnly(t *testing.T) {
	e, st := newEngine(t, rateJail)
	ctx := context.Background()
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	send := func(i int, user string, rcpts int) {
		at := t0.Add(time.Duration(i) * time.Minute)
		e.Stage(postfixMessage(at, fmt.Sprintf("A%04dB", i), "198.51.100.7", user, "x@example.com", rcpts), at)
		if _, err := e.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Below the limit: nothing is recorded.
	for i := range 9 {
		send(i, "bob@example.com", 1)
	}
	if evs, _ := st.RateEvents("bob@example.com", 10); len(evs) != 0 {
		t.Fatalf("below the limit: %v", evs)
	}
	// alice: 13 messages in 13 minutes; 10/h with burst 10 leaks ~2 in
	// that time, so the last ones are over. Unauthenticated mail has no key.
	for i := range 13 {
		send(100+i, "alice@example.com", 1)
		send(200+i, "", 50)
	}
	evs, err := st.RateEvents("alice@example.com", 50)
	if err != nil || len(evs) == 0 || evs[0].What != "messages" || evs[0].Burst != 10 {
		t.Fatalf("alice's events = %+v, %v", evs, err)
	}
	if len(e.ActiveBans()) != 0 {
		t.Fatal("a log-only rate jail touched the map")
	}
	alice := evs
	// One message to 160 recipients after 100 in the hour: over, and
	// urgent at 1.5 × burst.
	send(300, "carol@example.com", 100)
	send(301, "carol@example.com", 160)
	evs, _ = st.RateEvents("carol@example.com", 5)
	if len(evs) != 1 || evs[0].What != "recipients" || !evs[0].Urgent {
		t.Fatalf("carol's events = %+v", evs)
	}
	// A restart keeps the rates: alice is still over the limit.
	if err := e.SaveBuckets(ctx); err != nil {
		t.Fatal(err)
	}
	e2, err := New(e.cfg, st, e.log)
	if err != nil {
		t.Fatal(err)
	}
	if err := restore(e2, t0.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	// Two more messages a minute later: the first fits (9 leaked to 8.8,
	// +1), the second goes over. A reset bucket would take both.
	at := t0.Add(113 * time.Minute)
	e2.Stage(postfixMessage(at, "ABCDEF0001", "198.51.100.7", "alice@example.com", "x@example.com", 1), at)
	e2.Stage(postfixMessage(at, "ABCDEF0002", "198.51.100.7", "alice@example.com", "x@example.com", 1), at)
	if _, err := e2.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	after, _ := st.RateEvents("alice@example.com", 50)
	if len(after) != len(alice)+1 {
		t.Fatalf("bucket state lost at restart: %d events before, %d after", len(alice), len(after))
	}
	if s := e2.Jails()[0].RateStats(); s == nil || s.Keys["messages"] < 2 {
		t.Fatalf("rate stats = %+v", s)
	}
}

func TestRateJailBansClient(t *testing.T) {
	e, _ := newEngine(t, `
[jail.client-rate]
rate_key = "client"
logpath = ["/var/log/mail.log"]
messages = { burst = 3, rate = "3 / 1h" }
maxretry = 2
`)
	ctx := context.Background()
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	var bans int
	for i := range 6 {
		at := t0.Add(time.Duration(i) * time.Second)
		e.Stage(postfixMessage(at, fmt.Sprintf("C0FFEE%04X", i), "2001:db8::7", "", "spam@example.net", 1), at)
		ch, err := e.Commit(ctx)
		if err != nil {
			t.Fatal(err)
		}
		bans += len(ch.Bans)
	}
	if bans != 1 || len(e.ActiveBans()) != 1 || e.ActiveBans()[0].Prefix.Addr().String() != "2001:db8::7" {
		t.Fatalf("bans = %d, entries %v", bans, e.ActiveBans())
	}
	// A client in ignoreip (a webmail host sending for many users) is
	// never banned by a rate jail either.
	for i := range 6 {
		at := t0.Add(time.Duration(i) * time.Second)
		e.Stage(postfixMessage(at, fmt.Sprintf("BEEF00%04X", i), "127.0.0.1", "", "webmail@example.net", 1), at)
		if ch, err := e.Commit(ctx); err != nil || len(ch.Bans) != 0 {
			t.Fatalf("ignored client banned: %v %v", ch.Bans, err)
		}
	}
}
