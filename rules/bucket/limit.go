package bucket

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ErrInvalidLimit is wrapped by every error from ParseRate, ParseBurst and
// ParseLimit, so callers (the config validator) can tell a bad limit from
// other failures with errors.Is and still print the precise message.
var ErrInvalidLimit = errors.New("invalid limit")

// Rate is a leak rate written the way rspamd's ratelimit module accepts it:
// Count messages per Per. Keeping the period (rather than only the quotient)
// lets the table derive a default clip of one period's worth of messages.
type Rate struct {
	Count float64       // messages leaked per period, > 0
	Per   time.Duration // the period, > 0
}

// PerSecond returns the leak rate in messages per second.
func (r Rate) PerSecond() float64 {
	return r.Count / r.Per.Seconds()
}

// String renders the rate in a form ParseRate accepts.
func (r Rate) String() string {
	return strconv.FormatFloat(r.Count, 'g', -1, 64) + " / " + formatPeriod(r.Per)
}

func formatPeriod(d time.Duration) string {
	switch {
	case d%(24*time.Hour) == 0:
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "min"
	default:
		return strconv.FormatFloat(d.Seconds(), 'g', -1, 64) + "s"
	}
}

// Limit is one rspamd bucket: Burst messages of capacity leaking at Rate.
type Limit struct {
	Rate  Rate
	Burst float64 // capacity, > 0
}

// ParseLimit parses a rate and a burst as written in rspamd's ratelimit.conf
// (rate = "30 / 60min"; burst = 100;).
func ParseLimit(rate, burst string) (Limit, error) {
	r, err := ParseRate(rate)
	if err != nil {
		return Limit{}, err
	}
	b, err := ParseBurst(burst)
	if err != nil {
		return Limit{}, err
	}
	return Limit{Rate: r, Burst: b}, nil
}

// Validate reports why l cannot drive a bucket, or nil.
func (l Limit) Validate() error {
	if !(l.Rate.Count > 0) || math.IsInf(l.Rate.Count, 0) {
		return fmt.Errorf("rate count %v: must be a positive finite number: %w", l.Rate.Count, ErrInvalidLimit)
	}
	if l.Rate.Per <= 0 {
		return fmt.Errorf("rate period %v: must be positive: %w", l.Rate.Per, ErrInvalidLimit)
	}
	if !(l.Burst > 0) || math.IsInf(l.Burst, 0) {
		return fmt.Errorf("burst %v: must be a positive finite number: %w", l.Burst, ErrInvalidLimit)
	}
	return nil
}

// ParseRate parses rspamd's rate syntax: "COUNT / PERIOD" where COUNT may
// carry a k, m or g suffix (thousand, million, billion) and PERIOD is a
// number with an optional unit s, m or min, h, d (seconds when omitted).
// A bare number, as in rspamd's numeric rate option, is messages per second.
//
// rspamd's LPEG grammar silently ignores anything after the unit letter
// ("60min" is 60 'm' plus an ignored "in"); here only the spellings listed
// above are accepted, so a typo such as "1 / 1mon" is an error instead of
// quietly meaning one minute.
func ParseRate(s string) (Rate, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return Rate{}, fmt.Errorf("parse rate %q: empty: %w", s, ErrInvalidLimit)
	}
	countStr, periodStr, hasSlash := strings.Cut(in, "/")
	countStr = strings.TrimSpace(countStr)
	count, err := parseSuffixed(countStr)
	if err != nil {
		return Rate{}, fmt.Errorf("parse rate %q: count: %w", s, err)
	}
	if count <= 0 {
		return Rate{}, fmt.Errorf("parse rate %q: count %s must be positive (a zero rate never leaks): %w", s, countStr, ErrInvalidLimit)
	}
	per := time.Second
	if hasSlash {
		per, err = parsePeriod(strings.TrimSpace(periodStr))
		if err != nil {
			return Rate{}, fmt.Errorf("parse rate %q: period: %w", s, err)
		}
	}
	return Rate{Count: count, Per: per}, nil
}

// ParseBurst parses a bucket capacity: a positive number with an optional
// k, m or g suffix, like rspamd's dehumanize_number (its byte suffixes kb,
// mb, gb are not accepted: a burst counts messages, not bytes).
func ParseBurst(s string) (float64, error) {
	in := strings.TrimSpace(s)
	b, err := parseSuffixed(in)
	if err != nil {
		return 0, fmt.Errorf("parse burst %q: %w", s, err)
	}
	if b <= 0 {
		return 0, fmt.Errorf("parse burst %q: must be positive: %w", s, ErrInvalidLimit)
	}
	return b, nil
}

// parseSuffixed parses NUMBER[k|m|g].
func parseSuffixed(s string) (float64, error) {
	mult := 1.0
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'k':
			mult, s = 1e3, s[:n-1]
		case 'm':
			mult, s = 1e6, s[:n-1]
		case 'g':
			mult, s = 1e9, s[:n-1]
		}
	}
	v, err := parseDecimal(s)
	if err != nil {
		return 0, err
	}
	return v * mult, nil
}

// parsePeriod parses NUMBER[s|m|min|h|d] into a duration.
func parsePeriod(s string) (time.Duration, error) {
	i := len(s)
	for i > 0 && (s[i-1] < '0' || s[i-1] > '9') && s[i-1] != '.' {
		i--
	}
	num, unit := strings.TrimSpace(s[:i]), strings.TrimSpace(s[i:])
	var scale time.Duration
	switch unit {
	case "", "s":
		scale = time.Second
	case "m", "min":
		scale = time.Minute
	case "h":
		scale = time.Hour
	case "d":
		scale = 24 * time.Hour
	default:
		return 0, fmt.Errorf("unknown unit %q (want s, m, min, h or d): %w", unit, ErrInvalidLimit)
	}
	v, err := parseDecimal(num)
	if err != nil {
		return 0, err
	}
	d := v * float64(scale)
	if !(d >= 1) || d > math.MaxInt64/2 {
		return 0, fmt.Errorf("%q is not a positive period of at most ~146 years: %w", s, ErrInvalidLimit)
	}
	return time.Duration(d), nil
}

// parseDecimal accepts only [+-]digits[.digits] or [+-].digits, the number
// grammar rspamd uses; strconv.ParseFloat alone would also take "NaN",
// "Inf", hex floats and exponents, none of which belong in a mail config.
func parseDecimal(s string) (float64, error) {
	if s == "" {
		return 0, fmt.Errorf("missing number: %w", ErrInvalidLimit)
	}
	body := s
	if body[0] == '+' || body[0] == '-' {
		body = body[1:]
	}
	digits, dots := 0, 0
	for i := 0; i < len(body); i++ {
		switch c := body[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && dots == 0 && i < len(body)-1:
			dots++
		default:
			return 0, fmt.Errorf("%q is not a decimal number: %w", s, ErrInvalidLimit)
		}
	}
	if digits == 0 {
		return 0, fmt.Errorf("%q is not a decimal number: %w", s, ErrInvalidLimit)
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%q is out of range: %w", s, ErrInvalidLimit)
	}
	return v, nil
}
