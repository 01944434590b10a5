package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/mailjail/mailjail/internal/config"
)

// log_format picks logfmt or JSON; under journald (JOURNAL_STREAM) there
// is no time in either, since the journal records it; the level applies.
func TestNewLogger(t *testing.T) {
	for _, tc := range []struct {
		name, format, journal string
		wantTime              bool
	}{
		{"text on a terminal", config.LogText, "", true},
		{"text under journald", config.LogText, "8:1234", false},
		{"json", config.LogJSON, "", true},
		{"json under journald", config.LogJSON, "8:1234", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("JOURNAL_STREAM", tc.journal)
			var buf bytes.Buffer
			log := newLogger(&buf, "warn", tc.format)
			log.Info("not shown")
			log.Warn("ban", "addr", "192.0.2.1", "jail", "j")
			out := buf.String()
			if strings.Count(out, "\n") != 1 || strings.Contains(out, "not shown") {
				t.Fatalf("want the warning alone, got %q", out)
			}
			var hasTime bool
			if tc.format == config.LogJSON {
				var m map[string]any
				if err := json.Unmarshal([]byte(out), &m); err != nil {
					t.Fatalf("not JSON: %q: %v", out, err)
				}
				if m["msg"] != "ban" || m["addr"] != "192.0.2.1" || m["level"] != "WARN" {
					t.Errorf("fields: %v", m)
				}
				_, hasTime = m["time"]
			} else {
				if !strings.Contains(out, `level=WARN msg=ban addr=192.0.2.1 jail=j`) {
					t.Errorf("logfmt: %q", out)
				}
				hasTime = strings.HasPrefix(out, "time=")
			}
			if hasTime != tc.wantTime {
				t.Errorf("time shown %v, want %v: %q", hasTime, tc.wantTime, out)
			}
		})
	}
}
