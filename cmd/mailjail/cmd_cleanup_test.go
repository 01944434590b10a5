package main

import (
	"os"
	"strings"
	"testing"
)

// cleanup empties the map of the bans it holds and leaves the database's
// record alone.
func TestCleanupEmptiesTheMap(t *testing.T) {
	e := newEnv(t)
	if _, errs, code := e.mj("ban", "198.51.100.70"); code != 0 {
		t.Fatalf("ban: exit %d, %s", code, errs)
	}
	if b, _ := os.ReadFile(e.mapf); !strings.Contains(string(b), "198.51.100.70") {
		t.Fatalf("map before cleanup: %q", b)
	}
	out, errs, code := e.mj("cleanup")
	if code != 0 || !strings.Contains(out, "emptied rspamd-map:"+e.mapf) {
		t.Fatalf("cleanup: exit %d, %q %s", code, out, errs)
	}
	b, err := os.ReadFile(e.mapf)
	if err != nil || strings.Contains(string(b), "198.51.100.70") {
		t.Fatalf("map after cleanup: %q, %v", b, err)
	}
	if out, _, _ := e.mj("list"); !strings.Contains(out, "198.51.100.70") {
		t.Errorf("the database lost the ban: %q", out)
	}
}
