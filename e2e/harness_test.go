package e2e

import (
	"os"
	"testing"
	"time"
)

// Fixed facts of the environment that e2e/setup.sh builds.
const (
	envEnable      = "MAILJAIL_E2E"     // set to run the suite
	envMapFile     = "MAILJAIL_E2E_MAP" // same variable as setup.sh
	envBinary      = "MAILJAIL_E2E_BIN" // test this mailjail binary instead of building ./cmd/mailjail
	defaultMapFile = "/var/lib/mailjail-e2e/ip_blacklist_ratelimit.map"
	rspamdLogPath  = "/var/log/rspamd/rspamd.log"
	mapRuleName    = "IP_BLACKLIST_RATELIMIT"
	smtpHost       = "127.0.0.1"
	smtpPort       = "25"
	redisHost      = "127.0.0.1"
	redisPort      = "6379"

	// pollEvery is how often waitFor and holdsFor test their conditions.
	pollEvery = 2 * time.Millisecond
)

func TestMain(m *testing.M) {
	code := m.Run()
	if bin.cleanup != nil {
		bin.cleanup()
	}
	os.Exit(code)
}

// requireE2E skips the test unless the suite is enabled.
func requireE2E(t *testing.T) {
	t.Helper()
	if os.Getenv(envEnable) == "" {
		t.Skipf("end-to-end test needs real Postfix, rspamd and redis: run e2e/setup.sh as root, then set %s=1", envEnable)
	}
}

// mapFilePath is the map file that rspamd's IP_BLACKLIST_RATELIMIT rule reads.
func mapFilePath() string {
	if p := os.Getenv(envMapFile); p != "" {
		return p
	}
	return defaultMapFile
}

// waitFor polls cond until it holds or timeout passes; it reports whether it held.
func waitFor(cond func() bool, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pollEvery)
	}
}

// holdsFor polls cond for the whole duration d and reports whether it held every time.
func holdsFor(cond func() bool, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if !cond() {
			return false
		}
		time.Sleep(pollEvery)
	}
	return cond()
}
