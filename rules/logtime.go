package rules

import (
	"time"
)

// Timestamps come from the log line, not from the moment mailjail reads
// it, so that a strike's findtime window is the event's own time even when
// lines are read late (after a restart, or in a replay of old logs).
//
// ParseTime recognises, at the start of a line:
//
//	2026-11-25 03:22:23            rspamd (local time, optional .fraction)
//	2026-11-25T03:22:23.123+01:00  RFC 3339 / rsyslog high precision
//	Nov 25 03:22:23                classic syslog (no year)
//	Nov  5 03:22:23, Nov 5 03:22:23  syslog, day padded with a space or not
//
// Other layouts need a filter's datepattern (DatePattern).
//
// Zone-less formats are read in loc. Syslog's missing year is taken from
// ref (normally the read time) and moved back a year when that would put
// the event more than a month in the future, so December lines read in
// January land in the right year.
//
// It returns the time and the number of bytes it used, including one
// following space. A line that starts with a timestamp of one of these
// shapes whose values are impossible (2026-13-45 99:99:99, a year before
// MinYear or after MaxYear, a syslog date without a reference time)
// returns n > 0 and ok = false: it has no usable time, so the caller uses
// the read time, and the filter still sees the text after the date. A line
// without such a shape returns n = 0, ok = false. It does not allocate.
func ParseTime(line []byte, loc *time.Location, ref time.Time) (t time.Time, n int, ok bool) {
	if len(line) >= 19 && isDigit(line[0]) && line[4] == '-' {
		return parseISO(line, loc)
	}
	if len(line) >= 14 && line[3] == ' ' {
		return parseSyslog(line, loc, ref)
	}
	return time.Time{}, 0, false
}

// MinYear and MaxYear bound the years a log timestamp may carry. Outside
// them a date is taken as garbage (the read time is used instead): a line
// dated 9999 would otherwise overflow the time arithmetic of bans.
const (
	MinYear = 1970
	MaxYear = 2100
)

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

// digits reads a fixed-width decimal number at b[i:i+w].
func digits(b []byte, i, w int) (int, bool) {
	if i+w > len(b) {
		return 0, false
	}
	v := 0
	for _, c := range b[i : i+w] {
		if !isDigit(c) {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

func parseISO(b []byte, loc *time.Location) (time.Time, int, bool) {
	year, ok1 := digits(b, 0, 4)
	mon, ok2 := digits(b, 5, 2)
	day, ok3 := digits(b, 8, 2)
	hh, ok4 := digits(b, 11, 2)
	mm, ok5 := digits(b, 14, 2)
	ss, ok6 := digits(b, 17, 2)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || b[7] != '-' || b[13] != ':' || b[16] != ':' ||
		(b[10] != ' ' && b[10] != 'T') {
		return time.Time{}, 0, false
	}
	i := 19
	nsec := 0
	if i < len(b) && (b[i] == '.' || b[i] == ',') {
		i++
		scale := 100000000
		start := i
		for i < len(b) && isDigit(b[i]) {
			if scale > 0 {
				nsec += int(b[i]-'0') * scale
				scale /= 10
			}
			i++
		}
		if i == start {
			return time.Time{}, 0, false
		}
	}
	zone := loc
	if i < len(b) {
		switch c := b[i]; {
		case c == 'Z':
			zone = time.UTC
			i++
		case c == '+' || c == '-':
			zh, okh := digits(b, i+1, 2)
			j := i + 3
			if j < len(b) && b[j] == ':' {
				j++
			}
			zm, okm := digits(b, j, 2)
			if !okh || !okm || zh > 23 || zm > 59 {
				return time.Time{}, 0, false
			}
			off := zh*3600 + zm*60
			if c == '-' {
				off = -off
			}
			zone = fixedZone(off)
			i = j + 2
		}
	}
	if i < len(b) {
		if b[i] != ' ' {
			return time.Time{}, 0, false
		}
		i++
	}
	if !validDate(year, mon, day) || !validClock(mon, day, hh, mm, ss) {
		return time.Time{}, i, false
	}
	return time.Date(year, time.Month(mon), day, hh, mm, ss, nsec, zone), i, true
}

// fixedZone caches the common offsets so that parsing a zoned timestamp
// does not allocate a *time.Location per line.
func fixedZone(off int) *time.Location {
	if off == 0 {
		return time.UTC
	}
	if off%900 == 0 && off >= -14*3600 && off <= 14*3600 {
		return zoneCache[(off+14*3600)/900]
	}
	return time.FixedZone("", off)
}

var zoneCache = func() []*time.Location {
	zs := make([]*time.Location, 28*4+1)
	for i := range zs {
		zs[i] = time.FixedZone("", i*900-14*3600)
	}
	return zs
}()

var months = [12]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

// parseSyslog reads "Mmm DD HH:MM:SS", with the day zero-padded,
// space-padded or not padded at all.
func parseSyslog(b []byte, loc *time.Location, ref time.Time) (time.Time, int, bool) {
	mon := 0
	for i, m := range months {
		if b[0] == m[0] && b[1] == m[1] && b[2] == m[2] {
			mon = i + 1
			break
		}
	}
	if mon == 0 {
		return time.Time{}, 0, false
	}
	var day, i int
	switch {
	case b[4] == ' ' && isDigit(b[5]): // "Nov  5"
		day, i = int(b[5]-'0'), 6
	case isDigit(b[4]) && b[5] == ' ': // "Nov 5"
		day, i = int(b[4]-'0'), 5
	default: // "Nov 05", "Nov 25"
		d, ok := digits(b, 4, 2)
		if !ok {
			return time.Time{}, 0, false
		}
		day, i = d, 6
	}
	hh, ok1 := digits(b, i+1, 2)
	mm, ok2 := digits(b, i+4, 2)
	ss, ok3 := digits(b, i+7, 2)
	if !(ok1 && ok2 && ok3) || b[i] != ' ' || b[i+3] != ':' || b[i+6] != ':' {
		return time.Time{}, 0, false
	}
	i += 9
	if i < len(b) {
		if b[i] != ' ' {
			return time.Time{}, 0, false
		}
		i++
	}
	if ref.IsZero() || !validClock(mon, day, hh, mm, ss) {
		// No year can be inferred without a reference (the core takes no
		// time of its own): such a line is one without a usable time.
		return time.Time{}, i, false
	}
	ref = ref.In(loc)
	year := inferYear(ref, mon, day, hh, mm, ss)
	if !validDate(year, mon, day) {
		return time.Time{}, i, false
	}
	return time.Date(year, time.Month(mon), day, hh, mm, ss, 0, loc), i, true
}

// inferYear places a date without a year (syslog's) near ref: in ref's
// year, or the year before when that would put it more than a month after
// ref (December lines read in January), or the year after when it would be
// more than 11 months before (a January line read in late December).
func inferYear(ref time.Time, mon, day, hh, mm, ss int) int {
	y := ref.Year()
	t := time.Date(y, time.Month(mon), day, hh, mm, ss, 0, ref.Location())
	switch {
	case t.Sub(ref) > 31*24*time.Hour:
		return y - 1
	case ref.Sub(t) > 334*24*time.Hour:
		return y + 1
	}
	return y
}

func validClock(mon, day, hh, mm, ss int) bool {
	return mon >= 1 && mon <= 12 && day >= 1 && day <= 31 && hh <= 23 && mm <= 59 && ss <= 60
}

// validDate rejects days a month does not have (February 30th) and years
// outside MinYear..MaxYear; time.Date would quietly normalise them.
func validDate(year, mon, day int) bool {
	if year < MinYear || year > MaxYear || mon < 1 || mon > 12 || day < 1 {
		return false
	}
	n := monthDays[mon-1]
	if mon == 2 && year%4 == 0 && (year%100 != 0 || year%400 == 0) {
		n = 29
	}
	return day <= n
}

var monthDays = [12]int{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}
