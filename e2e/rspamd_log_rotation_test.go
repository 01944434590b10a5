package e2e

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// rspamdPidFile is where rspamd (started by setup.sh) writes its main process id.
const rspamdPidFile = "/run/rspamd/rspamd.pid"

// TestRspamdLogRotationWhileMailFlowsCountsEachEventOnce rotates rspamd's own log the way
// logrotate does (rename rspamd.log to rspamd.log.1, then SIGUSR1 to rspamd's main process,
// which reopens its log) while a client is being rate limited:
//
//   - 2 ratelimit events before the rename (read from the file as it was),
//   - 2 events between the rename and SIGUSR1 (rspamd still writes them to the renamed file),
//   - the rest after rspamd reopened its log (in the new rspamd.log).
//
// With maxretry-1 events logged the client has exactly maxretry-1 strikes and is not banned
// (nothing counted twice, nothing lost across the rotation); its maxretry-th event bans it with
// exactly maxretry strikes. rspamd keeps writing the new file afterwards, which is the state a
// real rotation leaves.
func TestRspamdLogRotationWhileMailFlowsCountsEachEventOnce(t *testing.T) {
	requireE2E(t)
	const (
		client   = "198.51.100.71"
		maxretry = 6
		before   = 2 // events before the rename
		onOld    = 2 // events after the rename, before SIGUSR1
	)
	mapPath := mapFilePath()
	dir := daemonDir(t)
	cfg := newDaemonConfig(dir)
	cfg.MaxRetry = maxretry
	cfg.BanTime = "1m"
	cfgPath := writeConfig(t, dir, cfg)
	bin := mailjailBinary(t)
	rspamdPid := rspamdMainPid(t)

	flushRatelimit(t)
	resetMap(t, mapPath)
	mw := watchMap(t, mapPath, rspamdLogPath)
	d := startDaemon(t, dir, cfgPath, 1)
	defer flushRatelimit(t)
	defer resetMap(t, mapPath)
	defer d.stop()

	show := func() showJSON {
		t.Helper()
		return showAddr(t, bin, cfgPath, client)
	}
	strikes := func() int { return len(show().Strikes) }

	old, err := os.Stat(rspamdLogPath)
	if err != nil {
		t.Fatal(err)
	}
	startSize := old.Size()

	rateLimit(t, client, before)
	if !waitFor(func() bool { return strikes() == before }, 10*time.Second) {
		t.Fatalf("client %s: %d strikes after %d events, want %d", client, strikes(), before, before)
	}

	// logrotate: rename; rspamd keeps its descriptor and goes on writing to rspamd.log.1.
	rotated := rspamdLogPath + ".1"
	if err := os.Rename(rspamdLogPath, rotated); err != nil {
		t.Fatalf("rotating the rspamd log: %v", err)
	}
	t.Cleanup(func() {
		// Whatever failed, rspamd must not be left writing to rspamd.log.1 with no rspamd.log:
		// the other tests follow rspamd.log.
		if _, err := os.Stat(rspamdLogPath); err == nil {
			return
		}
		_ = syscall.Kill(rspamdPid, syscall.SIGUSR1)
		if !waitFor(func() bool { _, err := os.Stat(rspamdLogPath); return err == nil }, 10*time.Second) {
			t.Errorf("rspamd did not reopen %s after SIGUSR1", rspamdLogPath)
		}
	})
	renamedAt := fileSize(t, rotated)
	rateLimit(t, client, onOld)

	// postrotate: SIGUSR1 makes rspamd reopen rspamd.log (a new file).
	if err := syscall.Kill(rspamdPid, syscall.SIGUSR1); err != nil {
		t.Fatalf("SIGUSR1 to rspamd (pid %d): %v", rspamdPid, err)
	}
	if !waitFor(func() bool {
		fi, err := os.Stat(rspamdLogPath)
		return err == nil && !os.SameFile(fi, old)
	}, 10*time.Second) {
		t.Fatalf("rspamd did not reopen %s within 10s of SIGUSR1", rspamdLogPath)
	}

	rest := maxretry - 1 - before - onOld
	rateLimit(t, client, rest)

	// rspamd wrote what the test expects where the test expects it.
	if n := countEvents(t, rotated, startSize, renamedAt, client); n != before {
		t.Fatalf("%s holds %d ratelimit events of %s before the rename, want %d", rotated, n, client, before)
	}
	if n := countEvents(t, rotated, renamedAt, -1, client); n != onOld {
		t.Fatalf("%s holds %d ratelimit events of %s written after the rename, want %d (did rspamd reopen its log without SIGUSR1?)", rotated, n, client, onOld)
	}
	if n := countEvents(t, rspamdLogPath, 0, -1, client); n != rest {
		t.Fatalf("the new %s holds %d ratelimit events of %s, want %d", rspamdLogPath, n, client, rest)
	}

	// maxretry-1 events: counted once each (the daemon finishes rspamd.log.1 within its 5 s
	// rotate wait, then reads the new file from its start), and no ban.
	if !waitFor(func() bool { return strikes() >= maxretry-1 }, 20*time.Second) {
		t.Fatalf("client %s: %d strikes after %d events across the rotation, want %d", client, strikes(), maxretry-1, maxretry-1)
	}
	if !holdsFor(func() bool { return strikes() == maxretry-1 && !mw.current().has(client) }, time.Second) {
		s := show()
		t.Fatalf("client %s after %d events across the rotation: %d strikes, banned %v, map %v; want %d strikes, no ban",
			client, maxretry-1, len(s.Strikes), s.Banned, mw.current(), maxretry-1)
	}

	// The maxretry-th event bans.
	from := time.Now()
	rateLimit(t, client, 1)
	if _, ok := mw.waitUntil(from, 15*time.Second, func(s mapSnapshot) bool { return s.has(client) }); !ok {
		t.Fatalf("client %s not banned after %d events; map %v", client, maxretry, mw.current())
	}
	for _, s := range mw.since(d.readyAt) {
		if s.has(client) && s.At.Before(from) {
			t.Fatalf("client %s in the map before its %d. event: %v", client, maxretry, s)
		}
	}
	s := show()
	if !s.Banned || len(s.Active) != 1 || s.Active[0].Strikes != maxretry || len(s.Strikes) != maxretry {
		t.Fatalf("client %s: banned %v, active %+v, %d strikes; want one ban with %d strikes", client, s.Banned, s.Active, len(s.Strikes), maxretry)
	}
	t.Logf("client %s: %d events (%d before the rename, %d to the renamed file before SIGUSR1, %d to the new file), %d strikes, banned with %d",
		client, maxretry, before, onOld, maxretry-before-onOld, len(s.Strikes), s.Active[0].Strikes)
}

// rspamdMainPid reads the pid of rspamd's main process from the pid file setup.sh has rspamd write.
func rspamdMainPid(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile(rspamdPidFile)
	if err != nil {
		t.Fatalf("rspamd's pid file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("rspamd's pid file %s: %q", rspamdPidFile, b)
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil || !strings.HasPrefix(string(comm), "rspamd") {
		t.Fatalf("%s names pid %d (%q), not rspamd", rspamdPidFile, pid, comm)
	}
	return pid
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// countEvents counts rspamd's ratelimit summary lines of addr in path between the offsets
// from and to (-1: the end).
func countEvents(t *testing.T, path string, from, to int64, addr string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if to < 0 || to > int64(len(data)) {
		to = int64(len(data))
	}
	data = data[min(from, to):to]
	n := 0
	for _, l := range bytes.Split(data, []byte("\n")) {
		s := string(l)
		if strings.Contains(s, "rspamd_task_write_log:") && strings.Contains(s, ", ip: "+addr+",") &&
			strings.Contains(s, `forced: soft reject "Ratelimit "ip" exceeded"`) {
			n++
		}
	}
	return n
}
