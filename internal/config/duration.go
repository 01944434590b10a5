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
}

// Permanent is the value of a Duration written as "permanent".
const Permanent = time.Duration(-1)

// UnmarshalText implements encoding.TextUnmarshaler for the TOML decoder.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration{D: v, set: true}
	return nil
}

// MarshalText writes the duration back in the form ParseDuration reads.
func (d Duration) MarshalText() ([]byte, error) { return []byte(FormatDuration(d.D)), nil }

// ParseDuration parses a duration as written in the configuration or on
// the command line.
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
		total += time.Duration(num * float64(unit))
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
