package main

import (
	"bytes"
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSafeTextEscapesTerminalControls(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain ascii, spaces & <brackets>", "plain ascii, spaces & <brackets>"},
		{"a\x1b]0;TITLE\x07\x1b[2J", `a\x1b]0;TITLE\a\x1b[2J`},
		{"cr\rlf\ntab\tdel\x7f nul\x00", `cr\rlf\ntab\tdel\x7f nul\x00`},
		{"csi \u009b31m", `csi \u009b31m`},           // C1 CSI, as a rune
		{"raw \x9b31m", `raw \x9b31m`},               // the same byte, not UTF-8
		{"bidi \u202egnp.exe", `bidi \u202egnp.exe`}, // right-to-left override
		{"accents: café, Ünïcode, 日本", "accents: café, Ünïcode, 日本"},
		{"trailing \xe2\x82", `trailing \xe2\x82`}, // a cut multibyte rune
		{`back\slash stays`, `back\slash stays`},
		{"", ""},
	}
	for _, tt := range tests {
		if got := safeText(tt.in); got != tt.want {
			t.Errorf("safeText(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := safeLines("line one\x1b[2J\nline two\r"); got != "line one\\x1b[2J\nline two\\r" {
		t.Errorf("safeLines kept or lost the wrong characters: %q", got)
	}
}

func TestTextfEscapesEveryKindOfTextArgument(t *testing.T) {
	var b bytes.Buffer
	textf(&b, "%s|%v|%s|%s|%d|%s\n", "s\x1b", []string{"l\a"}, errors.New("e\r"), netip.MustParseAddr("192.0.2.1"), 7, stringer("x\x1by"))
	if want := `s\x1b|[l\a]|e\r|192.0.2.1|7|x\x1by` + "\n"; b.String() != want {
		t.Errorf("textf wrote %q, want %q", b.String(), want)
	}
}

type stringer string

func (s stringer) String() string { return string(s) }

// Whatever a log line holds, the text printed has no control character
// and is valid UTF-8; printable text passes unchanged.
func FuzzSafeText(f *testing.F) {
	for _, s := range []string{"a\x1b]0;TITLE\x07\x1b[2J", "\u009b\u202e", "\xff\xfe", "café", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := safeText(s)
		if !utf8.ValidString(got) {
			t.Fatalf("safeText(%q) = %q: not UTF-8", s, got)
		}
		for _, r := range got {
			if r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 {
				t.Fatalf("safeText(%q) = %q keeps control %U", s, got, r)
			}
		}
		if utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return !strconv.IsPrint(r) }) && got != s {
			t.Fatalf("safeText changed printable %q to %q", s, got)
		}
	})
}
