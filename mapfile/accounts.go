package mapfile

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// AccountEntry is one suspended account (a SASL login) in the account
// map, which an rspamd multimap rule of type "user" reads.
type AccountEntry struct {
	Account string
	Until   time.Time // zero: until released
	Jail    string
}

// AccountHeader opens every account map mailjail writes.
const AccountHeader = "# Managed by mailjail: suspended accounts, rewritten on every change, edits here are lost.\n" +
	"# Use `mailjail suspend` / `mailjail release`; `mailjail list --accounts` shows why each entry is here.\n"

// RenderAccounts writes the account map: one login per line, sorted, an
// account suspended by several jails once (for the longest), each with a
// trailing comment rspamd ignores, like Render's. An account that could
// break the map's line format (whitespace, '#', control characters) is
// an error: accounts reach here normalised, so it would be a bug, and
// the old map stays.
func RenderAccounts(w io.Writer, entries []AccountEntry, now time.Time) error {
	entries = normalizeAccounts(entries)
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.WriteString(AccountHeader)
	fmt.Fprintf(bw, "# %d entries, written %s\n", len(entries), now.UTC().Format(time.RFC3339))
	for _, e := range entries {
		if e.Account == "" || strings.ContainsFunc(e.Account, func(r rune) bool { return r <= ' ' || r == '#' || r == 0x7f }) {
			return fmt.Errorf("account %q cannot be written into a map", e.Account)
		}
		bw.WriteString(e.Account)
		if e.Until.IsZero() {
			bw.WriteString(" # until released")
		} else {
			bw.WriteString(" # until " + e.Until.UTC().Format(time.RFC3339))
		}
		bw.WriteString(" jail=" + escapeField(e.Jail) + "\n")
	}
	return bw.Flush()
}

// WriteAccounts atomically replaces the account map at path, as Write
// does the address map.
func WriteAccounts(path string, entries []AccountEntry, now time.Time) error {
	return writeAtomic(path, func(w io.Writer) error { return RenderAccounts(w, entries, now) })
}

// normalizeAccounts sorts entries and keeps one per account, the
// longest.
func normalizeAccounts(entries []AccountEntry) []AccountEntry {
	sorted := slices.Clone(entries)
	slices.SortFunc(sorted, func(a, b AccountEntry) int {
		return cmp.Or(strings.Compare(a.Account, b.Account), strings.Compare(a.Jail, b.Jail))
	})
	var out []AccountEntry
	for _, e := range sorted {
		switch n := len(out); {
		case n == 0 || out[n-1].Account != e.Account:
			out = append(out, e)
		case longer(Entry{Until: e.Until}, Entry{Until: out[n-1].Until}):
			out[n-1] = e
		}
	}
	return out
}
