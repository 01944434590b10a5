package e2e

import (
	"os"
	"os/user"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestBanKeepsMapReadableByRspamd: an administrator makes the map readable to rspamd only
// (`chgrp _rspamd MAP; chmod 0640 MAP`). A ban rewrites it; it must stay root:_rspamd 0640, or
// rspamd's workers (user _rspamd) cannot open it ("Permission denied") and the banned client
// gets 250.
func TestBanKeepsMapReadableByRspamd(t *testing.T) {
	requireE2E(t)
	const client = "198.18.91.1"
	g, err := user.LookupGroup("_rspamd")
	if err != nil {
		t.Fatalf("rspamd's group: %v", err)
	}
	gid, _ := strconv.Atoi(g.Gid)
	mapPath := mapFilePath()
	dir := daemonDir(t)
	cfg := newDaemonConfig(dir)
	cfgPath := writeConfig(t, dir, cfg)
	bin := mailjailBinary(t)
	flushRatelimit(t)
	resetMap(t, mapPath)
	defer resetMap(t, mapPath)
	if err := os.Chown(mapPath, 0, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(mapPath, 0o640); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, dir, cfgPath, 1)
	defer d.stop()

	if out, err := mjCommand(bin, "--config", cfgPath, "ban", client, "--for", "10m").CombinedOutput(); err != nil {
		t.Fatalf("mailjail ban: %v\n%s", err, out)
	}
	fi, err := os.Stat(mapPath)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); int(st.Gid) != gid || fi.Mode().Perm() != 0o640 {
		t.Errorf("map after ban: group %d mode %04o, want _rspamd (%d) 0640", st.Gid, fi.Mode().Perm(), gid)
	}
	if s := readMap(t, mapPath); !s.has(client) {
		t.Fatalf("client %s not in the map when ban returned: %v", client, s)
	}
	expectReply(t, client, 554, "Matched map: "+mapRuleName, 10*time.Second)
}
