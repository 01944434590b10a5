package daemon

import (
	"slices"
	"testing"
)

func TestTargetsBuildTheNftablesTargetOfItsSection(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), `targets = ["rspamd-map", "nftables"]
[nftables]
table = "mj2"
ports = [2525]
priority = 0
`)
	ts, err := Targets(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tg := range ts {
		names = append(names, tg.Name())
	}
	if !slices.Contains(names, "nftables:inet mj2") {
		t.Errorf("targets %q, want one named \"nftables:inet mj2\"", names)
	}
}
