package config

import "testing"

// dbmaxmatches (issue 16): the default keeps the newest line, 0 keeps
// none, a negative count is rejected at its line.
func TestDBMaxMatches(t *testing.T) {
	for _, tc := range []struct {
		toml string
		want int
	}{
		{okJail, DefaultDBMaxMatches},
		{"[global]\ndbmaxmatches = 0\n" + okJail, 0},
		{"[global]\ndbmaxmatches = 10\n" + okJail, 10},
	} {
		c, got := validate(t, tc.toml)
		if got != "" || c.Global.DBMaxMatches != tc.want {
			t.Errorf("%q: dbmaxmatches %d, %s; want %d", tc.toml, c.Global.DBMaxMatches, got, tc.want)
		}
	}
	wantErrors(t, "[global]\ndbmaxmatches = -1\n"+okJail, "t.toml:2: global.dbmaxmatches: must be 0 or more, got -1")
}
