package mapfile

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"
)

// ParsedEntry is one address or range read from a map, with what its line
// said about it.
type ParsedEntry struct {
	Prefix netip.Prefix
	Line   int // 1-based line of the file (lines end in LF)

	// Own: the line is in the format Render writes ("ADDR # until T
	// jail=NAME" or "ADDR # permanent jail=NAME"), so Until and Jail hold
	// what mailjail wrote (Until zero: permanent). Otherwise both are zero.
	Own   bool
	Until time.Time
	Jail  string

	// Value is rspamd's value for the key: text after the address and
	// before any '#' ("spam-source" in "203.0.113.5 spam-source").
	Value string
	// Comment is the text after '#' on the entry's line, trimmed.
	Comment string
}

// Comment is a line that holds only a comment ("# old fail2ban list").
type Comment struct {
	Line int
	Text string // after the '#', trimmed
}

// Parsed is what a map file holds.
type Parsed struct {
	Entries []ParsedEntry
	// Comments are the whole-line comments, except the header lines that
	// Render writes itself.
	Comments []Comment
	// Managed: the file starts with Header, so mailjail wrote it.
	Managed bool
}

// maxLine bounds the memory one line may take; rspamd has no limit, but a
// map line of a megabyte is not a list of addresses.
const maxLine = 1 << 20

// ParseEntries reads a map as rspamd 3.4 reads a multimap "ip" map
// (rspamd_parse_kv_list and rspamd_radix_add_iplist in
// src/libserver/maps/map_helpers.c and src/libutil/radix.c): a key, then
// optionally spaces and a value, then optionally '#' and a comment. LF and
// CR both end a line. The key is an address, "[IPv6]", a CIDR, a quoted
// "key", or several of them separated by commas; a CIDR with host bits
// set stands for its network and a mask above the address length for the
// single address, as in rspamd.
//
// mailjail uses it to take over a map that existed before it, so that no
// entry is dropped and none is invented. Where rspamd would warn and skip
// a key, or would read it differently from what it says, ParseEntries
// returns an error "name:line: entry: problem" instead of guessing: an
// invalid address; a mask that is not a number from 0 to 128 (rspamd
// reads "/abc" and "/4294967296" as /0: every address); text after
// "[IPv6]"; a NUL byte in a key; an empty or unterminated quoted key; a
// /regexp/ key; an IPv6 part without a mask after a CIDR in the same
// comma list (rspamd gives it the earlier mask); an IPv4-mapped range
// shorter than /96. One difference goes the other way: a last line
// without a newline that ends in spaces after its key (or right after a
// quoted key) is dropped by rspamd 3.4 and kept here, as written.
func ParseEntries(r io.Reader, name string) (Parsed, error) {
	var out Parsed
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	sc.Split(scanLF)
	for n := 1; sc.Scan(); n++ {
		// rspamd ends a line at a lone CR too (line numbers count LFs).
		for _, seg := range strings.Split(sc.Text(), "\r") {
			if err := out.addLine(seg, n, name); err != nil {
				return Parsed{}, err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return Parsed{}, fmt.Errorf("read %s: %w", name, err)
	}
	return out, nil
}

// Parse is ParseEntries reduced to the prefixes, for callers that need
// only what is banned.
func Parse(r io.Reader, name string) ([]netip.Prefix, error) {
	p, err := ParseEntries(r, name)
	if err != nil {
		return nil, err
	}
	out := make([]netip.Prefix, len(p.Entries))
	for i, e := range p.Entries {
		out[i] = e.Prefix
	}
	return out, nil
}

// scanLF splits at LF only: bufio.ScanLines would also drop a CR before
// it, and a CR is a line end of its own for rspamd.
func scanLF(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// rspamdSpace is what g_ascii_isspace accepts (not '\v'); CR and LF never
// reach a line here.
const rspamdSpace = " \t\f"

func (out *Parsed) addLine(seg string, n int, name string) error {
	s := strings.TrimLeft(seg, rspamdSpace)
	if s == "" {
		return nil
	}
	if s[0] == '#' {
		text := strings.TrimSpace(s[1:])
		if n <= 3 && isHeaderLine(text, n) {
			out.Managed = out.Managed || n == 1
			return nil
		}
		out.Comments = append(out.Comments, Comment{Line: n, Text: text})
		return nil
	}
	key, value, comment, err := splitLine(s)
	if err != nil {
		return fmt.Errorf("%s:%d: entry: %w", name, n, err)
	}
	prefixes, err := parseKey(key)
	if err != nil {
		return fmt.Errorf("%s:%d: entry: %w", name, n, err)
	}
	base := ParsedEntry{Line: n, Value: value, Comment: comment}
	if value == "" {
		base.Until, base.Jail, base.Own = parseOwnComment(comment)
	}
	for _, p := range prefixes {
		e := base
		e.Prefix = p
		out.Entries = append(out.Entries, e)
	}
	return nil
}

// isHeaderLine reports whether text (a comment on line n) is one of the
// lines Render writes above the entries.
func isHeaderLine(text string, n int) bool {
	hdr := strings.Split(strings.TrimSuffix(Header, "\n"), "\n")
	if n <= len(hdr) {
		return text == strings.TrimSpace(strings.TrimPrefix(hdr[n-1], "#"))
	}
	var count int
	var written string
	k, err := fmt.Sscanf(text, "%d entries, written %s", &count, &written)
	return err == nil && k == 2
}

// splitLine cuts a line (without leading space) into rspamd's key, value
// and comment, with rspamd's rules for quotes and '#'.
func splitLine(s string) (key, value, comment string, err error) {
	var rest string
	switch s[0] {
	case '"':
		end := -1
		for i := 1; i < len(s); i++ {
			if s[i] == '\\' {
				i++
				continue
			}
			if s[i] == '"' {
				end = i
				break
			}
		}
		if end < 0 {
			return "", "", "", fmt.Errorf("quoted key not closed on its line: %q", s)
		}
		key, rest = strings.Trim(s[1:end], rspamdSpace), s[end+1:]
		if key == "" {
			return "", "", "", fmt.Errorf("empty key %q (rspamd ignores it)", s[:end+1])
		}
	case '/':
		return "", "", "", fmt.Errorf("a /regexp/ key is not an address (rspamd ignores it): %q", s)
	default:
		i := 0
		for ; i < len(s); i++ {
			if s[i] == '#' && (i == 0 || s[i-1] != '\\') || strings.IndexByte(rspamdSpace, s[i]) >= 0 {
				break
			}
		}
		key, rest = s[:i], s[i:]
	}
	rest = strings.TrimLeft(rest, " \t")
	if i := strings.IndexByte(rest, '#'); i >= 0 {
		rest, comment = rest[:i], strings.TrimSpace(rest[i+1:])
	}
	return key, strings.Trim(rest, rspamdSpace), comment, nil
}

// parseKey turns a key into prefixes as rspamd_radix_add_iplist does: split
// at commas, each part an address, "[IPv6]" or CIDR.
func parseKey(key string) ([]netip.Prefix, error) {
	if strings.IndexByte(key, 0) >= 0 {
		return nil, fmt.Errorf("NUL byte in the key %q (rspamd cuts the key there)", key)
	}
	var out []netip.Prefix
	// rspamd keeps its mask variable from one part to the next (an IPv4
	// part leaves 96 + its bits): an IPv6 part without a mask of its own
	// then gets that mask, which is refused below.
	k := noMask
	for _, part := range strings.Split(key, ",") {
		if part == "" {
			continue
		}
		a, mask, err := parsePart(strings.Trim(part, rspamdSpace+"\n\r"))
		if err != nil {
			return nil, err
		}
		if mask != noMask {
			k = mask
		}
		var bits int
		if a.Is4() {
			bits = min(k, 32)
			k = bits + 96
		} else {
			bits = min(k, 128)
			if mask == noMask && bits != 128 {
				return nil, fmt.Errorf("%q after a CIDR on the same line: rspamd 3.4 reads it as %s/%d; put it on a line of its own", part, a, bits)
			}
		}
		p, err := prefixOf(a, bits)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no address in the key %q", key)
	}
	return out, nil
}

// noMask marks a part without "/N" (rspamd's G_MAXINT).
const noMask = 1 << 30

// parsePart reads one address or CIDR of a key; mask is noMask without one.
func parsePart(part string) (a netip.Addr, mask int, err error) {
	s, m, hasMask := strings.Cut(part, "/")
	mask = noMask
	if hasMask {
		var ok bool
		if mask, ok = parseMask(m); !ok {
			return netip.Addr{}, 0, fmt.Errorf("invalid CIDR %q: the mask is not a number from 0 to 128 (rspamd would read it as some other mask, maybe /0: every address)", part)
		}
	}
	braced := strings.HasPrefix(s, "[")
	if braced {
		inner, ok := strings.CutSuffix(s[1:], "]")
		if !ok {
			return netip.Addr{}, 0, fmt.Errorf("invalid address %q: text after ']' or no ']'", s)
		}
		s = inner
	}
	a, err = netip.ParseAddr(s)
	if err != nil || a.Zone() != "" || braced && !a.Is6() {
		return netip.Addr{}, 0, fmt.Errorf("invalid address %q", s)
	}
	return a, mask, nil
}

// prefixOf is the range rspamd enters for a with bits, IPv4-mapped IPv6
// ranges as IPv4 (rspamd stores IPv4 that way).
func prefixOf(a netip.Addr, bits int) (netip.Prefix, error) {
	if a.Is4In6() {
		if bits < 96 {
			return netip.Prefix{}, fmt.Errorf("IPv4-mapped range %s/%d is shorter than /96", a, bits)
		}
		a, bits = a.Unmap(), bits-96
	}
	return netip.PrefixFrom(a, bits).Masked(), nil
}

// parseMask reads a mask of decimal digits up to 128. rspamd reads the
// mask with strtoul into 32 bits: text that is not a number is 0 (every
// address), and 4294967296 is 0 as well, so neither is taken; 33 to 128
// are clamped to the address length, as rspamd does.
func parseMask(s string) (int, bool) {
	if s == "" || len(s) > 5 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, n <= 128
}

// parseOwnComment reads the comment Render writes: "until RFC3339
// jail=NAME" or "permanent jail=NAME", NAME escaped by escapeField.
func parseOwnComment(c string) (until time.Time, jail string, ok bool) {
	f := strings.Fields(c)
	switch {
	case len(f) == 2 && f[0] == "permanent":
	case len(f) == 3 && f[0] == "until":
		t, err := time.Parse(time.RFC3339, f[1])
		if err != nil {
			return time.Time{}, "", false
		}
		until = t.UTC()
	default:
		return time.Time{}, "", false
	}
	raw, found := strings.CutPrefix(f[len(f)-1], "jail=")
	if !found {
		return time.Time{}, "", false
	}
	jail, err := unescapeField(raw)
	if err != nil || jail == "" {
		return time.Time{}, "", false
	}
	return until, jail, true
}
