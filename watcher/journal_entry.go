package watcher

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// journalEntry is the part of one `journalctl -o json` entry that a log
// line is made of. Values are raw bytes: journald does not promise UTF-8.
type journalEntry struct {
	Cursor     string
	Realtime   int64 // microseconds since the epoch; valid when HasTime
	HasTime    bool
	Hostname   []byte
	Identifier []byte // SYSLOG_IDENTIFIER, empty when absent
	Comm       []byte // _COMM, the fallback identifier
	PID        []byte // SYSLOG_PID, else _PID
	Unit       []byte // _SYSTEMD_UNIT
	Message    []byte
}

// journalFields are the fields journalctl is asked to print
// (--output-fields); __CURSOR and __REALTIME_TIMESTAMP come anyway. Asking
// for only these keeps each JSON line close to the size of its message.
var journalFields = []string{"MESSAGE", "SYSLOG_IDENTIFIER", "SYSLOG_PID", "_PID", "_COMM", "_HOSTNAME", "_SYSTEMD_UNIT"}

// rawJournalEntry receives the JSON object; fields stay raw because each
// may be a string, an array of byte values (not valid UTF-8, or not
// printable), null (too large without --all), or an array of those (a field
// that occurs several times in one entry).
type rawJournalEntry struct {
	Cursor     json.RawMessage `json:"__CURSOR"`
	Realtime   json.RawMessage `json:"__REALTIME_TIMESTAMP"`
	Hostname   json.RawMessage `json:"_HOSTNAME"`
	Identifier json.RawMessage `json:"SYSLOG_IDENTIFIER"`
	Comm       json.RawMessage `json:"_COMM"`
	SyslogPID  json.RawMessage `json:"SYSLOG_PID"`
	PID        json.RawMessage `json:"_PID"`
	Unit       json.RawMessage `json:"_SYSTEMD_UNIT"`
	Message    json.RawMessage `json:"MESSAGE"`
}

// errNoCursor marks an entry that cannot be placed in the journal.
var errNoCursor = errors.New("entry has no __CURSOR")

// parseJournalEntry decodes one line of `journalctl -o json`. Missing
// fields are left empty; only a line that is not a JSON object, or an entry
// without a cursor, is an error: without a cursor there is no position to
// resume from.
func parseJournalEntry(line []byte) (journalEntry, error) {
	var raw rawJournalEntry
	if err := json.Unmarshal(line, &raw); err != nil {
		return journalEntry{}, fmt.Errorf("journal entry: %w", err)
	}
	var e journalEntry
	cur, ok := journalValue(raw.Cursor)
	if !ok || len(cur) == 0 {
		return journalEntry{}, errNoCursor
	}
	e.Cursor = string(cur)
	if ts, ok := journalValue(raw.Realtime); ok {
		// Beyond year 9999 the layout would need more digits; such a
		// clock is broken and the read time serves better.
		if us, err := strconv.ParseInt(string(ts), 10, 64); err == nil && us >= 0 && us < maxJournalMicros {
			e.Realtime, e.HasTime = us, true
		}
	}
	e.Hostname, _ = journalValue(raw.Hostname)
	e.Identifier, _ = journalValue(raw.Identifier)
	e.Comm, _ = journalValue(raw.Comm)
	if pid, ok := journalValue(raw.SyslogPID); ok && len(pid) > 0 {
		// SYSLOG_PID is what the program put in its syslog line, which
		// is what a log file would show; _PID is the sender.
		e.PID = pid
	} else {
		e.PID, _ = journalValue(raw.PID)
	}
	e.Unit, _ = journalValue(raw.Unit)
	e.Message, _ = journalValue(raw.Message)
	return e, nil
}

// journalValue decodes one field value: a string, an array of byte values,
// or (for a field repeated in the entry) an array of those, of which the
// first is taken. ok is false for an absent, null or undecodable value.
func journalValue(raw json.RawMessage) (v []byte, ok bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil, false
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, false
		}
		return []byte(s), true
	case '[':
		var elems []json.RawMessage
		if err := json.Unmarshal(raw, &elems); err != nil {
			return nil, false
		}
		if len(elems) == 0 {
			return []byte{}, true
		}
		if first := bytes.TrimSpace(elems[0]); len(first) > 0 && (first[0] == '"' || first[0] == '[' || first[0] == 'n') {
			// Several values: a string, a byte array or null each.
			if first[0] == '[' {
				return byteArray(first)
			}
			return journalValue(first)
		}
		return byteArray(raw)
	}
	return nil, false
}

// byteArray decodes [97,98,...] into bytes; a number outside 0..255 makes
// encoding/json fail, and the value is then treated as absent.
func byteArray(raw json.RawMessage) ([]byte, bool) {
	var nums []uint8
	if err := json.Unmarshal(raw, &nums); err != nil {
		return nil, false
	}
	return nums, true
}

// maxJournalMicros is 10000-01-01T00:00:00Z in microseconds.
const maxJournalMicros = 253402300800_000000

// journalTimeLayout is RFC 3339 with microseconds, the journal's
// resolution, and a numeric zone, as rsyslog's high-precision format:
// rules.ParseTime reads it, and the offset makes it independent of the
// daemon's time zone setting.
const journalTimeLayout = "2006-01-02T15:04:05.000000-07:00"

// newlineEscape replaces a newline inside a message, rsyslog's way. A Line
// holds one line; splitting a message into several lines that each get the
// program's prefix would let text inside a message pose as a line of its
// own, so the message stays one line.
const newlineEscape = "#012"

// journalLineLen is the length appendJournalLine will produce, computed
// first so that an over-long line is skipped without being built.
func journalLineLen(e *journalEntry) int {
	n := len(journalTimeLayout) + 1 + fieldLen(e.Hostname) + 1 + fieldLen(journalIdent(e)) + 2
	if len(e.PID) > 0 {
		n += len(e.PID) + 2
	}
	n += len(e.Message) + (len(newlineEscape)-1)*bytes.Count(e.Message, []byte{'\n'})
	return n
}

func fieldLen(b []byte) int {
	if len(b) == 0 {
		return 1 // "-"
	}
	return len(b)
}

// journalIdent is the program name of the syslog prefix: the syslog
// identifier, else the command name.
func journalIdent(e *journalEntry) []byte {
	if len(e.Identifier) > 0 {
		return e.Identifier
	}
	return e.Comm
}

// appendJournalLine renders e as the syslog line a file would hold:
//
//	<RFC 3339 time> <hostname> <identifier>[<pid>]: <message>
//
// so that the filters written for log files apply unchanged. An entry
// without a time gets read (the clock when it was read). Host, identifier
// and pid are made free of blanks and control bytes, since filters split
// the prefix on spaces; an absent one is "-", and "[pid]" is left out
// without a pid, as syslog does.
func appendJournalLine(dst []byte, e *journalEntry, read time.Time) []byte {
	t := read.UTC()
	if e.HasTime {
		t = time.UnixMicro(e.Realtime).UTC()
	}
	dst = t.AppendFormat(dst, journalTimeLayout)
	dst = append(dst, ' ')
	dst = appendField(dst, e.Hostname)
	dst = append(dst, ' ')
	dst = appendField(dst, journalIdent(e))
	if len(e.PID) > 0 {
		dst = append(dst, '[')
		dst = appendField(dst, e.PID)
		dst = append(dst, ']')
	}
	dst = append(dst, ':', ' ')
	for m := e.Message; len(m) > 0; {
		i := bytes.IndexByte(m, '\n')
		if i < 0 {
			dst = append(dst, m...)
			break
		}
		dst = append(dst, m[:i]...)
		dst = append(dst, newlineEscape...)
		m = m[i+1:]
	}
	return dst
}

// appendField appends a prefix field with blanks and control bytes
// replaced by '_', or "-" when it is empty.
func appendField(dst, b []byte) []byte {
	if len(b) == 0 {
		return append(dst, '-')
	}
	for _, c := range b {
		if c <= ' ' || c == 0x7f {
			c = '_'
		}
		dst = append(dst, c)
	}
	return dst
}
