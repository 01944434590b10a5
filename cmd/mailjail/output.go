package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// printJSON writes v as indented JSON: exact values, for scripts. Text
// output goes through textf instead.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// textf is fmt.Fprintf for every text output: each string argument (also
// []string, errors and fmt.Stringers) is passed through safeText first, so
// what a remote sender put into a log line (an envelope from, a
// Message-ID, a rate key) cannot move the cursor, clear the screen or set
// the title of the operator's terminal. The format itself is trusted.
func textf(w io.Writer, format string, args ...any) {
	args = slices.Clone(args) // a caller's args... slice stays as it was
	for i, a := range args {
		switch v := a.(type) {
		case string:
			args[i] = safeText(v)
		case []string:
			s := make([]string, len(v))
			for k := range v {
				s[k] = safeText(v[k])
			}
			args[i] = s
		case error:
			args[i] = safeText(v.Error())
		case fmt.Stringer:
			args[i] = safeText(v.String())
		}
	}
	fmt.Fprintf(w, format, args...)
}

// safeText escapes what a terminal would act on rather than show: C0 and
// C1 control characters (ESC, BEL, CR, LF, TAB, DEL, U+009B CSI ...),
// other unprintable runes such as bidirectional overrides, and bytes that
// are not UTF-8. They are written as Go escapes (\x1b, \a, \r, \u202e);
// invalid bytes as \xNN. Printable text, non-ASCII letters included, is
// unchanged, so ordinary lines read as they are.
func safeText(s string) string {
	i := 0
	for i < len(s) && s[i] >= 0x20 && s[i] < 0x7f {
		i++
	}
	if i == len(s) {
		return s // the common case: printable ASCII
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	b.WriteString(s[:i])
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case strconv.IsPrint(r):
			b.WriteString(s[i : i+n])
		default:
			q := strconv.QuoteRune(r) // '\x1b', '\a', '\u202e'
			b.WriteString(q[1 : len(q)-1])
		}
		i += n
	}
	return b.String()
}

// safeLines is safeText for a message of several lines (an error that
// lists every problem of a configuration): the line breaks stay.
func safeLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = safeText(l)
	}
	return strings.Join(lines, "\n")
}

// nonNil is s, or an empty slice for nil: JSON [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func fmtTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func fmtUntil(u *time.Time) string {
	if u == nil {
		return "permanent"
	}
	return fmtTime(*u)
}
