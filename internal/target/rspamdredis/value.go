package rspamdredis

import (
	"net/url"
	"strings"
	"time"
)

// A field's value says whose the entry is and until when, since Redis
// 7.0 (Debian 12) has no expiry per hash field:
//
//	1 until=2026-12-02T10:00:00Z owner=mx1 jail=rspamd-ratelimit
//	1 until=permanent owner=mx1 jail=manual
//
// The leading "1" is for rspamd: its multimap reads a map value as
// "[symbol][:score]", so a value opening with "until" would be taken for
// a symbol named until (rspamd then logs "unknown symbol until" and
// reports that instead of the rule's own); a bare number is the score
// factor, 1 as for a map entry without a value. After it come key=value
// words in any order, unknown keys ignored (room for later versions);
// owner and jail are query-escaped, so neither can hold a space.
type value struct {
	Until time.Time // zero: permanent
	Owner string
	Jail  string
}

const permanent = "permanent"

// format is the text of v, with Until to the second in UTC.
func (v value) format() string {
	var b strings.Builder
	b.Grow(64)
	b.WriteString("1 until=")
	if v.Until.IsZero() {
		b.WriteString(permanent)
	} else {
		b.WriteString(v.Until.UTC().Format(time.RFC3339))
	}
	b.WriteString(" owner=")
	b.WriteString(url.QueryEscape(v.Owner))
	b.WriteString(" jail=")
	b.WriteString(url.QueryEscape(v.Jail))
	return b.String()
}

// parseValue reads a value format wrote. ok is false for anything else:
// a field someone wrote by hand (HSET KEY ADDR ""), a value without an
// owner or an until. Such fields are nobody's and never expire: mailjail
// leaves them alone.
func parseValue(s string) (v value, ok bool) {
	words := strings.Fields(s)
	if len(words) == 0 || words[0] != "1" {
		return value{}, false
	}
	var haveUntil, haveOwner bool
	for _, w := range words[1:] {
		k, x, found := strings.Cut(w, "=")
		if !found {
			return value{}, false
		}
		switch k {
		case "until":
			if haveUntil {
				return value{}, false
			}
			haveUntil = true
			if x == permanent {
				continue
			}
			t, err := time.Parse(time.RFC3339, x)
			// An offset can move a year of 0000 or 9999 out of the
			// four digits format writes.
			if t = t.UTC(); err != nil || t.Year() < 1 || t.Year() > 9999 || t.IsZero() {
				return value{}, false
			}
			v.Until = t
		case "owner", "jail":
			u, err := url.QueryUnescape(x)
			if err != nil {
				return value{}, false
			}
			if k == "jail" {
				v.Jail = u
				continue
			}
			if haveOwner || u == "" {
				return value{}, false
			}
			haveOwner = true
			v.Owner = u
		}
	}
	if !haveUntil || !haveOwner {
		return value{}, false
	}
	return v, true
}

// outlasts reports whether a ban until a ends after one until b (zero
// is permanent).
func outlasts(a, b time.Time) bool {
	switch {
	case a.IsZero():
		return !b.IsZero()
	case b.IsZero():
		return false
	}
	return a.After(b)
}
