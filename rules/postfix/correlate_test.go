package postfix

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

var epoch = time.Date(2026, 11, 25, 4, 0, 0, 0, time.UTC)

// stamp parses the timestamp the way the caller would; tests only need the
// two header forms used in the fixtures.
func stamp(t testing.TB, line []byte) time.Time {
	t.Helper()
	if len(line) > 0 && line[0] >= '0' && line[0] <= '9' {
		ts, err := time.Parse(time.RFC3339Nano, string(line[:bytes.IndexByte(line, ' ')]))
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	if len(line) < 15 || line[0] < 'A' || line[0] > 'Z' {
		return epoch // header-less journal style: use "read time"
	}
	ts, err := time.Parse(time.Stamp, string(line[:15]))
	if err != nil {
		t.Fatal(err)
	}
	return ts.AddDate(2026, 0, 0)
}

func mustCorrelator(t testing.TB, cfg Config) *Correlator {
	t.Helper()
	c, err := NewCorrelator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func feedFile(t *testing.T, c *Correlator, path string) []Message {
	t.Helper()
	var out []Message
	for _, line := range readLines(t, path) {
		m, ok, err := c.Feed(line, stamp(t, line))
		if err != nil {
			t.Errorf("%s: %v", line, err)
		}
		if ok {
			out = append(out, m)
		}
	}
	return out
}

func TestCorrelateRealLog(t *testing.T) {
	c := mustCorrelator(t, Config{})
	msgs := feedFile(t, c, "../../testdata/postfix-3.7.log")
	var ids []string
	for _, m := range msgs {
		ids = append(ids, m.QueueID)
		if m.Client != netip.MustParseAddr("198.18.5.6") || m.ClientName != "unknown" || m.Sender != "carol@example.net" ||
			m.Size != 437 || m.Rcpts != 1 || m.SASLUser != "" || m.Host != "mx" || !strings.HasPrefix(m.MessageID, "2026112503343") {
			t.Errorf("unexpected message %+v", m)
		}
	}
	want := []string{"85D1EBA274", "F196ABA274", "5D752BA274", "BDB51BA274", "28A64BA274", "88BD3BA274", "E865ABA274"}
	if !slices.Equal(ids, want) {
		t.Errorf("queued %v, want %v", ids, want)
	}
	if m := msgs[0]; !m.Time.Equal(time.Date(2026, 11, 25, 3, 34, 36, 0, time.UTC)) || m.MessageID != "20261125033436.004777@vm" {
		t.Errorf("first message %+v", m)
	}
	// 11 transactions from .5 rejected by the milter, 5 from .6 by the
	// rate limit; nothing left pending.
	if s := c.Stats(); s != (Stats{Emitted: 7, Rejected: 16}) {
		t.Errorf("stats %+v", s)
	}
}

func TestCorrelateExtraFixtures(t *testing.T) {
	c := mustCorrelator(t, Config{})
	msgs := feedFile(t, c, "testdata/extra.log")
	want := []Message{
		{QueueID: "4Ht1gY3xzcz9sWl", Host: "mx", Client: netip.MustParseAddr("2001:db8::25"), ClientName: "mail.example.com",
			SASLUser: "alice@example.com", Sender: "alice@example.com", Size: 1234, Rcpts: 3, MessageID: "abc@example.com",
			Time: time.Date(2026, 11, 25, 4, 0, 0, 200000000, time.UTC)},
		{QueueID: "1A2B3C4D5E", Host: "mx", Client: netip.MustParseAddr("203.0.113.7"), ClientName: "unknown",
			SASLUser: "bob", Sender: "", Size: 99, Rcpts: 1, MessageID: "", Time: time.Date(2026, 11, 25, 4, 0, 3, 0, time.UTC)},
		{QueueID: "7B8C9D0E1F", Client: netip.MustParseAddr("fe80::1"), ClientName: "unknown", Sender: "a@b", Size: 1, Rcpts: 2, Time: epoch},
	}
	if len(msgs) != len(want) {
		t.Fatalf("got %d messages: %+v", len(msgs), msgs)
	}
	for i := range want {
		got := msgs[i]
		if !got.Time.Equal(want[i].Time) {
			t.Errorf("message %d time %v, want %v", i, got.Time, want[i].Time)
		}
		got.Time = want[i].Time
		if got != want[i] {
			t.Errorf("message %d:\n got  %+v\n want %+v", i, msgs[i], want[i])
		}
	}
	if s := c.Stats(); s != (Stats{Emitted: 3, Rejected: 2, Unmatched: 1}) {
		t.Errorf("stats %+v", s)
	}
}

func clientLine(host, qid, addr string) []byte {
	return fmt.Appendf(nil, "Nov 25 04:00:00 %s postfix/smtpd[1]: %s: client=unknown[%s]", host, qid, addr)
}

func queuedLine(host, qid, sender string) []byte {
	return fmt.Appendf(nil, "Nov 25 04:00:00 %s postfix/qmgr[2]: %s: from=<%s>, size=10, nrcpt=1 (queue active)", host, qid, sender)
}

func TestCorrelateHostileSender(t *testing.T) {
	c := mustCorrelator(t, Config{})
	c.Feed(clientLine("mx", "AAAAA1", "198.51.100.1"), epoch)
	// The sender pretends to be a client= line and a sasl user.
	m, ok, err := c.Feed(queuedLine("mx", "AAAAA1", "x@y>, size=1, nrcpt=1 (queue active) postfix/smtpd[1]: AAAAA1: client=unknown[10.0.0.1], sasl_method=PLAIN, sasl_username=root"), epoch)
	if err != nil || !ok {
		t.Fatalf("%v %v", ok, err)
	}
	if m.Client != netip.MustParseAddr("198.51.100.1") || m.SASLUser != "" || m.Size != 10 {
		t.Fatalf("hostile sender changed the message: %+v", m)
	}
}

func TestCorrelateExpiry(t *testing.T) {
	c := mustCorrelator(t, Config{Timeout: 10 * time.Minute})
	c.Feed(clientLine("mx", "AAAAA1", "198.51.100.1"), epoch)
	c.Feed(clientLine("mx", "AAAAA2", "198.51.100.2"), epoch.Add(5*time.Minute))
	if n := c.Expire(epoch.Add(10 * time.Minute)); n != 0 {
		t.Fatalf("expired %d at exactly the timeout", n)
	}
	if n := c.Expire(epoch.Add(11 * time.Minute)); n != 1 {
		t.Fatalf("expired %d, want 1", n)
	}
	// Lazy expiry: feeding a late line drops AAAAA2 before looking it up.
	if _, ok, _ := c.Feed(queuedLine("mx", "AAAAA2", "a@b"), epoch.Add(16*time.Minute)); ok {
		t.Fatal("an expired transaction produced a message")
	}
	if s := c.Stats(); s != (Stats{Expired: 2, Unmatched: 1}) {
		t.Fatalf("stats %+v", s)
	}
}

func TestCorrelateBounded(t *testing.T) {
	c := mustCorrelator(t, Config{MaxPending: 3})
	for i := 1; i <= 5; i++ {
		c.Feed(clientLine("mx", fmt.Sprintf("AAAAA%d", i), "198.51.100.1"), epoch)
	}
	if s := c.Stats(); s.Pending != 3 || s.Dropped != 2 {
		t.Fatalf("stats %+v", s)
	}
	if _, ok, _ := c.Feed(queuedLine("mx", "AAAAA1", "a@b"), epoch); ok {
		t.Fatal("the oldest transaction should have been dropped")
	}
	if _, ok, _ := c.Feed(queuedLine("mx", "AAAAA5", "a@b"), epoch); !ok {
		t.Fatal("the newest transaction was lost")
	}
}

func TestCorrelateKeyAndReplace(t *testing.T) {
	c := mustCorrelator(t, Config{})
	c.Feed(clientLine("mx1", "AAAAA1", "198.51.100.1"), epoch)
	c.Feed(clientLine("mx2", "AAAAA1", "198.51.100.2"), epoch)
	c.Feed(clientLine("mx2", "AAAAA1", "198.51.100.3"), epoch) // queue id reused on mx2
	m1, ok1, _ := c.Feed(queuedLine("mx1", "AAAAA1", "a@b"), epoch)
	m2, ok2, _ := c.Feed(queuedLine("mx2", "AAAAA1", "a@b"), epoch)
	if !ok1 || !ok2 || m1.Client != netip.MustParseAddr("198.51.100.1") || m2.Client != netip.MustParseAddr("198.51.100.3") {
		t.Fatalf("%+v %+v", m1, m2)
	}
	// A deferred message is re-activated later: qmgr logs from= again.
	if _, ok, _ := c.Feed(queuedLine("mx1", "AAAAA1", "a@b"), epoch); ok {
		t.Fatal("a second qmgr line emitted the message twice")
	}
	// "removed" forgets a transaction that never reached qmgr.
	c.Feed(clientLine("mx", "BBBBB1", "198.51.100.4"), epoch)
	c.Feed([]byte("Nov 25 04:00:00 mx postfix/qmgr[2]: BBBBB1: removed"), epoch)
	if s := c.Stats(); s != (Stats{Emitted: 2, Replaced: 1, Unmatched: 1}) {
		t.Fatalf("stats %+v", s)
	}
	// A malformed line is reported and counted.
	if _, _, err := c.Feed([]byte("Nov 25 04:00:00 mx postfix/smtpd[1]: CCCCC1: client=unknown[nope]"), epoch); err == nil || c.Stats().Malformed != 1 {
		t.Fatalf("malformed: %v %+v", err, c.Stats())
	}
}

func TestNewCorrelatorErrors(t *testing.T) {
	if _, err := NewCorrelator(Config{Timeout: -1}); err == nil {
		t.Error("negative timeout accepted")
	}
	if _, err := NewCorrelator(Config{MaxPending: -1}); err == nil {
		t.Error("negative max pending accepted")
	}
}

func BenchmarkFeed(b *testing.B) {
	lines := readLines(b, "../../testdata/postfix-3.7.log")
	c := mustCorrelator(b, Config{})
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		c.Feed(lines[i%len(lines)], epoch)
	}
}
