package rules

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"regexp/syntax"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/pelletier/go-toml/v2"

	"github.com/mailjail/mailjail/internal/testutil"
)

// The literal next to <HOST> used to be derived from a stand-in "h", so a
// filter like `unknown\[<HOST>\]: 554` required "unknown[h]: 554" and never
// matched (issue 11 #1).
func TestDerivedPrefilterKeepsLiteralsBesideHost(t *testing.T) {
	tests := []struct{ regex, line, addr string }{
		{`reject: RCPT from unknown\[<HOST>\]: 554`, `mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from unknown[198.51.100.9]: 554 5.7.1 x`, "198.51.100.9"},
		{`too many errors from <HOST>`, `mx postfix/smtpd[1]: too many errors from 198.51.100.9 after RCPT`, "198.51.100.9"},
		{`client <HOST> x`, `client 2001:db8::7 x`, "2001:db8::7"},
		{`rip=<HOST>`, `dovecot: imap-login: Disconnected: user=<>, rip=198.51.100.9, lip=192.0.2.1`, "198.51.100.9"},
		{`^aaaa <HOST>`, `aaaa 198.51.100.9`, "198.51.100.9"},
	}
	for _, tt := range tests {
		t.Run(tt.regex, func(t *testing.T) {
			f, err := CompileFilter("x", FilterSpec{FailRegex: []string{tt.regex}})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(tt.line, string(f.Literal())) {
				t.Errorf("literal %q is not in the line", f.Literal())
			}
			m, ok := f.Match([]byte(tt.line))
			if !ok || m.Addr.String() != tt.addr {
				t.Errorf("match = %v %v (literal %q), want %s", m.Addr, ok, f.Literal(), tt.addr)
			}
		})
	}
}

// prefilter = "" means no prefilter at all, so a wrong derived literal can
// be worked around (issue 11 #27).
func TestEmptyPrefilterTurnsDerivedOff(t *testing.T) {
	f, err := CompileFilter("x", FilterSpec{FailRegex: []string{`failed for <HOST>`}, Prefilter: new("")})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Literal()) != 0 {
		t.Errorf("literal = %q, want none", f.Literal())
	}
	derived, _ := CompileFilter("x", FilterSpec{FailRegex: []string{`failed for <HOST>`}})
	if string(derived.Literal()) != "failed for " {
		t.Errorf("derived literal = %q", derived.Literal())
	}
}

// A bad prefilter, regex or datepattern names its own field, so that the
// configuration can point at that field's line (issue 11 #30).
func TestSpecErrorNamesField(t *testing.T) {
	tests := []struct {
		spec  FilterSpec
		field string
	}{
		{FilterSpec{FailRegex: []string{"a <HOST>"}, Prefilter: new("zzz")}, "prefilter"},
		{FilterSpec{FailRegex: []string{"a <HOST> ("}}, "failregex"},
		{FilterSpec{FailRegex: []string{"a <HOST>"}, IgnoreRegex: []string{"("}}, "ignoreregex"},
		{FilterSpec{FailRegex: []string{"a <HOST>"}, DatePattern: "%Q"}, "datepattern"},
	}
	for _, tt := range tests {
		_, err := CompileFilter("x", tt.spec)
		se, ok := err.(*SpecError)
		if !ok || se.Field != tt.field {
			t.Errorf("%+v: err = %#v, want field %s", tt.spec, err, tt.field)
		}
	}
}

// genMatch appends to b a random string that re matches (or nearly: anchors
// in the middle are ignored, the caller checks with the real regexp).
func genMatch(re *syntax.Regexp, r *rand.Rand, b *strings.Builder, depth int) {
	if b.Len() > 4096 {
		return // a huge repeat: the line will not match and is skipped
	}
	reps := func(lo, hi int) int {
		if hi < 0 || hi > lo+3 {
			hi = lo + 3
		}
		return lo + r.IntN(hi-lo+1)
	}
	switch re.Op {
	case syntax.OpLiteral:
		for _, c := range re.Rune {
			if re.Flags&syntax.FoldCase != 0 && r.IntN(2) == 0 {
				c = flipCase(c)
			}
			b.WriteRune(c)
		}
	case syntax.OpCharClass:
		if len(re.Rune) == 0 {
			return
		}
		k := r.IntN(len(re.Rune)/2) * 2
		lo, hi := re.Rune[k], re.Rune[k+1]
		b.WriteRune(lo + rune(r.Int64N(int64(min(hi-lo, 300))+1)))
	case syntax.OpAnyCharNotNL, syntax.OpAnyChar:
		b.WriteByte(" aZ9.:[]<>=,;\xff"[r.IntN(14)])
	case syntax.OpCapture:
		genMatch(re.Sub[0], r, b, depth)
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat:
		lo, hi := 0, 1
		switch re.Op {
		case syntax.OpStar:
			hi = -1
		case syntax.OpPlus:
			lo, hi = 1, -1
		case syntax.OpRepeat:
			lo, hi = re.Min, re.Max
		}
		if depth > 8 {
			hi = lo
		}
		for range reps(lo, hi) {
			genMatch(re.Sub[0], r, b, depth+1)
		}
	case syntax.OpConcat:
		for _, s := range re.Sub {
			genMatch(s, r, b, depth+1)
		}
	case syntax.OpAlternate:
		genMatch(re.Sub[r.IntN(len(re.Sub))], r, b, depth+1)
	}
}

func flipCase(c rune) rune {
	switch {
	case c >= 'a' && c <= 'z':
		return c - 32
	case c >= 'A' && c <= 'Z':
		return c + 32
	}
	return c
}

// checkPrefilterAgrees generates lines each fail regex matches (with
// random text around them) and fails if the filter's prefilter rejects one.
func checkPrefilterAgrees(t *testing.T, f *Filter, r *rand.Rand, n int) {
	t.Helper()
	pf := f.Prefilter()
	for _, re := range f.fail {
		tree, err := syntax.Parse(re.String(), syntax.Perl)
		if err != nil {
			t.Fatalf("%s: %v", re, err)
		}
		tree = tree.Simplify()
		for range n {
			var b strings.Builder
			if r.IntN(2) == 0 {
				b.WriteString("Dec  1 17:40:01 mx prog[1]: ")
			}
			genMatch(tree, r, &b, 0)
			if r.IntN(2) == 0 {
				b.WriteString(" trailing text")
			}
			line := []byte(b.String())
			if re.Match(line) && !pf.Pass(line) {
				t.Fatalf("filter %s: prefilter %q (at end %v) rejects %q, which %s matches", f.Name, pf.Lit, pf.AtEnd, line, re)
			}
		}
	}
}

// regexPieces build random fail regexes in the shapes people write.
var regexPieces = []string{
	`reject: RCPT from `, `unknown\[`, `\]: 554`, `too many errors from `, `client `, ` x`, `rip=`, `^`, `aaaa `,
	`\S+ `, `\d+`, `(?:LOGIN|PLAIN) `, `(?i)auth failed `, `[\w.-]+`, `.*`, `x?`, `(foo|bar)`, `\[\d+\]: `,
	`warning: `, `, `, `ab{2,3}c`, `$`, `(?:`, `)`, `h`, `\x{FFFD}`, `é`, `:`, `\.`, `(?s).`, `[^ ]*`, `\b`,
}

func randomRegex(r *rand.Rand) string {
	var b strings.Builder
	host := r.IntN(6)
	for i := range 6 {
		if i == host {
			b.WriteString("<HOST>")
		}
		b.WriteString(regexPieces[r.IntN(len(regexPieces))])
	}
	return b.String()
}

// The derived (or written) prefilter never rejects a line that a fail
// regex matches: for the built-in filters, every filter in examples/, and
// generated regexes.
func TestDerivedPrefilterNeverRejectsMatch(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	scale := 5 // -race runs the regexes about ten times slower
	if testutil.Race {
		scale = 1
	}
	for _, name := range BuiltinNames() {
		f, err := BuiltinFilter(name)
		if err != nil {
			t.Fatal(err)
		}
		checkPrefilterAgrees(t, f, r, 400*scale)
	}
	for name, spec := range exampleFilters(t) {
		f, err := CompileFilter(name, spec)
		if err != nil {
			t.Fatalf("example filter %s: %v", name, err)
		}
		checkPrefilterAgrees(t, f, r, 500)
	}
	compiled := 0
	for range 600 * scale {
		f, err := CompileFilter("gen", FilterSpec{FailRegex: []string{randomRegex(r), randomRegex(r)}})
		if err != nil {
			continue
		}
		compiled++
		checkPrefilterAgrees(t, f, r, 20)
	}
	if compiled < 200*scale {
		t.Errorf("only %d generated filters compiled", compiled)
	}
}

// exampleFilters reads every [filter.NAME] of the TOML files in examples/.
func exampleFilters(t *testing.T) map[string]FilterSpec {
	t.Helper()
	paths, _ := filepath.Glob("../examples/*.toml")
	more, _ := filepath.Glob("../examples/*/*.toml")
	out := map[string]FilterSpec{}
	for _, p := range append(paths, more...) {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var f struct {
			Filter map[string]struct {
				FailRegex   []string `toml:"failregex"`
				IgnoreRegex []string `toml:"ignoreregex"`
				Prefilter   *string  `toml:"prefilter"`
				DatePattern string   `toml:"datepattern"`
			} `toml:"filter"`
		}
		if err := toml.Unmarshal(data, &f); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		for n, ff := range f.Filter {
			out[p+":"+n] = FilterSpec{FailRegex: ff.FailRegex, IgnoreRegex: ff.IgnoreRegex, Prefilter: ff.Prefilter, DatePattern: ff.DatePattern}
		}
	}
	if len(out) == 0 {
		t.Fatal("no filters in examples/")
	}
	return out
}

func FuzzDerivedPrefilterNeverRejectsMatch(f *testing.F) {
	for _, s := range []string{`reject: RCPT from unknown\[<HOST>\]: 554`, `too many errors from <HOST>`, `client <HOST> x`, `rip=<HOST>`, `^aaaa <HOST>`, `(?i)a<HOST>b`, `\x{FFFD}<HOST>`} {
		f.Add(s, []byte("x"), uint64(1))
	}
	f.Fuzz(func(t *testing.T, src string, line []byte, seed uint64) {
		flt, err := CompileFilter("fuzz", FilterSpec{FailRegex: []string{src}})
		if err != nil {
			return
		}
		pf := flt.Prefilter()
		if flt.fail[0].Match(line) && !pf.Pass(line) {
			t.Fatalf("prefilter %q rejects %q, which %s matches", pf.Lit, line, src)
		}
		checkPrefilterAgrees(t, flt, rand.New(rand.NewPCG(seed, 0)), 5)
	})
}

// The regexp engine reads an invalid byte as U+FFFD, whose UTF-8 encoding
// the line does not contain: such a literal run is cut there.
func TestPrefilterCutsAtReplacementRune(t *testing.T) {
	f, err := CompileFilter("x", FilterSpec{FailRegex: []string{`ab\x{FFFD}cd <HOST>`}})
	if err != nil {
		t.Fatal(err)
	}
	line := []byte("ab\xffcd 192.0.2.1")
	if !regexp.MustCompile(`ab\x{FFFD}cd`).Match(line) {
		t.Skip("regexp no longer reads invalid bytes as U+FFFD")
	}
	if _, ok := f.Match(line); !ok || !utf8.ValidString(string(f.Literal())) {
		t.Errorf("no match, literal %q", f.Literal())
	}
}
