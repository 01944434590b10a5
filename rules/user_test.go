package rules

import (
	"regexp"
	"strings"
	"testing"
)

func mustCompileUser(t testing.TB) *regexp.Regexp {
	t.Helper()
	re, err := regexp.Compile("^" + UserPattern + "$")
	if err != nil {
		t.Fatal(err)
	}
	return re
}

func TestUserPlaceholder(t *testing.T) {
	f, err := CompileFilter("sasl", FilterSpec{
		FailRegex: []string{`^\S+ postfix/smtpd\[\d+\]: warning: [\w.-]+\[<HOST>\]: SASL (?:LOGIN|PLAIN) authentication failed: \S+, sasl_username=<USER>$`},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !f.CapturesUser() || f.CapturesBucket() {
		t.Errorf("CapturesUser %v, CapturesBucket %v", f.CapturesUser(), f.CapturesBucket())
	}
	if got := string(f.Literal()); got != " authentication failed: " {
		t.Errorf("derived literal = %q", got)
	}
	const head = `mx postfix/smtpd[12]: warning: unknown[198.51.100.9]: SASL LOGIN authentication failed: UGFzc3dvcmQ6, sasl_username=`
	tests := []struct{ login, user string }{
		{"alice@Example.ORG", "alice@example.org"},
		{"bob", "bob"},
		{"a b", ""}, // no match: the regex ends at $
		{"x\u202ey", ""},
		{strings.Repeat("a", MaxAccountLen+1), "-"}, // an event, but no key
	}
	for _, tt := range tests {
		m, ok := f.Match([]byte(head + tt.login))
		switch {
		case tt.user == "" && ok:
			t.Errorf("%q: an event %+v", tt.login, m)
		case tt.user == "-" && (!ok || m.User != ""):
			t.Errorf("%q: %v %+v, want an event without a user", tt.login, ok, m)
		case tt.user != "" && tt.user != "-" && (!ok || m.User != tt.user || m.Addr.String() != "198.51.100.9"):
			t.Errorf("%q: %v %+v, want user %q", tt.login, ok, m, tt.user)
		}
	}
}

func TestUserPlaceholderErrors(t *testing.T) {
	tests := []struct{ regex, want string }{
		{`<HOST> <USER> <USER>`, "at most one <USER>"},
		{`<HOST> (?P<user>\S+)`, "reserved for <USER>"},
		{`<HOST> (?P<user>\S+) <USER>`, "reserved for <USER>"},
		{`(?P<host>\S+) <HOST>`, "exactly one <HOST>"},
		{`<USER> only`, "missing <HOST>"},
	}
	for _, tt := range tests {
		_, err := CompileFilter("x", FilterSpec{FailRegex: []string{tt.regex}})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: err = %v, want %q", tt.regex, err, tt.want)
		}
	}
}

func TestBuiltinCaptures(t *testing.T) {
	for _, tt := range []struct {
		name         string
		user, bucket bool
	}{{"rspamd-ratelimit", true, true}, {"postfix-ratelimit", false, true}} {
		f, err := BuiltinFilter(tt.name)
		if err != nil {
			t.Fatal(err)
		}
		if f.CapturesUser() != tt.user || f.CapturesBucket() != tt.bucket {
			t.Errorf("%s: CapturesUser %v, CapturesBucket %v", tt.name, f.CapturesUser(), f.CapturesBucket())
		}
	}
}
