package rules

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// Mail servers that log in their own formats can be used with a custom
// filter's datepattern (issue 11 #29).
func TestDatePatternReadsOtherFormats(t *testing.T) {
	ref := time.Date(2013, 6, 20, 12, 0, 0, 0, time.UTC)
	plus2 := time.FixedZone("", 2*3600)
	tests := []struct {
		pattern, line string
		want          time.Time
		rest          string
	}{
		{`^\[%d/%b/%Y %H:%M:%S\]`, "[17/Jun/2011 17:00:45] login failed from 192.0.2.1", time.Date(2011, 6, 17, 17, 0, 45, 0, time.UTC), "login failed from 192.0.2.1"},
		{`%b-%d-%y %H:%M:%S`, "Apr-07-13 07:08:36 auth failure", time.Date(2013, 4, 7, 7, 8, 36, 0, time.UTC), "auth failure"},
		{`%d-%m-%Y %H:%M:%S`, "03-07-2005 23:07:20 x", time.Date(2005, 7, 3, 23, 7, 20, 0, time.UTC), "x"},
		{`{^LN-BEG}\[%d-%b-%Y %H:%M:%S %z\]`, "[22-Jan-2013 22:28:21 +0200] x", time.Date(2013, 1, 22, 22, 28, 21, 0, plus2), "x"},
		{`%m/%d/%Y %H:%M:%S`, "10/06/2013 15:50:41 x", time.Date(2013, 10, 6, 15, 50, 41, 0, time.UTC), "x"},
		{`%d/%m/%Y %H:%M:%S`, "10/06/2013 15:50:41 x", time.Date(2013, 6, 10, 15, 50, 41, 0, time.UTC), "x"},
		{`%b %d %H:%M:%S`, "Jun  7 01:02:03 mx", time.Date(2013, 6, 7, 1, 2, 3, 0, time.UTC), "mx"},
		{`%Y%m%d %H:%M:%S.%f`, "20130607 01:02:03.25 mx", time.Date(2013, 6, 7, 1, 2, 3, 25e7, time.UTC), "mx"},
		{`%a %B %e %H:%M:%S %Y`, "Fri june 7 01:02:03 2013", time.Date(2013, 6, 7, 1, 2, 3, 0, time.UTC), ""},
		{`%d.%m.%Y %H:%M`, "07.06.2013 01:02\tx", time.Date(2013, 6, 7, 1, 2, 0, 0, time.UTC), "\tx"},
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			dp, err := CompileDatePattern(tt.pattern)
			if err != nil {
				t.Fatal(err)
			}
			got, n, ok := dp.Parse([]byte(tt.line), time.UTC, ref)
			if !ok || !got.Equal(tt.want) || tt.line[n:] != tt.rest {
				t.Errorf("got %v rest %q ok=%v, want %v rest %q", got, tt.line[n:], ok, tt.want, tt.rest)
			}
		})
	}
}

func TestDatePatternNoMatchOrBadValues(t *testing.T) {
	dp, err := CompileDatePattern(`\[%d/%b/%Y %H:%M:%S\]`)
	if err != nil {
		t.Fatal(err)
	}
	ref := time.Date(2013, 6, 20, 12, 0, 0, 0, time.UTC)
	for line, wantN := range map[string]int{
		"Jun 17 17:00:45 mx":          0, // another layout
		"[17/Jun/2011 17:00:45":       0, // cut short
		"[17/Foo/2011 17:00:45] x":    0,
		"[31/Jun/2011 17:00:45] x":    23, // the layout, an impossible day
		"[17/Jun/2011 25:00:45] x":    23,
		"[17/Jun/9999 17:00:45] x":    23,
		"[17/Jun/2011 17:00:45]x":     0, // ends inside a word
		"[17/Jun/2011 17:00:45] rest": 23,
	} {
		_, n, ok := dp.Parse([]byte(line), time.UTC, ref)
		if n != wantN || ok != (wantN > 0 && strings.HasSuffix(line, "rest")) {
			t.Errorf("%q: n=%d ok=%v, want n=%d", line, n, ok, wantN)
		}
	}
}

func TestCompileDatePatternErrors(t *testing.T) {
	for pattern, want := range map[string]string{
		"%Q %d %m %H:%M":        "unknown field %Q",
		"%d %m %H":              "needs at least",
		"%d %m %H:%M %d":        "%d twice",
		`(\d+) %d %m %H:%M`:     "regex syntax",
		`\d %d %m %H:%M`:        `\d is regex syntax`,
		"%d %m %b %H:%M":        "given twice",
		"%d %m %H:%M %":         "at the end",
		`%d %m %H:%M \`:         "at the end",
		"%d/%m/%Y %H:%M:%S|x":   "regex syntax",
		"%d/%m/%Y %H:%M:%S %y":  "given twice",
		"%d/%m/%Y %H:%M:%S(?:)": "regex syntax",
	} {
		_, err := CompileDatePattern(pattern)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want %q", pattern, err, want)
		}
	}
}

// A filter with a datepattern reads its own layout, and the built-in
// formats for lines that do not start with it.
func TestFilterParseTimeUsesDatePattern(t *testing.T) {
	f, err := CompileFilter("x", FilterSpec{FailRegex: []string{`^login failed from <HOST>`}, DatePattern: `\[%d/%b/%Y %H:%M:%S\]`})
	if err != nil {
		t.Fatal(err)
	}
	if !f.HasDatePattern() {
		t.Fatal("no datepattern")
	}
	ref := time.Date(2013, 6, 20, 12, 0, 0, 0, time.UTC)
	line := []byte("[17/Jun/2011 17:00:45] login failed from 192.0.2.1")
	at, n, ok := f.ParseTime(line, time.UTC, ref)
	if m, matched := f.Match(line[n:]); !ok || !matched || m.Addr.String() != "192.0.2.1" || at.Year() != 2011 {
		t.Errorf("at=%v ok=%v match=%v %v", at, ok, m, matched)
	}
	if _, n, ok := f.ParseTime([]byte("2026-11-25 03:22:23 login failed from 192.0.2.1"), time.UTC, ref); !ok || n != 20 {
		t.Errorf("built-in fallback: n=%d ok=%v", n, ok)
	}
	plain, _ := CompileFilter("y", FilterSpec{FailRegex: []string{`from <HOST>`}})
	if _, n, ok := plain.ParseTime(line, time.UTC, ref); ok || n != 0 || plain.HasDatePattern() {
		t.Errorf("no datepattern: n=%d ok=%v", n, ok)
	}
}

// formatDate writes t in dp's layout, for the round-trip fuzz test.
func formatDate(dp *DatePattern, t time.Time) string {
	var b strings.Builder
	for _, it := range dp.items {
		switch it.field {
		case 0:
			b.WriteByte(it.lit)
		case ' ':
			b.WriteByte(' ')
		case 'Y':
			fmt.Fprintf(&b, "%04d", t.Year())
		case 'y':
			fmt.Fprintf(&b, "%02d", t.Year()%100)
		case 'm':
			fmt.Fprintf(&b, "%02d", t.Month())
		case 'd':
			fmt.Fprintf(&b, "%02d", t.Day())
		case 'H':
			fmt.Fprintf(&b, "%02d", t.Hour())
		case 'M':
			fmt.Fprintf(&b, "%02d", t.Minute())
		case 'S':
			fmt.Fprintf(&b, "%02d", t.Second())
		case 'f':
			fmt.Fprintf(&b, "%09d", t.Nanosecond())
		case 'b':
			b.WriteString(t.Format("Jan"))
		case 'B':
			b.WriteString(t.Format("January"))
		case 'a':
			b.WriteString(t.Format("Mon"))
		case 'z':
			b.WriteString(t.Format("-0700"))
		}
	}
	return b.String()
}

func hasField(dp *DatePattern, f byte) bool {
	for _, it := range dp.items {
		if it.field == f {
			return true
		}
	}
	return false
}

// fractionRunsOn reports a %f followed by digits, which it would swallow.
func fractionRunsOn(dp *DatePattern) bool {
	for i, it := range dp.items[:max(len(dp.items)-1, 0)] {
		next := dp.items[i+1]
		if it.field == 'f' && (strings.IndexByte("YymdHMS", next.field) >= 0 && next.field != 0 || next.field == 0 && isDigit(next.lit)) {
			return true
		}
	}
	return false
}

func FuzzDatePattern(f *testing.F) {
	for _, p := range []string{`^\[%d/%b/%Y %H:%M:%S\]`, `%b-%d-%y %H:%M:%S`, `%d-%m-%Y %H:%M:%S`, `\[%d-%b-%Y %H:%M:%S %z\]`, `%m/%d/%Y %H:%M:%S`, `%a %B %e %H:%M:%S.%f`} {
		f.Add(p, []byte("[17/Jun/2011 17:00:45] x"), int64(1300000000))
	}
	ref := time.Date(2013, 6, 20, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, pattern string, line []byte, unix int64) {
		dp, err := CompileDatePattern(pattern)
		if err != nil {
			return
		}
		tm, n, ok := dp.Parse(line, time.UTC, ref)
		if n < 0 || n > len(line) || ok && n == 0 {
			t.Fatalf("n=%d ok=%v for %q", n, ok, line)
		}
		if ok && (tm.Year() < MinYear-1 || tm.Year() > MaxYear+1) {
			t.Fatalf("year %d", tm.Year())
		}
		// What the layout writes, it reads back (to its precision).
		want := time.Unix(unix%(4e9), 0).UTC()
		if !dp.year {
			want = want.AddDate(ref.Year()-want.Year(), 0, 0)
			if want.Month() == 2 && want.Day() == 29 || want.Sub(ref) > 31*24*time.Hour || ref.Sub(want) > 334*24*time.Hour {
				return
			}
		}
		if !hasField(dp, 'S') {
			want = want.Truncate(time.Minute)
		}
		if hasField(dp, 'y') && want.Year() >= 2069 || fractionRunsOn(dp) {
			return // not a layout that can be read back unambiguously
		}
		s := formatDate(dp, want)
		got, _, ok := dp.Parse([]byte(s), time.UTC, ref)
		if !ok || !got.Equal(want) {
			t.Fatalf("pattern %q wrote %q for %v, read back %v ok=%v", pattern, s, want, got, ok)
		}
	})
}
