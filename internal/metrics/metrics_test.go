package metrics

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

var sample = Snapshot{
	Sources: []Source{{Name: "/var/log/rspamd/rspamd.log", Kind: "file", Lines: 25, Matches: 20, Lag: 10, HasLag: true},
		{Name: "_SYSTEMD_UNIT=postfix.service", Kind: "journal", Lines: 7}},
	Jails: []Jail{{Name: "rspamd", FromLogs: true, Filter: "rspamd-ratelimit", Prefiltered: 21, Matches: 20, Strikes: 20, Bans: 2, Unbans: 1, ActiveBans: 1, Tracked: 3},
		{Name: "rate", FromLogs: true, RateEvents: 4, BucketKeys: 9}},
	Targets: []Target{{Name: "rspamd-map", Syncs: 3, Errors: 1, Entries: 1}},
	Outbox:  &Outbox{Pending: 2, Failed: 1},
}

func snapOf(s Snapshot, err error) SnapshotFunc {
	return func(context.Context) (Snapshot, error) { return s, err }
}

// The golden text is what a scrape shows of the sample; the metrics pass
// the client library's lint (promlint: names, units, help).
func TestCollector(t *testing.T) {
	c := NewCollector(snapOf(sample, nil), time.Second)
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}
	const want = `
# HELP mailjail_bans_total Bans made (committed); jail "manual" for the CLI's.
# TYPE mailjail_bans_total counter
mailjail_bans_total{jail="rate"} 0
mailjail_bans_total{jail="rspamd"} 2
# HELP mailjail_lines_read_total Log lines read from a source since the daemon started.
# TYPE mailjail_lines_read_total counter
mailjail_lines_read_total{kind="file",source="/var/log/rspamd/rspamd.log"} 25
mailjail_lines_read_total{kind="journal",source="_SYSTEMD_UNIT=postfix.service"} 7
# HELP mailjail_read_lag_bytes Bytes of a followed log file not read yet (size minus read offset).
# TYPE mailjail_read_lag_bytes gauge
mailjail_read_lag_bytes{source="/var/log/rspamd/rspamd.log"} 10
# HELP mailjail_prefilter_hits_total Lines that passed a jail filter's literal prefilter (matched or not).
# TYPE mailjail_prefilter_hits_total counter
mailjail_prefilter_hits_total{filter="rspamd-ratelimit",jail="rspamd"} 21
# HELP mailjail_outbox_pending Actions, webhooks and alerts waiting in the outbox.
# TYPE mailjail_outbox_pending gauge
mailjail_outbox_pending 2
# HELP mailjail_target_sync_errors_total Failed writes of an enforcement target (retried).
# TYPE mailjail_target_sync_errors_total counter
mailjail_target_sync_errors_total{target="rspamd-map"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "mailjail_bans_total", "mailjail_lines_read_total",
		"mailjail_read_lag_bytes", "mailjail_prefilter_hits_total", "mailjail_outbox_pending", "mailjail_target_sync_errors_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(c); n < 30 {
		t.Errorf("%d metrics collected", n)
	}
}

// A snapshot that fails leaves the daemon's metrics out and counts it.
func TestCollectorSnapshotFails(t *testing.T) {
	c := NewCollector(snapOf(Snapshot{}, errors.New("busy")), time.Second)
	if n := testutil.CollectAndCount(c); n != 1 {
		t.Errorf("%d metrics, want the failure counter alone", n)
	}
	if got := testutil.ToFloat64(c.failed); got != 1 {
		t.Errorf("failures = %v, want 1", got)
	}
}

// The whole registry (Go, process, histogram) lints clean over HTTP, and
// /healthz says ok or why not.
func TestHandler(t *testing.T) {
	timer := NewSyncTimer()
	timer.Observe("rspamd-map", 3*time.Millisecond, nil)
	reg := NewRegistry(NewCollector(snapOf(sample, nil), time.Second), timer)
	health := "degraded: save state: disk full"
	h := Handler(reg, func(context.Context) string { return health }, time.Second, slog.New(slog.NewTextHandler(io.Discard, nil)))
	srv := httptest.NewServer(h)
	defer srv.Close()

	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{`mailjail_target_sync_duration_seconds_bucket{target="rspamd-map",le="0.005"} 1`, "go_goroutines ", "process_resident_memory_bytes ", "mailjail_snapshot_failures_total 0"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
	if code, body := get("/healthz"); code != 503 || body != health+"\n" {
		t.Errorf("/healthz = %d %q", code, body)
	}
	health = ""
	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q", code, body)
	}
	if code, _ := get("/"); code != 404 {
		t.Errorf("/ = %d", code)
	}
}

func TestWarnings(t *testing.T) {
	started := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		s    Snapshot
		now  time.Duration // after started
		want []string
	}{
		{"quiet since start", Snapshot{Sources: []Source{{Name: "/l", Kind: "file"}}}, 2 * time.Hour,
			[]string{"file /l: no line for 2h0m0s (since the daemon started); is it still written there?"}},
		{"young daemon", Snapshot{Sources: []Source{{Name: "/l", Kind: "file"}}}, 59 * time.Minute, nil},
		{"quiet since a line", Snapshot{Sources: []Source{{Name: "u", Kind: "journal", Last: started.Add(time.Hour)}}}, 3*time.Hour + 30*time.Second,
			[]string{"journal u: no line for 2h0m0s (since 2026-01-01T01:00:00Z); is it still written there?"}},
		{"recent line", Snapshot{Sources: []Source{{Name: "/l", Kind: "file", Last: started.Add(2 * time.Hour)}}}, 2*time.Hour + time.Minute, nil},
		{"format changed", Snapshot{Jails: []Jail{{Name: "j", Filter: "f", Prefiltered: PrefilterNoHit}}}, 0,
			[]string{"jail j: 1000 lines passed filter f's prefilter and none matched; has the log format changed (mailjail test-filter)?"}},
		{"few hits", Snapshot{Jails: []Jail{{Name: "j", Filter: "f", Prefiltered: PrefilterNoHit - 1}}}, 0, nil},
		{"matching", Snapshot{Jails: []Jail{{Name: "j", Filter: "f", Prefiltered: 5000, Matches: 1}}}, 0, nil},
		{"rate jail", Snapshot{Jails: []Jail{{Name: "r", Prefiltered: 5000}}}, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Warnings(tc.s, started, started.Add(tc.now))
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// Every metric is documented in the README's Metrics table.
func TestMetricsDocumented(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"mailjail_snapshot_failures_total", "mailjail_target_sync_duration_seconds"}
	for _, d := range all {
		names = append(names, d.name)
	}
	for _, n := range names {
		if !strings.Contains(string(readme), "`"+n+"`") {
			t.Errorf("README does not document %s", n)
		}
	}
}
