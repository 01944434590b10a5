package config

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestIgnoreEntriesBeyondAddresses(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "gateways")
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(good, []byte("# gateways\n192.0.2.1\nmx2.example.net\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("192.0.2.1\n192.0.2.300\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, got := validate(t, "[global]\nignoreip = [\"file:"+good+"\", \"mx1.example.net\", \"127.0.0.1\"]\n"+okJail+"ignoreip = [\"relay.example.net\"]\n")
	if got != "" {
		t.Fatalf("valid entries refused: %s", got)
	}
	if !c.Global.IgnoreSelf || c.Global.DNSRefresh != 5*time.Minute {
		t.Errorf("defaults: ignoreself %v dns_refresh %v", c.Global.IgnoreSelf, c.Global.DNSRefresh)
	}
	want := []string{"127.0.0.1", "file:" + good, "mx1.example.net", "relay.example.net"}
	if e := c.IgnoreEntries(); !slices.Equal(e, want) {
		t.Errorf("IgnoreEntries %q, want %q", e, want)
	}
	wantErrors(t, "[global]\nignoreip = [\"file:"+bad+"\"]\n"+okJail,
		"t.toml:2: global.ignoreip: file:"+bad+": "+bad+":2: invalid address \"192.0.2.300\"")
	wantErrors(t, "[global]\nignoreip = [\"file:"+filepath.Join(dir, "missing")+"\"]\n"+okJail, "no such file")
	wantErrors(t, "[global]\nignoreip = [\"file:relative\"]\n"+okJail, "the file must be an absolute path")
	wantErrors(t, okJail+"ignoreip = [\"192.0.2.1/24\"]\n", "t.toml:4: jail.ok.ignoreip: invalid CIDR \"192.0.2.1/24\"")
	wantErrors(t, "[global]\ndns_refresh = \"1s\"\n"+okJail, "t.toml:2: global.dns_refresh: must be at least 10s, got 1s")
	c, got = validate(t, "[global]\nignoreself = false\n"+okJail)
	if got != "" || c.Global.IgnoreSelf {
		t.Errorf("ignoreself = false: %v %s", c.Global.IgnoreSelf, got)
	}
}
