package rules

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxAccountLen is the longest account name (in bytes, after
// normalisation) that becomes a key. Real SASL logins and envelope senders
// are far shorter (an address is at most 254 bytes); anything longer is
// padding meant to bloat the strike table or the rspamd map.
const MaxAccountLen = 256

// UserPattern is what <USER> expands to: one run of the characters
// NormalizeAccount accepts. It stops at the first space, comma, quote or
// angle bracket, so a login never swallows the field that follows it; the
// length is checked by NormalizeAccount, not here, which keeps the compiled
// regex small.
const UserPattern = `(?P<user>[^\p{Z}\p{Cc}\p{Cf},"#<>\\']+)`

// accountForbidden are the printable characters an account may not
// contain: the comma, double quote and '#' break rspamd map files and
// CSV-like logs, the angle brackets delimit addresses in the very log lines
// the account is read from, and the backslash and apostrophe are quoting
// characters that no SASL login or address mailjail handles contains.
const accountForbidden = `,"#<>\'`

// NormalizeAccount turns an authenticated login (or an envelope sender
// such as Postfix's from=<...>) into the key mailjail strikes and bans:
// one surrounding pair of <> is dropped and the whole name is lowercased.
// Domains are case-insensitive, and so is rspamd 3.4's "user" map for the
// local part too (verified end to end: a suspended Mallory@example.org
// also rejects mallory@example.org), so one suspension already covers
// every spelling; counting spellings apart would let an attacker whose
// login server ignores case rotate them to stay under maxretry (rspamd's
// own user bucket is keyed on the login as written). Anything that could not be written safely into an
// rspamd map file or a log line is refused instead of cleaned up: a
// cleaned-up name would be a different account.
func NormalizeAccount(s string) (string, error) {
	if len(s) >= 2 && s[0] == '<' && s[len(s)-1] == '>' {
		s = s[1 : len(s)-1]
	}
	if s == "" {
		return "", errors.New("empty account name")
	}
	if len(s) > 4*MaxAccountLen {
		// Too long to be worth lowercasing; reported like any long name.
		return "", fmt.Errorf("account name of %d bytes is longer than %d", len(s), MaxAccountLen)
	}
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("account name %q is not valid UTF-8", s)
	}
	s = strings.ToLower(s)
	if len(s) > MaxAccountLen {
		return "", fmt.Errorf("account name of %d bytes is longer than %d", len(s), MaxAccountLen)
	}
	for _, r := range s {
		switch {
		case unicode.IsSpace(r):
			return "", fmt.Errorf("account name %q contains whitespace %U", s, r)
		case unicode.IsControl(r), unicode.Is(unicode.Cf, r):
			return "", fmt.Errorf("account name %q contains control or format character %U", s, r)
		case strings.ContainsRune(accountForbidden, r):
			return "", fmt.Errorf("account name %q contains %q", s, r)
		}
	}
	return s, nil
}
