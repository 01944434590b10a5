package testutil_test

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/testutil"
	"github.com/mailjail/mailjail/rules"
	"github.com/mailjail/mailjail/rules/postfix"
)

// The builders are only worth having if mailjail reads what they write as
// the real thing: the built-in filter matches the rspamd line, the
// correlator joins the Postfix lines, the configuration validates.
func TestRspamdRatelimitLineMatchesBuiltinFilter(t *testing.T) {
	f, err := rules.BuiltinFilter("rspamd-ratelimit")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 25, 3, 33, 42, 0, time.UTC)
	for _, tt := range []struct {
		line         testutil.RspamdRatelimit
		addr, bucket string
	}{
		{testutil.RspamdRatelimit{At: at}, "198.51.100.1", "ip"},
		{testutil.RspamdRatelimit{At: at, IP: "2001:db8::42", Bucket: "user"}, "2001:db8::42", "user"},
		{testutil.RspamdRatelimit{At: at, IP: "198.18.0.66", From: "a\x1b]0;TITLE\x07\x1b[2J"}, "198.18.0.66", "ip"},
	} {
		line := tt.line.Line()
		if !strings.HasSuffix(line, "\n") || strings.Count(line, "\n") != 1 {
			t.Fatalf("%q is not one line", line)
		}
		text := []byte(strings.TrimSuffix(line, "\n"))
		ts, k, ok := rules.ParseTime(text, time.UTC, at)
		if !ok || !ts.Equal(at) {
			t.Fatalf("%q: time %v %v", line, ts, ok)
		}
		m, ok := f.Match(text[k:])
		if !ok || m.Addr.String() != tt.addr || m.Bucket != tt.bucket {
			t.Errorf("%q: match %+v %v, want %s bucket %s", line, m, ok, tt.addr, tt.bucket)
		}
	}
}

func TestPostfixMessageLinesCorrelate(t *testing.T) {
	c, err := postfix.NewCorrelator(postfix.Config{})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 25, 4, 0, 0, 0, time.UTC)
	lines := testutil.PostfixMessage{At: at, QID: "AB12CD34EF", Client: "198.18.5.5", Sender: "s@example.org", User: "alice", Rcpts: 3}.Lines()
	var got []postfix.Message
	for _, l := range bytes.SplitAfter([]byte(lines), []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		m, ok, err := c.Feed(bytes.TrimSuffix(l, []byte("\n")), at)
		if err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		if ok {
			got = append(got, m)
		}
	}
	if len(got) != 1 {
		t.Fatalf("%d messages from %q", len(got), lines)
	}
	if m := got[0]; m.QueueID != "AB12CD34EF" || m.Client.String() != "198.18.5.5" || m.Sender != "s@example.org" || m.SASLUser != "alice" || m.Rcpts != 3 {
		t.Errorf("message = %+v", m)
	}
}

func TestConfigTOMLValidates(t *testing.T) {
	dir := t.TempDir()
	c := testutil.Config{
		Database: filepath.Join(dir, "db"), MapFile: filepath.Join(dir, "ip.map"), Socket: filepath.Join(dir, "s.sock"),
		IgnoreIP: []string{"127.0.0.0/8"},
		Jails: []testutil.Jail{
			{Name: "r", Filter: "rspamd-ratelimit", LogPath: []string{filepath.Join(dir, "r.log")}, MaxRetry: 3, FindTime: "10m", BanTime: "1h"},
			{Name: "s", LogPath: []string{filepath.Join(dir, "m.log")}, Extra: "rate_key = \"sender\"\nmessages = { burst = 1, rate = \"1 / 1h\" }\n"},
		},
	}
	cfg, err := config.Parse(strings.NewReader(c.TOML()), "t.toml")
	if err != nil {
		t.Fatalf("%v in\n%s", err, c.TOML())
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("%v in\n%s", err, c.TOML())
	}
	if j := cfg.Jail("r"); j == nil || j.MaxRetry != 3 || j.FindTime != 10*time.Minute {
		t.Errorf("jail r = %+v", j)
	}
	if j := cfg.Jail("s"); j == nil || j.Rate == nil || j.Rate.Key != "sender" {
		t.Errorf("jail s = %+v", j)
	}
	if cfg.Global.Database != c.Database || cfg.Location().String() != "UTC" {
		t.Errorf("global = %+v", cfg.Global)
	}
}
