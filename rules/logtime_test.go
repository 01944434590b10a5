package rules

import (
	"testing"
	"time"
)

func TestParseTime(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip("no tzdata:", err)
	}
	ref := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name, line string
		loc        *time.Location
		ref        time.Time
		want       time.Time
		n          int
	}{
		{"rspamd local", "2026-11-25 03:22:23 #3665(main) x", berlin, ref, time.Date(2026, 11, 25, 3, 22, 23, 0, berlin), 20},
		{"rspamd usec", "2026-11-25 03:22:23.500 #1", time.UTC, ref, time.Date(2026, 11, 25, 3, 22, 23, 5e8, time.UTC), 24},
		{"rfc3339 zone", "2026-11-25T03:22:23.123456+01:00 mx postfix", time.UTC, ref, time.Date(2026, 11, 25, 2, 22, 23, 123456000, time.UTC), 33},
		{"rfc3339 Z", "2026-11-25T03:22:23Z x", berlin, ref, time.Date(2026, 11, 25, 3, 22, 23, 0, time.UTC), 21},
		{"syslog", "Nov 25 03:34:39 mx postfix", time.UTC, ref, time.Date(2026, 11, 25, 3, 34, 39, 0, time.UTC), 16},
		{"syslog padded day", "Nov  5 03:34:39 mx", time.UTC, ref, time.Date(2026, 11, 5, 3, 34, 39, 0, time.UTC), 16},
		{"december read in january", "Dec 31 23:59:59 mx", time.UTC, time.Date(2027, 1, 1, 0, 0, 5, 0, time.UTC), time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC), 16},
		{"january read on new year's eve", "Jan  1 00:00:01 mx", time.UTC, time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC), time.Date(2027, 1, 1, 0, 0, 1, 0, time.UTC), 16},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, n, ok := ParseTime([]byte(tt.line), tt.loc, tt.ref)
			if !ok || !got.Equal(tt.want) || n != tt.n {
				t.Errorf("got %v n=%d ok=%v, want %v n=%d", got, n, ok, tt.want, tt.n)
			}
		})
	}
	for _, bad := range []string{"", "hello world", "2026-13-25 03:22:23 x", "Foo 25 03:34:39 x", "2026-11-25 03:22:23+0x:00", "Nov 25 3:34:39 mx", "2026-11-25X03:22:23 "} {
		if _, _, ok := ParseTime([]byte(bad), time.UTC, ref); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"2026-11-25 03:22:23 x", "Nov 25 03:34:39 mx", "2026-11-25T03:22:23.1+01:00 ", "Dec  1 00:00:00", "Mar 7 02:09:33 x", "2026-13-45 99:99:99 x"} {
		f.Add([]byte(s))
	}
	ref := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, b []byte) {
		tm, n, ok := ParseTime(b, time.UTC, ref)
		if n < 0 || n > len(b) || ok && n == 0 {
			t.Fatalf("n=%d ok=%v for %q", n, ok, b)
		}
		if ok && (tm.Year() < MinYear || tm.Year() > MaxYear+1) {
			t.Fatalf("year %d from %q", tm.Year(), b)
		}
	})
}

func BenchmarkParseTime(b *testing.B) {
	line := []byte("2026-11-25 03:33:42 #3861(rspamd_proxy) <4854e1>; proxy; rspamd_task_write_log")
	ref := time.Now()
	for b.Loop() {
		ParseTime(line, time.Local, ref)
	}
}

// Some syslog set-ups write the day unpadded ("Mar 7"); the date must
// still be cut off, or anchored filters miss the line (issue 11 #28).
func TestSyslogUnpaddedDayParsed(t *testing.T) {
	ref := time.Date(2026, 3, 20, 12, 0, 0, 0, time.UTC)
	line := []byte("Mar 7 02:09:33 mx postfix/smtpd[1]: x")
	got, n, ok := ParseTime(line, time.UTC, ref)
	if !ok || !got.Equal(time.Date(2026, 3, 7, 2, 9, 33, 0, time.UTC)) || string(line[n:]) != "mx postfix/smtpd[1]: x" {
		t.Errorf("got %v %q ok=%v", got, line[n:], ok)
	}
}

// A line that starts with a date-shaped but impossible timestamp has no
// usable time (the read time is used) and the filter sees the text after
// it, as for a line without any date (issue 11 #15); a year such as 9999
// would overflow ban arithmetic (#12).
func TestMalformedTimestampIsCutButNotUsed(t *testing.T) {
	ref := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	tests := []struct{ line, rest string }{
		{"2026-13-45 99:99:99 mx postfix/smtpd[1]: x", "mx postfix/smtpd[1]: x"},
		{"2026-02-30 10:00:00 x", "x"},
		{"9999-01-01T00:00:00Z x", "x"},
		{"1900-01-01 00:00:00 x", "x"},
		{"Nov 45 99:34:39 mx", "mx"},
		{"Feb 30 10:00:00 mx", "mx"},
		{"hello world", "hello world"},
		{"2026-11-25X03:22:23 x", "2026-11-25X03:22:23 x"},
	}
	for _, tt := range tests {
		_, n, ok := ParseTime([]byte(tt.line), time.UTC, ref)
		if ok || tt.line[n:] != tt.rest {
			t.Errorf("%q: ok=%v rest %q, want no time and %q", tt.line, ok, tt.line[n:], tt.rest)
		}
	}
	if _, n, ok := ParseTime([]byte("Nov 25 03:34:39 mx"), time.UTC, time.Time{}); ok || n != 16 {
		t.Errorf("syslog without reference: n=%d ok=%v", n, ok)
	}
}

func TestValidDateKnowsMonthLengths(t *testing.T) {
	for y := MinYear; y <= MaxYear; y++ {
		for m := 1; m <= 12; m++ {
			n := time.Date(y, time.Month(m)+1, 0, 0, 0, 0, 0, time.UTC).Day()
			if !validDate(y, m, n) || validDate(y, m, n+1) {
				t.Fatalf("%d-%02d has %d days", y, m, n)
			}
		}
	}
}
