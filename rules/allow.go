package rules

import (
	"fmt"
	"strings"
)

// AllowList is the rate allow list: senders (user@domain) and domains
// whose mail is never rate limited and whose accounts are never
// suspended. It is about accounts; ignoreip is about client addresses.
type AllowList struct {
	senders map[string]bool
	domains map[string]bool
}

// NormalizeAllowEntry checks an allow-list entry and returns it as it is
// kept: an account as NormalizeAccount gives it, or a domain (written
// "example.org" or "@example.org") in lower case.
func NormalizeAllowEntry(s string) (string, error) {
	if strings.Contains(strings.TrimPrefix(s, "@"), "@") {
		return NormalizeAccount(s)
	}
	d := strings.ToLower(strings.TrimPrefix(s, "@"))
	if d == "" || len(d) > 253 || strings.HasPrefix(d, ".") || strings.HasSuffix(d, ".") || strings.Contains(d, "..") {
		return "", fmt.Errorf("%q is neither a sender (user@domain) nor a domain", s)
	}
	for _, r := range d {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-') {
			return "", fmt.Errorf("domain %q: %q is not allowed in a domain name", s, r)
		}
	}
	return d, nil
}

// NewAllowList builds the list from entries (each normalised first).
func NewAllowList(entries []string) (*AllowList, error) {
	l := &AllowList{senders: map[string]bool{}, domains: map[string]bool{}}
	for _, e := range entries {
		n, err := NormalizeAllowEntry(e)
		if err != nil {
			return nil, err
		}
		if strings.Contains(n, "@") {
			l.senders[n] = true
		} else {
			l.domains[n] = true
		}
	}
	return l, nil
}

// Contains reports whether account (normalised) is allowed: listed
// itself, or its domain is.
func (l *AllowList) Contains(account string) bool {
	if l == nil {
		return false
	}
	if l.senders[account] {
		return true
	}
	i := strings.LastIndexByte(account, '@')
	return i >= 0 && l.domains[account[i+1:]]
}

// AccountBuckets are the rspamd ratelimit buckets keyed by the
// authenticated login: what an account jail strikes on unless it names
// its own buckets.
var AccountBuckets = []string{"user"}
