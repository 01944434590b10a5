package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Duration is a configuration duration: Go's units plus fail2ban's "d"
// (day) and "w" (week), e.g. "10m", "1h30m", "1d", "1w". "permanent" (or
// "-1", fail2ban's spelling) means no end, only where a ban length is meant.
type Duration struct {
	D   time.Duration
	set bool
	// err is a value that did not parse. It is kept for Validate instead of
	// failing the decoder, which would stop at the first bad duration and
	// hide every other problem of the file.
	err error
}

// Permanent is the value of a Duration written as "permanent".
const Permanent = time.Duration(-1)

// MaxDuration is the longest duration accepted (100 years; use
// "permanent" for longer). Beyond it, adding a duration to a time can
// leave the range of time.Time's arithmetic and of the stored times.
const MaxDuration = 36525 * 24 * time.Hour

// UnmarshalText implements encoding.TextUnmarshaler for the TOML decoder.
// It never fails: a bad value is reported by Validate, located.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	*d = Duration{D: v, set: true, err: err}
	return nil
}

// ok reports whether the duration was written and is valid.
func (d *Duration) ok() bool { return d != nil && d.set && d.err == nil }

// MarshalText writes the duration back in the form ParseDuration reads.
func (d Duration) MarshalText() ([]byte, error) { return []byte(FormatDuration(d.D)), nil }

// ParseDuration parses a duration as written in the configuration or on
// the command line. It refuses durations above MaxDuration.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "permanent", "-1":
		return Permanent, nil
	case "":
		return 0, fmt.Errorf("empty duration")
	}
	var total time.Duration
	rest := s
	for rest != "" {
		i := 0
		for i < len(rest) && (rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.') {
			i++
		}
		if i == 0 {
			return 0, fmt.Errorf("invalid duration %q (use e.g. 10m, 1h, 1d, 1w)", s)
		}
		j := i
		for j < len(rest) && (rest[j] < '0' || rest[j] > '9') && rest[j] != '.' {
			j++
		}
		num, err := strconv.ParseFloat(rest[:i], 64)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		var unit time.Duration
		switch rest[i:j] {
		case "w":
			unit = 7 * 24 * time.Hour
		case "d":
			unit = 24 * time.Hour
		case "h":
			unit = time.Hour
		case "m":
			unit = time.Minute
		case "s":
			unit = time.Second
		case "ms":
			unit = time.Millisecond
		default:
			return 0, fmt.Errorf("invalid duration %q: unit %q (use s, m, h, d, w)", s, rest[i:j])
		}
		// Summed in float64 and bounded before any conversion, so that
		// "10000w10000w..." cannot wrap around int64.
		sum := float64(total) + num*float64(unit)
		if sum > float64(MaxDuration) {
			return 0, fmt.Errorf("invalid duration %q: longer than 100 years (use \"permanent\")", s)
		}
		total = time.Duration(sum)
		rest = rest[j:]
	}
	if total <= 0 {
		return 0, fmt.Errorf("invalid duration %q: must be positive", s)
	}
	return total, nil
}

// FormatDuration writes d with the largest whole units ("1w", "1d2h",
// "10m", "permanent").
func FormatDuration(d time.Duration) string {
	if d < 0 {
		return "permanent"
	}
	if d == 0 {
		return "0s"
	}
	var b strings.Builder
	for _, u := range []struct {
		n string
		d time.Duration
	}{{"w", 7 * 24 * time.Hour}, {"d", 24 * time.Hour}, {"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}, {"ms", time.Millisecond}} {
		if d >= u.d {
			fmt.Fprintf(&b, "%d%s", d/u.d, u.n)
			d %= u.d
		}
	}
	return b.String()
}
