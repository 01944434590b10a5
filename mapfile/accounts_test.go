package mapfile

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRenderAccountsGolden(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	entries := []AccountEntry{
		{Account: "mallory@example.org", Until: now.Add(time.Hour), Jail: "rspamd-user"},
		{Account: "alice@example.org", Jail: "manual"},
		{Account: "mallory@example.org", Until: now.Add(2 * time.Hour), Jail: "submission-rate"},
		{Account: "bob", Until: now.Add(time.Minute), Jail: "odd jail"},
	}
	var b bytes.Buffer
	if err := RenderAccounts(&b, entries, now); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "accounts.golden")
	if os.Getenv("UPDATE_GOLDEN") != "" {
		os.WriteFile(golden, b.Bytes(), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != string(want) {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestRenderAccountsRefusesWhatBreaksALine(t *testing.T) {
	for _, acct := range []string{"", "a b@example.org", "a#b@example.org", "a\nb@example.org", "a\x7f@example.org"} {
		if err := RenderAccounts(&bytes.Buffer{}, []AccountEntry{{Account: acct}}, time.Now()); err == nil {
			t.Errorf("%q rendered", acct)
		}
	}
}

func TestWriteAccountsKeepsOldMapOnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "accounts.map")
	now := time.Now()
	if err := WriteAccounts(path, []AccountEntry{{Account: "a@example.org"}}, now); err != nil {
		t.Fatal(err)
	}
	if err := WriteAccounts(path, []AccountEntry{{Account: "bad account"}}, now); err == nil {
		t.Fatal("bad account written")
	}
	got, _ := os.ReadFile(path)
	if !strings.Contains(string(got), "\na@example.org # until released") {
		t.Errorf("old map lost:\n%s", got)
	}
}
