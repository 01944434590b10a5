package rules

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
)

// FilePrefix marks an ignoreip entry that names a file of entries.
const FilePrefix = "file:"

// SelfKey is the key of the host's own addresses in a Resolved map
// (ignoreself): they are ignored like any ignoreip entry.
const SelfKey = "self"

// IgnoreEntry is one ignoreip entry, as written: an address or CIDR, a
// file of entries ("file:/etc/mailjail/gateways"), or a host name
// ("mx2.example.net"). Files and names are read and resolved at the edge
// (internal/allowlist); their addresses come back in a Resolved map.
type IgnoreEntry struct {
	Prefix netip.Prefix // set for an address or CIDR
	File   string       // set for file:PATH
	Host   string       // set for a host name, lower case, no trailing dot
}

// Key is how the entry's addresses are found in a Resolved map: the file
// entry as written, or the host name. An address has none.
func (e IgnoreEntry) Key() string {
	if e.File != "" {
		return FilePrefix + e.File
	}
	return e.Host
}

// Resolved holds the addresses of the ignoreip entries that are not
// addresses, by IgnoreEntry.Key (and SelfKey): what a file holds, what a
// host name resolved to.
type Resolved map[string][]netip.Prefix

// ParseIgnoreEntry parses one ignoreip entry. A host name must be a valid
// DNS name with at least one letter, so that a mistyped address
// ("192.0.2.300") is reported as one instead of being looked up.
func ParseIgnoreEntry(s string) (IgnoreEntry, error) {
	s = strings.TrimSpace(s)
	if path, ok := strings.CutPrefix(s, FilePrefix); ok {
		if !strings.HasPrefix(path, "/") {
			return IgnoreEntry{}, fmt.Errorf("invalid entry %q: the file must be an absolute path", s)
		}
		return IgnoreEntry{File: path}, nil
	}
	if isHostName(s) {
		return IgnoreEntry{Host: strings.ToLower(strings.TrimSuffix(s, "."))}, nil
	}
	p, err := ParsePrefix(s)
	if err != nil {
		return IgnoreEntry{}, err
	}
	return IgnoreEntry{Prefix: p}, nil
}

// isHostName reports whether s is a DNS host name (RFC 1123 labels) that
// cannot be read as an address: it holds a letter, and no ':' (IPv6) or
// '/' (CIDR).
func isHostName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 || strings.ContainsAny(s, ":/") {
		return false
	}
	letter := false
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			switch c := label[i]; {
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
				letter = true
			case c >= '0' && c <= '9', c == '-':
			default:
				return false
			}
		}
	}
	return letter
}

// ParseIgnoreList reads a file of ignoreip entries: one address, CIDR or
// host name a line, blank lines and '#' comments (whole-line or after the
// entry) skipped. A file may not name another file. Every bad line is
// reported as "NAME:LINE: problem".
func ParseIgnoreList(r io.Reader, name string) ([]IgnoreEntry, error) {
	var out []IgnoreEntry
	var errs []error
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 64*1024)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		e, err := ParseIgnoreEntry(line)
		if err == nil && e.File != "" {
			err = fmt.Errorf("%q: a list file cannot name another file", line)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: %w", name, n, err))
			continue
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("read %s: %w", name, err))
	}
	return out, errors.Join(errs...)
}

// NewIgnoreSet builds the set of entries, taking the addresses of files,
// host names and (with self) the host's own from res. An entry missing
// from res adds nothing: a name never resolved ignores no address.
func NewIgnoreSet(entries []string, res Resolved, self bool) (*IPSet, error) {
	s := &IPSet{}
	for _, raw := range entries {
		e, err := ParseIgnoreEntry(raw)
		if err != nil {
			return nil, err
		}
		if e.Prefix.IsValid() {
			s.prefixes = append(s.prefixes, e.Prefix)
			continue
		}
		s.prefixes = append(s.prefixes, res[e.Key()]...)
	}
	if self {
		s.prefixes = append(s.prefixes, res[SelfKey]...)
	}
	s.index()
	return s, nil
}
