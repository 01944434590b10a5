package rules

import (
	"fmt"
	"strings"
	"time"
)

// DatePattern is a filter's own timestamp layout, for programs that log
// dates in none of ParseTime's formats. It is written as fail2ban writes a
// datepattern, with strptime's fields:
//
//	%Y  year, 4 digits         %y  year, 2 digits (69-99: 19xx, else 20xx)
//	%m  month, 1-2 digits      %b  month name, 3 letters  %B  full name
//	%d  day, 1-2 digits (%e)   %a  weekday name, 3 letters (not checked)
//	%H  hour, 1-2 digits       %M  minute, 2 digits       %S  second, 2 digits
//	%f  fraction of a second   %z  zone: Z, +hhmm, +hh:mm or +hh
//	%%  a percent sign
//
// Everything else is literal text; a space matches one or more spaces (so
// "%b %d" reads "Mar  7" and "Mar 7"). fail2ban's regex spellings of
// literal text are accepted: a leading "^" or "{^LN-BEG}", and a backslash
// before punctuation ("\[") or "\s" for a space. Other regex syntax is
// refused rather than misread. The layout must be at the start of the line,
// as the built-in formats are. Without a year, the year is inferred from
// the reference time as for syslog; without %z the time is read in the
// configured time zone.
type DatePattern struct {
	src   string
	items []dateItem
	year  bool
}

// dateItem is one literal byte (field 0), a run of spaces (field ' ') or a
// % field (its letter).
type dateItem struct {
	field byte
	lit   byte
}

const dateFields = "YymbBdeaHMSfz"

// CompileDatePattern parses a datepattern (see DatePattern).
func CompileDatePattern(src string) (*DatePattern, error) {
	s := strings.TrimPrefix(strings.TrimPrefix(src, "{^LN-BEG}"), "^")
	dp := &DatePattern{src: src}
	seen := map[byte]bool{}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%':
			if i+1 == len(s) {
				return nil, fmt.Errorf("datepattern %q: %% at the end", src)
			}
			i++
			f := s[i]
			if f == '%' {
				dp.items = append(dp.items, dateItem{lit: '%'})
				continue
			}
			if !strings.ContainsRune(dateFields, rune(f)) {
				return nil, fmt.Errorf("datepattern %q: unknown field %%%c (have %%Y %%y %%m %%b %%B %%d %%e %%a %%H %%M %%S %%f %%z)", src, f)
			}
			if f == 'e' {
				f = 'd'
			}
			if seen[f] {
				return nil, fmt.Errorf("datepattern %q: %%%c twice", src, f)
			}
			seen[f] = true
			dp.items = append(dp.items, dateItem{field: f})
		case c == '\\':
			if i+1 == len(s) {
				return nil, fmt.Errorf("datepattern %q: \\ at the end", src)
			}
			i++
			switch e := s[i]; {
			case e == 's':
				dp.addSpace()
			case strings.IndexByte(`[](){}.*+?|^$\/-:,`, e) >= 0:
				dp.items = append(dp.items, dateItem{lit: e})
			default:
				return nil, fmt.Errorf(`datepattern %q: \%c is regex syntax; a datepattern is a layout of %%-fields and literal text`, src, e)
			}
		case c == ' ':
			dp.addSpace()
		case strings.IndexByte("()|*+?{}$", c) >= 0:
			return nil, fmt.Errorf("datepattern %q: %q is regex syntax; a datepattern is a layout of %%-fields and literal text (write \\%c for the character)", src, c, c)
		default:
			dp.items = append(dp.items, dateItem{lit: c})
		}
	}
	if !seen['H'] || !seen['M'] || !seen['d'] || !seen['m'] && !seen['b'] && !seen['B'] {
		return nil, fmt.Errorf("datepattern %q: needs at least a day (%%d), a month (%%m or %%b), hours (%%H) and minutes (%%M)", src)
	}
	if seen['m'] && (seen['b'] || seen['B']) || seen['b'] && seen['B'] || seen['Y'] && seen['y'] {
		return nil, fmt.Errorf("datepattern %q: the month or the year is given twice", src)
	}
	dp.year = seen['Y'] || seen['y']
	return dp, nil
}

func (dp *DatePattern) addSpace() {
	if n := len(dp.items); n > 0 && dp.items[n-1].field == ' ' {
		return
	}
	dp.items = append(dp.items, dateItem{field: ' '})
}

// String returns the pattern as written.
func (dp *DatePattern) String() string { return dp.src }

// dateFieldValues holds what a line's fields said; -1 is "not given".
type dateFieldValues struct {
	year, mon, day, hh, mm, ss, nsec int
	zone                             *time.Location
}

// Parse reads a timestamp in the pattern's layout at the start of line.
// Its results are those of ParseTime: n is the length of the timestamp
// and one following space, and a line that has the layout but impossible
// values (a 13th month, hour 99) gives n > 0 with ok = false.
func (dp *DatePattern) Parse(line []byte, loc *time.Location, ref time.Time) (t time.Time, n int, ok bool) {
	v := dateFieldValues{year: -1, mon: -1, zone: loc}
	i := 0
	for _, it := range dp.items {
		var good bool
		if i, good = dp.readItem(line, i, it, &v); !good {
			return time.Time{}, 0, false
		}
	}
	if i < len(line) && isAlnum(line[i]) {
		return time.Time{}, 0, false // the layout ends inside a word or number
	}
	if i < len(line) && line[i] == ' ' {
		i++
	}
	if !dp.year {
		if ref.IsZero() {
			return time.Time{}, i, false
		}
		v.year = inferYear(ref.In(v.zone), v.mon, v.day, v.hh, v.mm, v.ss)
	}
	if !validDate(v.year, v.mon, v.day) || !validClock(v.mon, v.day, v.hh, v.mm, v.ss) {
		return time.Time{}, i, false
	}
	return time.Date(v.year, time.Month(v.mon), v.day, v.hh, v.mm, v.ss, v.nsec, v.zone), i, true
}

// readItem matches one item at line[i:] and returns the position after it.
func (dp *DatePattern) readItem(line []byte, i int, it dateItem, v *dateFieldValues) (int, bool) {
	switch it.field {
	case 0:
		return i + 1, i < len(line) && line[i] == it.lit
	case ' ':
		j := i
		for j < len(line) && line[j] == ' ' {
			j++
		}
		return j, j > i
	case 'Y':
		return readNum(line, i, 4, 4, &v.year)
	case 'y':
		j, ok := readNum(line, i, 2, 2, &v.year)
		if v.year < 69 {
			v.year += 2000
		} else {
			v.year += 1900
		}
		return j, ok
	case 'm':
		return readNum(line, i, 1, 2, &v.mon)
	case 'd':
		return readNum(line, i, 1, 2, &v.day)
	case 'H':
		return readNum(line, i, 1, 2, &v.hh)
	case 'M':
		return readNum(line, i, 2, 2, &v.mm)
	case 'S':
		return readNum(line, i, 2, 2, &v.ss)
	case 'f':
		return readFraction(line, i, &v.nsec)
	case 'b', 'B':
		return readMonth(line, i, it.field == 'B', &v.mon)
	case 'a':
		return i + 3, i+3 <= len(line) && isLetter(line[i]) && isLetter(line[i+1]) && isLetter(line[i+2])
	case 'z':
		return readZone(line, i, &v.zone)
	}
	return i, false
}

// readNum reads min to max decimal digits.
func readNum(b []byte, i, lo, hi int, v *int) (int, bool) {
	n, j := 0, i
	for j < len(b) && j-i < hi && isDigit(b[j]) {
		n = n*10 + int(b[j]-'0')
		j++
	}
	*v = n
	return j, j-i >= lo
}

func readFraction(b []byte, i int, nsec *int) (int, bool) {
	j, scale := i, 100000000
	for j < len(b) && isDigit(b[j]) {
		*nsec += int(b[j]-'0') * scale
		scale /= 10
		j++
	}
	return j, j > i
}

var monthNames = [12]string{"january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december"}

func readMonth(b []byte, i int, full bool, mon *int) (int, bool) {
	for m, name := range monthNames {
		if !full {
			name = name[:3]
		}
		if i+len(name) <= len(b) && strings.EqualFold(string(b[i:i+len(name)]), name) {
			*mon = m + 1
			return i + len(name), true
		}
	}
	return i, false
}

// readZone reads Z, +hh, +hhmm or +hh:mm.
func readZone(b []byte, i int, zone **time.Location) (int, bool) {
	if i < len(b) && b[i] == 'Z' {
		*zone = time.UTC
		return i + 1, true
	}
	if i >= len(b) || b[i] != '+' && b[i] != '-' {
		return i, false
	}
	zh, ok := digits(b, i+1, 2)
	if !ok || zh > 23 {
		return i, false
	}
	j, zm := i+3, 0
	if j < len(b) && b[j] == ':' {
		j++
	}
	if m, ok := digits(b, j, 2); ok && m <= 59 {
		zm, j = m, j+2
	} else {
		j = i + 3
	}
	off := zh*3600 + zm*60
	if b[i] == '-' {
		off = -off
	}
	*zone = fixedZone(off)
	return j, true
}

func isLetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

func isAlnum(c byte) bool { return isDigit(c) || isLetter(c) }
