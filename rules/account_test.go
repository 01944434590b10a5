package rules

import (
	"strings"
	"testing"
)

func TestNormalizeAccount(t *testing.T) {
	long := strings.Repeat("a", MaxAccountLen-len("@example.org")) + "@example.org"
	tests := []struct {
		in, want, err string // err: a part of the error; "" when valid
	}{
		{in: "alice@example.org", want: "alice@example.org"},
		{in: "Alice@Example.ORG", want: "alice@example.org"},
		{in: "<bob@EXAMPLE.net>", want: "bob@example.net"},
		{in: "alice", want: "alice"},
		{in: "a@b@Example.ORG", want: "a@b@example.org"}, // the domain is after the last '@'
		{in: "jürgen@BÜCHER.example", want: "jürgen@bücher.example"},
		{in: "user+tag@example.org", want: "user+tag@example.org"},
		{in: long, want: long},
		{in: long + "x", err: "longer than 256"},
		{in: strings.Repeat("a", 5000), err: "longer than 256"},
		{in: "", err: "empty"},
		{in: "<>", err: "empty"}, // Postfix's null sender
		{in: "<<a@b>>", err: `contains '<'`},
		{in: "<a@b", err: `contains '<'`},
		{in: "a b@example.org", err: "whitespace"},
		{in: "a\u00a0b@example.org", err: "whitespace"},
		{in: "a@example.org\n", err: "whitespace"},
		{in: "a\x00b", err: "control"},
		{in: "a\x7fb", err: "control"},
		{in: "a\u202eb", err: "format character"}, // right-to-left override
		{in: "a,b@example.org", err: `contains ','`},
		{in: `"a"@example.org`, err: `contains '"'`},
		{in: "a#b", err: `contains '#'`},
		{in: `a\b`, err: `contains '\\'`},
		{in: "o'brien@example.org", err: `contains '\''`},
		{in: "a\xffb", err: "not valid UTF-8"},
		{in: "victim@example.org, user: x", err: "contains ','"},
	}
	for _, tt := range tests {
		got, err := NormalizeAccount(tt.in)
		switch {
		case tt.err == "" && (err != nil || got != tt.want):
			t.Errorf("NormalizeAccount(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("NormalizeAccount(%q) = %q, %v; want an error with %q", tt.in, got, err, tt.err)
		}
	}
}

// FuzzNormalizeAccount: never panics, and what it gives is a fixed point
// that only holds characters UserPattern captures, so that an account a
// log line names and the same account typed by an operator are one key.
func FuzzNormalizeAccount(f *testing.F) {
	for _, s := range []string{"alice@example.org", "<A@B.C>", "a\u0130@\u0130X", "\u023a@\u023a", "<>", "a b", "x@\u212a"} {
		f.Add(s)
	}
	user := mustCompileUser(f)
	f.Fuzz(func(t *testing.T, s string) {
		n, err := NormalizeAccount(s)
		if err != nil {
			return
		}
		if len(n) == 0 || len(n) > MaxAccountLen {
			t.Fatalf("NormalizeAccount(%q) = %q: bad length", s, n)
		}
		again, err := NormalizeAccount(n)
		if err != nil || again != n {
			t.Fatalf("NormalizeAccount(%q) = %q, but again %q, %v", s, n, again, err)
		}
		if m := user.FindString(n); m != n {
			t.Fatalf("UserPattern captures %q of the account %q", m, n)
		}
	})
}
