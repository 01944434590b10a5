package rspamdredis

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

var at = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

func v(until time.Time, owner, jail string) string {
	return value{Until: until, Owner: owner, Jail: jail}.format()
}

// The ownership rules of a Sync, without Redis: what it sets and removes
// given the hash as read.
func TestPlan(t *testing.T) {
	hour := at.Add(time.Hour)
	two := at.Add(2 * time.Hour)
	var perm time.Time
	for _, tc := range []struct {
		name  string
		cur   map[string]string
		want  map[string]value
		set   []string // fields set
		del   []string // fields removed
		added int
	}{
		{name: "empty to one", want: map[string]value{"192.0.2.1": {Until: hour, Jail: "j"}}, set: []string{"192.0.2.1"}, added: 1},
		{name: "same value: nothing",
			cur:  map[string]string{"192.0.2.1": v(hour, "mx1", "j")},
			want: map[string]value{"192.0.2.1": {Until: hour, Jail: "j"}}},
		{name: "own field longer now: rewritten",
			cur:  map[string]string{"192.0.2.1": v(hour, "mx1", "j")},
			want: map[string]value{"192.0.2.1": {Until: two, Jail: "j"}}, set: []string{"192.0.2.1"}},
		{name: "own field shorter now (unban and ban again): rewritten",
			cur:  map[string]string{"192.0.2.1": v(two, "mx1", "j")},
			want: map[string]value{"192.0.2.1": {Until: hour, Jail: "j"}}, set: []string{"192.0.2.1"}},
		{name: "own field no longer wanted: removed",
			cur: map[string]string{"192.0.2.1": v(hour, "mx1", "j")}, del: []string{"192.0.2.1"}},
		{name: "own permanent field no longer wanted: removed",
			cur: map[string]string{"192.0.2.1": v(perm, "mx1", "j")}, del: []string{"192.0.2.1"}},
		{name: "another owner's live field: kept",
			cur: map[string]string{"192.0.2.1": v(hour, "mx2", "j"), "192.0.2.2": v(perm, "mx2", "j")}},
		{name: "another owner's field ended within the grace: kept",
			cur: map[string]string{"192.0.2.1": v(at.Add(-SweepGrace+time.Second), "mx2", "j")}},
		{name: "another owner's field ended longer ago than the grace: swept",
			cur: map[string]string{"192.0.2.1": v(at.Add(-SweepGrace), "mx2", "j")}, del: []string{"192.0.2.1"}},
		{name: "a field written by hand: kept, even when wanted",
			cur:  map[string]string{"192.0.2.1": "", "192.0.2.2": "x", "192.0.2.3": "until=2020-01-01T00:00:00Z owner=mx1"},
			want: map[string]value{"192.0.2.1": {Until: hour}}},
		{name: "another owner's field lasting as long: left to it",
			cur:  map[string]string{"192.0.2.1": v(hour, "mx2", "j"), "192.0.2.2": v(perm, "mx2", "j")},
			want: map[string]value{"192.0.2.1": {Until: hour, Jail: "k"}, "192.0.2.2": {Jail: "k"}}},
		{name: "another owner's field ending first: taken over",
			cur:  map[string]string{"192.0.2.1": v(hour, "mx2", "j"), "192.0.2.2": v(two, "mx2", "j")},
			want: map[string]value{"192.0.2.1": {Until: two, Jail: "k"}, "192.0.2.2": {Jail: "k"}},
			set:  []string{"192.0.2.1", "192.0.2.2"}},
		{name: "another owner's expired field, wanted: taken over",
			cur:  map[string]string{"192.0.2.1": v(at.Add(-time.Hour), "mx2", "j")},
			want: map[string]value{"192.0.2.1": {Until: hour, Jail: "k"}}, set: []string{"192.0.2.1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := plan(tc.cur, tc.want, "mx1", at)
			var set []string
			for i := 0; i < len(d.set); i += 2 {
				f := d.set[i].(string)
				set = append(set, f)
				w := tc.want[f]
				w.Owner = "mx1"
				if d.set[i+1] != w.format() {
					t.Errorf("set %s = %q, want %q", f, d.set[i+1], w.format())
				}
			}
			slices.Sort(set)
			slices.Sort(d.del)
			if !slices.Equal(set, tc.set) || !slices.Equal(d.del, tc.del) || d.added != tc.added {
				t.Fatalf("set %v del %v added %d; want set %v del %v added %d", set, d.del, d.added, tc.set, tc.del, tc.added)
			}
		})
	}
}

func TestExpressible(t *testing.T) {
	for _, tc := range []struct {
		p    string
		want bool
	}{
		{"192.0.2.1/32", true}, {"192.0.2.0/24", true}, {"10.0.0.0/8", true}, {"10.0.0.0/7", false}, {"0.0.0.0/0", false},
		{"2001:db8::1/128", true}, {"2001:db8::/64", true}, {"2001:db8::/63", false}, {"2001:db8::/48", false}, {"::/0", false},
	} {
		if got := Expressible(netip.MustParsePrefix(tc.p)); got != tc.want {
			t.Errorf("Expressible(%s) = %v, want %v", tc.p, got, tc.want)
		}
	}
	if Expressible(netip.Prefix{}) {
		t.Error("the zero prefix is expressible")
	}
}

// field is the text rspamd looks up: the bare address for a single one.
func TestField(t *testing.T) {
	for p, want := range map[string]string{
		"192.0.2.1/32": "192.0.2.1", "192.0.2.0/24": "192.0.2.0/24", "2001:db8::42/128": "2001:db8::42",
		"2001:db8:44::/64": "2001:db8:44::/64", "2001:db8:0:0:1::/80": "2001:db8:0:0:1::/80", "10.0.0.0/8": "10.0.0.0/8",
	} {
		if got := field(netip.MustParsePrefix(p)); got != want {
			t.Errorf("field(%s) = %q, want %q", p, got, want)
		}
	}
}

func TestValueRoundTrip(t *testing.T) {
	for _, in := range []value{
		{Until: at, Owner: "mx1", Jail: "rspamd-ratelimit"},
		{Owner: "mx1.example.org", Jail: "manual"},
		{Until: at, Owner: "a b=c%", Jail: "with space\nand newline"},
		{Until: at, Owner: "mx1"},
	} {
		text := in.format()
		out, ok := parseValue(text)
		if !ok || out != in {
			t.Errorf("parseValue(%q) = %+v, %v; want %+v", text, out, ok, in)
		}
	}
	if got := (value{Until: at, Owner: "mx1", Jail: "j"}).format(); got != "1 until=2026-12-02T10:00:00Z owner=mx1 jail=j" {
		t.Errorf("format = %q", got)
	}
	if got := (value{Owner: "mx1", Jail: "j"}).format(); got != "1 until=permanent owner=mx1 jail=j" {
		t.Errorf("format = %q", got)
	}
}

func TestParseValueRejects(t *testing.T) {
	for _, s := range []string{
		"", "x", "1", "until=permanent owner=mx1", "1 until=permanent", "1 owner=mx1",
		"1 until=never owner=mx1", "1 until=permanent owner=", "1 until=permanent owner=mx1 owner=mx2",
		"1 until=permanent until=permanent owner=mx1", "1 until=permanent owner=%zz", "1 until=permanent owner=mx1 junk",
		"2 until=permanent owner=mx1",
	} {
		if v, ok := parseValue(s); ok {
			t.Errorf("parseValue(%q) = %+v, want not ok", s, v)
		}
	}
	// Unknown keys are room for later versions.
	if v, ok := parseValue("1 until=permanent owner=mx1 jail=j since=2026-12-01T00:00:00Z"); !ok || v.Owner != "mx1" {
		t.Errorf("an unknown key: %+v, %v", v, ok)
	}
}

func FuzzParseValue(f *testing.F) {
	for _, s := range []string{
		"1 until=2026-12-02T10:00:00Z owner=mx1 jail=rspamd-ratelimit", "1 until=permanent owner=mx1 jail=manual",
		"", "x", "1 until=2026-12-02T10:00:00+02:00 owner=a%20b jail=", "1 until=2026-12-02T10:00:00.5Z owner=x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, ok := parseValue(s)
		if !ok {
			return
		}
		if v.Owner == "" {
			t.Fatalf("parseValue(%q): ok without an owner", s)
		}
		// What was read is written back as one value that reads the same
		// (to the second).
		text := v.format()
		w, ok := parseValue(text)
		want := v
		want.Until = v.Until.Truncate(time.Second)
		if !ok || w != want {
			t.Fatalf("parseValue(%q) = %+v; its format %q reads %+v, %v", s, v, text, w, ok)
		}
		if text != w.format() {
			t.Fatalf("format not stable: %q then %q", text, w.format())
		}
	})
}
