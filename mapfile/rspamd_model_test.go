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

func readLikeRspamd(d []byte) rspamdRead {
	var r rspamdRead
	state := stSpacesBeforeKey
	p, c := 0, 0
	var key []byte
	haveKey := false
	storeKey := func() {
		for c < p && gIsSpace(d[c]) {
			c++
		}
		k := d[c:p]
		if i := bytes.IndexByte(k, 0); i >= 0 { // rspamd_strlcpy stops at NUL
			k = k[:i]
			r.odd = true
		}
		if state == stKeyQuoted && bytes.ContainsAny(k, "\r\n") {
			r.odd = true // a quoted key across lines
		}
		key, haveKey = gStrip(k), true
	}
	insert := func() {
		r.addIPList(key)
		haveKey = false
	}
	isEOL := func(b byte) bool { return b == '\r' || b == '\n' }
	for p < len(d) {
		b := d[p]
		switch state {
		case stSpacesBeforeKey:
			switch {
			case gIsSpace(b):
				p++
			case b == '"':
				p++
				c = p
				state = stKeyQuoted
			case b == '/':
				c = p
				p++
				state = stKeySlashed
			default:
				c = p
				state = stKey
			}
		case stKey, stKeyAfterSlash:
			switch {
			case b == '#' && (state == stKeyAfterSlash || p == c || d[p-1] != '\\'):
				if p-c > 0 {
					storeKey()
					insert()
				}
				haveKey = false
				state = stCommentStart
			case isEOL(b):
				if p-c > 0 {
					storeKey()
					insert()
				}
				haveKey = false
				state = stEOL
			case gIsSpace(b):
				if p-c > 0 {
					storeKey()
					state = stSpacesAfterKey
				} else {
					r.warned = true
					state = stComment
				}
			default:
				p++
			}
		case stKeyQuoted:
			switch b {
			case '\\':
				state = stBackslashQuoted
				p++
			case '"':
				storeKey()
				state = stSpacesAfterKey
				p++
			default:
				p++
			}
		case stKeySlashed:
			switch b {
			case '\\':
				state = stBackslashSlashed
				p++
			case '/':
				state = stKeyAfterSlash
			default:
				p++
			}
		case stBackslashQuoted:
			p++
			state = stKeyQuoted
		case stBackslashSlashed:
			p++
			state = stKeySlashed
		case stSpacesAfterKey:
			if b == ' ' || b == '\t' {
				p++
			} else {
				c = p
				state = stValue
			}
		case stValue:
			switch {
			case !haveKey:
				r.warned = true
				state = stComment
			case b == '#':
				insert()
				state = stCommentStart
			case isEOL(b):
				insert()
				state = stEOL
			default:
				p++
			}
		case stCommentStart:
			state = stComment
			p++
			haveKey = false
		case stComment:
			if isEOL(b) {
				state = stEOL
			} else {
				p++
			}
		case stEOL:
			if isEOL(b) {
				p++
			} else {
				state = stSpacesBeforeKey
			}
		}
	}
	switch state {
	case stKey, stKeyAfterSlash:
		if p-c > 0 {
			storeKey()
			insert()
		}
	case stValue:
		if haveKey {
			insert()
		} else {
			r.warned = true
		}
	case stSpacesAfterKey:
		// rspamd drops the last key when the file ends in spaces after it
		// (or right after a quoted key) without a newline.
		r.odd = r.odd || haveKey
	case stKeyQuoted, stBackslashQuoted, stKeySlashed, stBackslashSlashed:
		r.odd = true // an unterminated key is dropped
	}
	return r
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
