package notify

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxSubject is the longest subject kept, in characters.
const MaxSubject = 200

// HeaderText makes s safe as the text of one header (the subject):
// control characters (CR, LF and TAB among them) and line or paragraph
// separators are removed, invalid UTF-8 becomes U+FFFD, spaces at the
// ends are trimmed and at most MaxSubject characters are kept. go-mail
// then RFC 2047 encodes what is not ASCII.
func HeaderText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unsafeRune(r) {
			return -1
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if utf8.RuneCountInString(s) > MaxSubject {
		s = strings.TrimSpace(string([]rune(s)[:MaxSubject]))
	}
	return s
}

// TextLine makes s safe as (part of) one body line: invalid UTF-8 and
// control characters become '?', a TAB a space, and at most max bytes
// are kept (then "…" marks the cut), at a character boundary. Nothing
// in it can end the line, or the message, early.
func TextLine(s string, max int) string {
	s = strings.ToValidUTF8(s, "?")
	s = strings.Map(func(r rune) rune {
		switch {
		case r == '\t':
			return ' '
		case unsafeRune(r):
			return '?'
		}
		return r
	}, s)
	if max > 0 && len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// unsafeRune reports the characters no header or body line may carry as
// they are: C0 and C1 controls, DEL, the Unicode line and paragraph
// separators, and the bidirectional overrides that make text read other
// than it is.
func unsafeRune(r rune) bool {
	switch {
	case unicode.Is(unicode.Cc, r):
		return true
	case r == '\u2028', r == '\u2029':
		return true
	case r >= '\u202a' && r <= '\u202e', r >= '\u2066' && r <= '\u2069':
		return true
	}
	return false
}
