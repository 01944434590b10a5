package main

import (
	"io"
	"slices"
	"testing"
)

func TestPermuteArgs(t *testing.T) {
	app := newApp(io.Discard, io.Discard)
	tests := []struct{ in, want []string }{
		{[]string{"mj", "run", "--config", "/c"}, []string{"mj", "--config", "/c", "run"}},
		{[]string{"mj", "-c", "/c", "run"}, []string{"mj", "-c", "/c", "run"}},
		{[]string{"mj", "test-filter", "f", "x.log", "--json", "--config=/c"}, []string{"mj", "--config=/c", "test-filter", "--json", "f", "x.log"}},
		// check has no --config of its own (it shadowed the global one).
		{[]string{"mj", "check", "--config", "/c"}, []string{"mj", "--config", "/c", "check"}},
		{[]string{"mj", "check", "-c", "/c"}, []string{"mj", "-c", "/c", "check"}},
		{[]string{"mj", "check", "/c"}, []string{"mj", "check", "/c"}},
		{[]string{"mj", "ban", "192.0.2.1", "--for", "1d", "--reason", "x y"}, []string{"mj", "ban", "--for", "1d", "--reason", "x y", "192.0.2.1"}},
		{[]string{"mj", "unban", "--", "-weird"}, []string{"mj", "unban", "--", "-weird"}},
		{[]string{"mj", "nosuch", "--x"}, []string{"mj", "nosuch", "--x"}},
		{[]string{"mj", "allow", "add", "a@b.org", "--reason", "x y", "-c", "/c"}, []string{"mj", "-c", "/c", "allow", "add", "--reason", "x y", "a@b.org"}},
		{[]string{"mj", "allow", "list", "--json"}, []string{"mj", "allow", "list", "--json"}},
		// A word that is no subcommand is an argument (allow reports it).
		{[]string{"mj", "allow", "nope", "--json"}, []string{"mj", "allow", "--json", "nope"}},
		{[]string{"mj", "suspend", "m@example.org", "--for", "7d"}, []string{"mj", "suspend", "--for", "7d", "m@example.org"}},
	}
	for _, tt := range tests {
		if got := permuteArgs(app, tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("%q -> %q, want %q", tt.in, got, tt.want)
		}
	}
}
