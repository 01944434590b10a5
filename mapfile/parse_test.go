package mapfile

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func prefixes(p Parsed) string {
	var s []string
	for _, e := range p.Entries {
		s = append(s, e.Prefix.String())
	}
	return strings.Join(s, " ")
}

func TestParse(t *testing.T) {
	good := "# old fail2ban map\n\n192.0.2.50\n198.51.100.0/24 # spammer\n  2001:db8:1::/64\n::ffff:203.0.113.5\n"
	got, err := Parse(strings.NewReader(good), "old.map")
	if err != nil {
		t.Fatal(err)
	}
	want := "192.0.2.50/32 198.51.100.0/24 2001:db8:1::/64 203.0.113.5/32"
	if s := fmt.Sprint(got); s != "["+want+"]" {
		t.Errorf("got %v", s)
	}
}

// Every line here was written into the e2e set-up's map and probed with
// rspamc against the real rspamd 3.4 (e2e/setup.sh): rspamd matched
// exactly the addresses listed, so a takeover must keep exactly these.
func TestParseAcceptsWhatRspamdAccepts(t *testing.T) {
	for _, tc := range []struct {
		line, want, value, comment string
	}{
		{"203.0.113.5 spam-source\n", "203.0.113.5/32", "spam-source", ""},
		{"192.0.2.130 value with spaces # c\n", "192.0.2.130/32", "value with spaces", "c"},
		{"198.51.100.1/24\n", "198.51.100.0/24", "", ""}, // host bits: rspamd bans the network
		{"192.0.2.10,192.0.2.11\n", "192.0.2.10/32 192.0.2.11/32", "", ""},
		{"\"192.0.2.140, 192.0.2.141\" v\n", "192.0.2.140/32 192.0.2.141/32", "v", ""},
		{"192.0.2.20#x\n", "192.0.2.20/32", "", "x"},
		{"[2001:db8:5::1]\n", "2001:db8:5::1/128", "", ""},
		{"[2001:db8::]/64\n", "2001:db8::/64", "", ""},
		{"192.0.2.40/33\n", "192.0.2.40/32", "", ""}, // a mask above 32 is clamped
		{"192.0.2.41/128\n", "192.0.2.41/32", "", ""},
		{"\"192.0.2.50\"\n", "192.0.2.50/32", "", ""},
		{"::ffff:192.0.2.80\n", "192.0.2.80/32", "", ""},
		{"::ffff:198.51.100.0/120\n", "198.51.100.0/24", "", ""},
		{" \t192.0.2.110\n", "192.0.2.110/32", "", ""},
		{"192.0.2.1\r\n", "192.0.2.1/32", "", ""},
		{"198.18.5.0/24,192.0.2.1\n", "198.18.5.0/24 192.0.2.1/32", "", ""},
		{"2001:db8::/64,192.0.2.1,2001:db8:1::1\n", "2001:db8::/64 192.0.2.1/32 2001:db8:1::1/128", "", ""},
		{"192.0.2.7", "192.0.2.7/32", "", ""},                              // no newline at the end
		{"192.0.2.1 # x\r10.9.9.9\n", "192.0.2.1/32 10.9.9.9/32", "", "x"}, // a lone CR ends a line
		{"192.0.2.8 ", "192.0.2.8/32", "", ""},                             // rspamd drops it; the administrator wrote it
	} {
		got, err := ParseEntries(strings.NewReader(tc.line), "old.map")
		if err != nil {
			t.Errorf("%q: %v", tc.line, err)
			continue
		}
		if s := prefixes(got); s != tc.want {
			t.Errorf("%q: got %s, want %s", tc.line, s, tc.want)
		}
		if e := got.Entries[0]; e.Value != tc.value || e.Comment != tc.comment || e.Line != 1 || e.Own {
			t.Errorf("%q: got %+v, want value %q comment %q line 1, not own", tc.line, e, tc.value, tc.comment)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	for in, wantErr := range map[string]string{
		"192.0.2.1\nexample.com\n":         "old.map:2: entry: invalid address",
		"192.0.2.1\n300.0.0.1 # x\n":       "old.map:2:",
		"1.2.3\n":                          `old.map:1: entry: invalid address "1.2.3"`,
		"192.0.2.150;192.0.2.151\n":        "old.map:1: entry: invalid address",
		"192.0.2.120\v192.0.2.121\n":       "old.map:1: entry: invalid address",
		"\n\n192.0.2.70/abc\n":             `old.map:3: entry: invalid CIDR "192.0.2.70/abc": the mask is not a number`,
		"192.0.2.70/\n":                    "invalid CIDR",
		"192.0.2.70/-1\n":                  "invalid CIDR",
		"192.0.2.3/4294967296\n":           "invalid CIDR",
		"10.20.30.40/24x\n":                "invalid CIDR",
		"[2001:db8:7::1]junk\n":            "text after ']'",
		"[192.0.2.1]\n":                    "invalid address",
		"fe80::1%eth0\n":                   "invalid address",
		"192.0.2.90\x00junk\n":             "NUL byte",
		"198.18.5.0/24,2001:db8:6::1\n":    "rspamd 3.4 reads it as 2001:db8:6::1/120",
		"2001:db8::/64,2001:db8:1::1\n":    "reads it as 2001:db8:1::1/64",
		"198.18.5.0/24,::ffff:192.0.2.1\n": "reads it as ::ffff:192.0.2.1/120",
		"::ffff:0:0/80\n":                  "shorter than /96",
		"\"192.0.2.1\n":                    "quoted key not closed",
		"\"\"\n":                           "empty key",
		",,\n":                             "no address",
		"/192\\.0\\.2\\.1/\n":              "/regexp/",
		"192.0.2.1\\#x\n":                  "invalid address",
		"192.0.2.1\n" + strings.Repeat("x", maxLine+1) + "\n": "read old.map",
	} {
		if _, err := ParseEntries(strings.NewReader(in), "old.map"); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("%.40q: err = %v, want %q", in, err, wantErr)
		}
	}
}

func TestParseOwnFormatKeepsJailAndExpiry(t *testing.T) {
	in := "198.51.100.1 # until 2026-11-01T01:00:00Z jail=rspamd-ratelimit\n" +
		"192.0.2.9 # permanent jail=manual\n" +
		"192.0.2.10 # until 2026-11-01T02:00:00+01:00 jail=a%0Ab\n" +
		"192.0.2.11 # until tomorrow jail=x\n" + // not mailjail's: no jail, no expiry
		"192.0.2.12 spam # permanent jail=x\n" + // a value: not mailjail's either
		"192.0.2.13 # permanent jail=%zz\n"
	got, err := ParseEntries(strings.NewReader(in), "m")
	if err != nil {
		t.Fatal(err)
	}
	want := []ParsedEntry{
		{Prefix: netip.MustParsePrefix("198.51.100.1/32"), Line: 1, Own: true, Until: time.Date(2026, 11, 1, 1, 0, 0, 0, time.UTC), Jail: "rspamd-ratelimit",
			Comment: "until 2026-11-01T01:00:00Z jail=rspamd-ratelimit"},
		{Prefix: netip.MustParsePrefix("192.0.2.9/32"), Line: 2, Own: true, Jail: "manual", Comment: "permanent jail=manual"},
		{Prefix: netip.MustParsePrefix("192.0.2.10/32"), Line: 3, Own: true, Until: time.Date(2026, 11, 1, 1, 0, 0, 0, time.UTC), Jail: "a\nb",
			Comment: "until 2026-11-01T02:00:00+01:00 jail=a%0Ab"},
		{Prefix: netip.MustParsePrefix("192.0.2.11/32"), Line: 4, Comment: "until tomorrow jail=x"},
		{Prefix: netip.MustParsePrefix("192.0.2.12/32"), Line: 5, Value: "spam", Comment: "permanent jail=x"},
		{Prefix: netip.MustParsePrefix("192.0.2.13/32"), Line: 6, Comment: "permanent jail=%zz"},
	}
	if !slices.Equal(got.Entries, want) {
		t.Errorf("got\n%+v\nwant\n%+v", got.Entries, want)
	}
}

func TestParseReportsComments(t *testing.T) {
	in := "# fail2ban list\n192.0.2.1\n  # spammers from the 2024 wave\n#\n"
	got, err := ParseEntries(strings.NewReader(in), "m")
	if err != nil {
		t.Fatal(err)
	}
	want := []Comment{{Line: 1, Text: "fail2ban list"}, {Line: 3, Text: "spammers from the 2024 wave"}, {Line: 4, Text: ""}}
	if !slices.Equal(got.Comments, want) || got.Managed {
		t.Errorf("got %+v managed %v, want %+v", got.Comments, got.Managed, want)
	}
}

// A map mailjail wrote reads back as what it was rendered from: every
// entry with its jail and expiry, the header neither an entry nor a
// comment.
func TestParseReadsRenderBack(t *testing.T) {
	entries := Normalize([]Entry{
		{Prefix: netip.MustParsePrefix("2001:db8::42/128"), Until: t0.Add(time.Hour), Jail: "rspamd-ratelimit"},
		{Prefix: netip.MustParsePrefix("198.18.0.0/15"), Jail: "manual"},
		{Prefix: netip.MustParsePrefix("192.0.2.9/32"), Until: t0.Add(time.Minute), Jail: "a"},
	})
	var buf bytes.Buffer
	if err := Render(&buf, entries, t0); err != nil {
		t.Fatal(err)
	}
	got, err := ParseEntries(&buf, "m")
	if err != nil {
		t.Fatal(err)
	}
	if !got.Managed || len(got.Comments) != 0 {
		t.Errorf("managed %v comments %v, want managed and none", got.Managed, got.Comments)
	}
	if back := backToEntries(got); !slices.Equal(back, entries) {
		t.Errorf("got %v, want %v", back, entries)
	}
}

func backToEntries(p Parsed) []Entry {
	var out []Entry
	for _, e := range p.Entries {
		out = append(out, Entry{Prefix: e.Prefix, Until: e.Until, Jail: e.Jail})
	}
	return out
}

// FuzzParse holds ParseEntries to rspamd's reading (rspamd_model_test.go):
// what it accepts is exactly what rspamd enters into its tree, and it only
// refuses what rspamd warns about or reads otherwise than written.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"192.0.2.1\n", "203.0.113.5 spam-source\n", "198.51.100.1/24 # x\n", "\"192.0.2.1, 192.0.2.2\" v\n",
		"[2001:db8::1]/64\n", "198.18.5.0/24,2001:db8:6::1\n", "192.0.2.1 # until 2026-11-01T01:00:00Z jail=a%0A\n",
		"192.0.2.1\r192.0.2.2\r\n", "/x/\n", "192.0.2.1 ", "\"a\n", "::ffff:1.2.3.4/120\n", "1.2.3.4/4294967296\n",
		"# c\n\t#d\n1.2.3.4\\#\n", "\x00", "\f1.2.3.4\f5\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParseEntries(bytes.NewReader(data), "fuzz.map")
		model := readLikeRspamd(data)
		if err != nil {
			if !model.warned && !model.odd {
				t.Fatalf("refused %q (%v), rspamd reads it cleanly as %v", data, err, model.prefixes)
			}
			if !strings.HasPrefix(err.Error(), "fuzz.map:") && !strings.HasPrefix(err.Error(), "read fuzz.map") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		if model.warned {
			t.Fatalf("accepted %q as %v, rspamd warns about it", data, prefixes(got))
		}
		lines := bytes.Count(data, []byte("\n")) + 1
		var ours []netip.Prefix
		for _, e := range got.Entries {
			if !e.Prefix.IsValid() || e.Prefix.Masked() != e.Prefix || e.Line < 1 || e.Line > lines {
				t.Fatalf("entry %+v of %q", e, data)
			}
			ours = append(ours, as128(e.Prefix))
		}
		ours, theirs := prefixSet(ours), prefixSet(model.prefixes)
		if model.odd {
			// rspamd drops a last key followed by spaces and no newline.
			for _, p := range theirs {
				if !slices.Contains(ours, p) {
					t.Fatalf("%q: rspamd enters %v, ParseEntries not", data, p)
				}
			}
			return
		}
		if !slices.Equal(ours, theirs) {
			t.Fatalf("%q: ParseEntries %v, rspamd %v", data, ours, theirs)
		}
	})
}
