package daemon

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/testutil"
)

var listenAddr = regexp.MustCompile(`msg="metrics listening" addr=(\S+)`)

// After 25 events and 2 bans, a scrape says 25 and 2; the output passes
// the client library's lint (and promtool's, where it is installed);
// /healthz says ok; at info level the daemon logs one line per ban and
// none per line read.
func TestMetricsScrapedOverHTTP(t *testing.T) {
	cfg := testConfig(t, shortDir(t), "maxretry = 10\n")
	logPath := cfg.Jails[0].LogPath[0]
	base, logs := runWithMetrics(t, cfg)

	var lines strings.Builder
	for i := range 25 {
		ip := []string{"198.51.100.1", "198.51.100.2", "198.51.100.3"}[min(i/10, 2)]
		lines.WriteString(eventLine(ip))
	}
	f, err := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(lines.String())
	f.Close()

	want := []string{
		`mailjail_lines_read_total{kind="file",source="` + logPath + `"} 25`,
		`mailjail_lines_matched_total{kind="file",source="` + logPath + `"} 25`,
		`mailjail_read_lag_bytes{source="` + logPath + `"} 0`,
		`mailjail_prefilter_hits_total{filter="rspamd-ratelimit",jail="rl"} 25`,
		`mailjail_filter_matches_total{jail="rl"} 25`,
		`mailjail_strikes_total{jail="rl"} 25`,
		`mailjail_bans_total{jail="rl"} 2`,
		`mailjail_active_bans{jail="rl"} 2`,
		`mailjail_unbans_total{jail="rl"} 0`,
		`mailjail_bans_total{jail="manual"} 0`,
		`mailjail_tracked_keys{jail="rl"} 1`, // the banned addresses' strikes are dropped,
		`mailjail_target_entries{target="rspamd-map:` + cfg.Global.MapFile + `"} 2`,
		`mailjail_outbox_pending 0`,
		`mailjail_snapshot_failures_total 0`,
	}
	var body string
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last scrape:\n%s", body)
		}
	})
	testutil.Eventually(t, 15*time.Second, "the scrape to show 25 events and 2 bans", func() bool {
		_, body = get(t, base+"/metrics")
		for _, w := range want {
			if !strings.Contains(body, w+"\n") {
				return false
			}
		}
		return true
	})
	for _, w := range []string{"mailjail_target_syncs_total{", "mailjail_target_sync_duration_seconds_count{", "go_goroutines ", "process_open_fds "} {
		if !strings.Contains(body, w) {
			t.Errorf("scrape lacks %s", w)
		}
	}
	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil || len(problems) > 0 {
		t.Errorf("promlint: %v %v", problems, err)
	}
	promtool(t, body)

	// One line per ban at info, none per line read or per strike.
	out := logs.String()
	if n := strings.Count(out, "msg=ban "); n != 2 {
		t.Errorf("%d ban lines, want 2:\n%s", n, out)
	}
	// .1 and .2 struck 10 times each and were banned, .3 struck 5 times.
	if strings.Count(out, "198.51.100.1") != 1 || strings.Count(out, "198.51.100.2") != 1 || strings.Contains(out, "198.51.100.3") {
		t.Errorf("lines logged per event:\n%s", out)
	}
	if s := status(t, cfg); len(s.Warnings) != 0 {
		t.Errorf("warnings on a healthy daemon: %q", s.Warnings)
	}
}

// runWithMetrics runs the daemon with a metrics listener on a free port
// until the test ends, and returns its URL, once /healthz says ok, and
// the daemon's log (info level).
func runWithMetrics(t *testing.T, cfg *config.Config) (string, *syncBuffer) {
	t.Helper()
	// Port 0 (a free one, which the log names) is refused by Validate,
	// which wants a port scrapers can be pointed at.
	cfg.Global.MetricsListen = "127.0.0.1:0"
	if err := os.WriteFile(cfg.Jails[0].LogPath[0], nil, 0o644); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})), Options{})
	}()
	t.Cleanup(func() {
		cancel()
		if err := testutil.Receive(t, done, 15*time.Second, "the daemon to stop"); err != nil {
			t.Errorf("daemon: %v", err)
		}
	})
	waitServing(t, cfg)
	m := listenAddr.FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("no metrics address logged:\n%s", logs.String())
	}
	base := "http://" + m[1]
	testutil.Eventually(t, 15*time.Second, "/healthz ok", func() bool {
		code, body := get(t, base+"/healthz")
		return code == 200 && body == "ok\n"
	})
	return base, logs
}

// /healthz says 503 and why while the database cannot be written, and ok
// again once it can.
func TestHealthzWhileDegraded(t *testing.T) {
	cfg := testConfig(t, shortDir(t), "maxretry = 100\n")
	base, _ := runWithMetrics(t, cfg)
	sqlOn(t, cfg.Global.Database, failWrites)
	f, _ := os.OpenFile(cfg.Jails[0].LogPath[0], os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(eventLine("198.51.100.90"))
	f.Close()
	testutil.Eventually(t, 15*time.Second, "/healthz 503 degraded", func() bool {
		code, body := get(t, base+"/healthz")
		return code == 503 && strings.HasPrefix(body, "degraded: save state: ") && strings.Contains(body, "disk is full")
	})
	sqlOn(t, cfg.Global.Database, healWrites)
	testutil.Eventually(t, 15*time.Second, "/healthz ok again", func() bool {
		code, body := get(t, base+"/healthz")
		return code == 200 && body == "ok\n"
	})
}

// promtool checks the exposition where Debian's prometheus package put
// it; it must be there under MAILJAIL_E2E=1 (e2e/setup.sh installs it).
func promtool(t *testing.T, body string) {
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("MAILJAIL_E2E") == "1" {
			t.Fatal("promtool not installed (e2e/setup.sh installs prometheus)")
		}
		t.Log("promtool not installed: check skipped")
		return
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testutil.Scale(5*time.Second))
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
