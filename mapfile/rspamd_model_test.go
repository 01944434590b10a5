package mapfile

import (
	"bytes"
	"net/netip"
	"slices"
	"strconv"
)

// rspamdRead is a transliteration of how rspamd 3.4 reads a multimap "ip"
// file: rspamd_parse_kv_list (src/libserver/maps/map_helpers.c, the whole
// file in one chunk with final = TRUE) feeding rspamd_radix_add_iplist
// (src/libutil/radix.c, separators ","). The cases that are easy to get
// wrong were checked against the real rspamd 3.4 of the e2e set-up (see
// TestParseAcceptsWhatRspamdAccepts). FuzzParse compares ParseEntries with
// it.
type rspamdRead struct {
	prefixes []netip.Prefix // as rspamd stores them: 128 bits, IPv4 mapped
	warned   bool           // rspamd logged a warning and skipped a key or part
	// odd: rspamd read something ParseEntries refuses on purpose or reads
	// on purpose differently (see its doc comment).
	odd bool
}

const (
	stSpacesBeforeKey = iota
	stKey
	stKeyQuoted
	stKeySlashed
	stSpacesAfterKey
	stBackslashQuoted
	stBackslashSlashed
	stKeyAfterSlash
	stValue
	stCommentStart
	stComment
	stEOL
)

// gIsSpace is g_ascii_isspace: no '\v'.
func gIsSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r' }

func gStrip(b []byte) []byte {
	for len(b) > 0 && gIsSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && gIsSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// kvReader is rspamd_parse_kv_list's state: p the byte looked at, c the
// start of the key or value being read.
type kvReader struct {
	r       *rspamdRead
	d       []byte
	p, c    int
	state   int
	key     []byte
	haveKey bool
}

func readLikeRspamd(d []byte) rspamdRead {
	var r rspamdRead
	k := &kvReader{r: &r, d: d}
	for k.p < len(d) {
		k.step(d[k.p])
	}
	k.final()
	return r
}

// storeKey is MAP_STORE_KEY.
func (k *kvReader) storeKey() {
	for k.c < k.p && gIsSpace(k.d[k.c]) {
		k.c++
	}
	key := k.d[k.c:k.p]
	if i := bytes.IndexByte(key, 0); i >= 0 { // rspamd_strlcpy stops at NUL
		key = key[:i]
		k.r.odd = true
	}
	if k.state == stKeyQuoted && bytes.ContainsAny(key, "\r\n") {
		k.r.odd = true // a quoted key across lines
	}
	k.key, k.haveKey = gStrip(key), true
}

func (k *kvReader) insert() {
	k.r.addIPList(k.key)
	k.haveKey = false
}

func isEOL(b byte) bool { return b == '\r' || b == '\n' }

func (k *kvReader) step(b byte) {
	switch k.state {
	case stSpacesBeforeKey:
		k.spacesBeforeKey(b)
	case stKey, stKeyAfterSlash:
		k.readKey(b)
	case stKeyQuoted, stKeySlashed:
		k.readDelimitedKey(b)
	case stBackslashQuoted:
		k.p++
		k.state = stKeyQuoted
	case stBackslashSlashed:
		k.p++
		k.state = stKeySlashed
	case stSpacesAfterKey:
		if b == ' ' || b == '\t' {
			k.p++
		} else {
			k.c = k.p
			k.state = stValue
		}
	case stValue:
		k.readValue(b)
	case stCommentStart:
		k.state = stComment
		k.p++
		k.haveKey = false
	case stComment:
		if isEOL(b) {
			k.state = stEOL
		} else {
			k.p++
		}
	case stEOL:
		if isEOL(b) {
			k.p++
		} else {
			k.state = stSpacesBeforeKey
		}
	}
}

func (k *kvReader) spacesBeforeKey(b byte) {
	switch {
	case gIsSpace(b):
		k.p++
	case b == '"':
		k.p++
		k.c = k.p
		k.state = stKeyQuoted
	case b == '/':
		k.c = k.p
		k.p++
		k.state = stKeySlashed
	default:
		k.c = k.p
		k.state = stKey
	}
}

// readKey is map_read_key and map_read_key_after_slash: the latter takes
// '#' after a backslash as a comment too.
func (k *kvReader) readKey(b byte) {
	switch {
	case b == '#' && (k.state == stKeyAfterSlash || k.p == k.c || k.d[k.p-1] != '\\'), isEOL(b):
		// A key alone on its line, or before a comment.
		if k.p-k.c > 0 {
			k.storeKey()
			k.insert()
		}
		k.haveKey = false
		k.state = stEOL
		if b == '#' {
			k.state = stCommentStart
		}
	case gIsSpace(b):
		if k.p-k.c > 0 {
			k.storeKey()
			k.state = stSpacesAfterKey
		} else {
			k.r.warned = true
			k.state = stComment
		}
	default:
		k.p++
	}
}

// readDelimitedKey is map_read_key_quoted and map_read_key_slashed.
func (k *kvReader) readDelimitedKey(b byte) {
	quoted := k.state == stKeyQuoted
	switch {
	case b == '\\':
		k.state = stBackslashSlashed
		if quoted {
			k.state = stBackslashQuoted
		}
		k.p++
	case quoted && b == '"':
		k.storeKey()
		k.state = stSpacesAfterKey
		k.p++
	case !quoted && b == '/':
		k.state = stKeyAfterSlash // the '/' is read there, as part of the key
	default:
		k.p++
	}
}

func (k *kvReader) readValue(b byte) {
	switch {
	case !k.haveKey:
		k.r.warned = true
		k.state = stComment
	case b == '#':
		k.insert()
		k.state = stCommentStart
	case isEOL(b):
		k.insert()
		k.state = stEOL
	default:
		k.p++
	}
}

// final is the end of rspamd_parse_kv_list with final = TRUE.
func (k *kvReader) final() {
	switch k.state {
	case stKey, stKeyAfterSlash:
		if k.p-k.c > 0 {
			k.storeKey()
			k.insert()
		}
	case stValue:
		if k.haveKey {
			k.insert()
		} else {
			k.r.warned = true
		}
	case stSpacesAfterKey:
		// rspamd drops the last key when the file ends in spaces after it
		// (or right after a quoted key) without a newline.
		k.r.odd = k.r.odd || k.haveKey
	case stKeyQuoted, stBackslashQuoted, stKeySlashed, stBackslashSlashed:
		k.r.odd = true // an unterminated key is dropped
	}
}

// addIPList is rspamd_radix_add_iplist(key, ",", ...) without resolving.
func (r *rspamdRead) addIPList(key []byte) {
	k := uint64(1<<31 - 1) // G_MAXINT; not reset between parts
	added := false
	for _, part := range bytes.Split(key, []byte(",")) {
		if len(part) == 0 {
			continue
		}
		tok, ipnet, hasMask := bytes.Cut(gStrip(part), []byte("/"))
		if hasMask {
			k = strtoul32(ipnet)
			if len(ipnet) == 0 || len(ipnet) > 5 || !allDigits(ipnet) || k > 128 {
				r.odd = true
			}
		}
		var a netip.Addr
		var err error
		if len(tok) > 0 && tok[0] == '[' {
			end := bytes.LastIndexByte(tok, ']')
			if end < 0 {
				r.warned = true
				continue
			}
			if end != len(tok)-1 {
				r.odd = true // rspamd ignores what follows ']'
			}
			a, err = netip.ParseAddr(string(tok[1:end]))
			if err != nil || !a.Is6() || a.Zone() != "" {
				r.warned = true
				continue
			}
		} else if a, err = netip.ParseAddr(string(tok)); err != nil || a.Zone() != "" {
			r.warned = true
			continue
		}
		if a.Is4() {
			k = min(k, 32)
			r.prefixes = append(r.prefixes, netip.PrefixFrom(netip.AddrFrom16(a.As16()), int(k+96)).Masked())
			k += 96
		} else {
			k = min(k, 128)
			if a.Is4In6() && k < 96 || !hasMask && k != 128 {
				r.odd = true
			}
			r.prefixes = append(r.prefixes, netip.PrefixFrom(a, int(k)).Masked())
		}
		added = true
	}
	if !added && !r.warned {
		r.odd = true // a key of nothing but commas, or "": rspamd says nothing
	}
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// strtoul32 is (guint) strtoul(s, NULL, 10) for what matters here: digits
// after optional space and sign, overflow giving G_MAXINT (ERANGE).
func strtoul32(s []byte) uint64 {
	s = bytes.TrimLeft(s, " \t\n\v\f\r")
	neg := false
	if len(s) > 0 && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0
	}
	v, err := strconv.ParseUint(string(s[:i]), 10, 64)
	if err != nil {
		return 1<<31 - 1
	}
	if neg {
		v = -v
	}
	return v & 0xFFFFFFFF
}

// as128 is the form rspamd stores p in.
func as128(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4() {
		return netip.PrefixFrom(netip.AddrFrom16(p.Addr().As16()), p.Bits()+96)
	}
	return p
}

// prefixSet sorts and deduplicates prefixes, for comparing what two
// readers enter into a radix tree.
func prefixSet(ps []netip.Prefix) []netip.Prefix {
	out := slices.Clone(ps)
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return slices.Compact(out)
}
