package bucket

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	tests := []struct {
		in        string
		count     float64
		per       time.Duration
		perSecond float64
	}{
		{"30 / 60min", 30, time.Hour, 30.0 / 3600},
		{"1 / 1min", 1, time.Minute, 1.0 / 60},
		{"1 / 1m", 1, time.Minute, 1.0 / 60},
		{"10 / 1h", 10, time.Hour, 10.0 / 3600},
		{"100 / 1d", 100, 24 * time.Hour, 100.0 / 86400},
		{"100/1d", 100, 24 * time.Hour, 100.0 / 86400},
		{"  5 /  30s ", 5, 30 * time.Second, 5.0 / 30},
		{"5 / 30", 5, 30 * time.Second, 5.0 / 30},
		{"1k / 1h", 1000, time.Hour, 1000.0 / 3600},
		{"2.5 / 0.5s", 2.5, 500 * time.Millisecond, 5},
		{"3", 3, time.Second, 3},
		{"0.5", 0.5, time.Second, 0.5},
		{"1 / 1.5h", 1, 90 * time.Minute, 1.0 / 5400},
	}
	for _, tc := range tests {
		r, err := ParseRate(tc.in)
		if err != nil {
			t.Errorf("ParseRate(%q): %v", tc.in, err)
			continue
		}
		if r.Count != tc.count || r.Per != tc.per {
			t.Errorf("ParseRate(%q) = %+v, want count %v per %v", tc.in, r, tc.count, tc.per)
		}
		if got := r.PerSecond(); math.Abs(got-tc.perSecond) > 1e-15 {
			t.Errorf("ParseRate(%q).PerSecond() = %v, want %v", tc.in, got, tc.perSecond)
		}
		// String must round-trip.
		back, err := ParseRate(r.String())
		if err != nil || back != r {
			t.Errorf("ParseRate(%q).String() = %q, reparsed %+v, %v", tc.in, r.String(), back, err)
		}
	}
}

func TestParseRateErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "empty"},
		{"   ", "empty"},
		{"/ 1h", "count: missing number"},
		{"x / 1h", `count: "x" is not a decimal number`},
		{"0 / 1h", "count 0 must be positive"},
		{"-3 / 1h", "count -3 must be positive"},
		{"1 / 0s", "not a positive period"},
		{"1 / -1h", "not a positive period"},
		{"1 / 1mon", `unknown unit "mon"`},
		{"1 / 1w", `unknown unit "w"`},
		{"1 / h", "period: missing number"},
		{"1 /", "period: missing number"},
		{"NaN", "not a decimal number"},
		{"Inf / 1h", "not a decimal number"},
		{"1e3 / 1h", "not a decimal number"},
		{"0x10 / 1h", "not a decimal number"},
		{"1 / 1h / 2", "not a decimal number"},
		{"1. / 1h", "not a decimal number"},
		{"1 / 99999999999d", "not a positive period"},
	}
	for _, tc := range tests {
		_, err := ParseRate(tc.in)
		if err == nil {
			t.Errorf("ParseRate(%q): no error, want %q", tc.in, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "parse rate") {
			t.Errorf("ParseRate(%q) error %q, want it to contain %q", tc.in, err, tc.want)
		}
		if !errors.Is(err, ErrInvalidLimit) {
			t.Errorf("ParseRate(%q) error %q does not wrap ErrInvalidLimit", tc.in, err)
		}
	}
}

func TestParseBurst(t *testing.T) {
	good := map[string]float64{"10": 10, "100": 100, " 1.5 ": 1.5, "2k": 2000, "1m": 1e6, "1g": 1e9, "+7": 7}
	for in, want := range good {
		got, err := ParseBurst(in)
		if err != nil || got != want {
			t.Errorf("ParseBurst(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1", "abc", "10kb", "1e2", "NaN", "k"} {
		if _, err := ParseBurst(in); err == nil || !errors.Is(err, ErrInvalidLimit) || !strings.Contains(err.Error(), "parse burst") {
			t.Errorf("ParseBurst(%q) error = %v, want a wrapped ErrInvalidLimit", in, err)
		}
	}
}

func TestParseLimit(t *testing.T) {
	l, err := ParseLimit("30 / 60min", "100")
	if err != nil || l.Burst != 100 || l.Rate.Per != time.Hour {
		t.Fatalf("ParseLimit = %+v, %v", l, err)
	}
	if _, err := ParseLimit("30 / 60min", "0"); err == nil {
		t.Error("ParseLimit with zero burst: no error")
	}
	if _, err := ParseLimit("30 / 60 fortnights", "1"); err == nil {
		t.Error("ParseLimit with a bad unit: no error")
	}
}
