package main

import (
	"testing"

	"github.com/mailjail/mailjail/internal/testutil"
)

// A replay runs the recidive and network jails on the bans the log jails
// make from the files, and gives them no file to read.
func TestReplayWithRecidiveAndNetworkJails(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(_ *env, c *testutil.Config) {
		c.Jails[0].MaxRetry = 2
		c.Jails = append(c.Jails, testutil.Jail{Name: "recidive", MaxRetry: 2, FindTime: "1d"},
			testutil.Jail{Name: "nets", Filter: "network", MaxRetry: 2, FindTime: "1d", Extra: "ipv4_prefix = 16"})
	})
	var rp struct {
		Jails []string
		Bans  []banJSON
	}
	e.mustJSON(&rp, "replay", "../../testdata/rspamd-3.4-proxy.log")
	byJail := map[string][]string{}
	for _, b := range rp.Bans {
		byJail[b.Jail] = append(byJail[b.Jail], b.Addr)
	}
	if len(rp.Jails) != 3 || len(byJail["rspamd-ratelimit"]) == 0 {
		t.Fatalf("replay jails %v, bans %v", rp.Jails, byJail)
	}
	// 198.18.0.66 and 198.18.5.6 are banned by the log jail: two addresses
	// of 198.18.0.0/16.
	if got := byJail["nets"]; len(got) != 1 || got[0] != "198.18.0.0/16" {
		t.Errorf("network bans %v, want 198.18.0.0/16 (log jail's bans: %v)", got, byJail["rspamd-ratelimit"])
	}
}
