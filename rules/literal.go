package rules

import (
	"regexp/syntax"
	"sort"
	"strings"
	"unicode/utf8"
)

// commonLiteral finds the longest literal that every regex requires, so a
// user's filter gets a prefilter without having to name one.
func commonLiteral(srcs []string) string {
	cands := requiredLiterals(srcs[0])
	sort.Slice(cands, func(a, b int) bool { return len(cands[a]) > len(cands[b]) })
	for _, l := range cands {
		if allRequire(srcs[1:], l) {
			return l
		}
	}
	return ""
}

// allRequire reports whether every regex in srcs requires lit in its matches.
func allRequire(srcs []string, lit string) bool {
	for _, s := range srcs {
		found := false
		for _, l := range requiredLiterals(s) {
			if strings.Contains(l, lit) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// requiredLiterals lists the case-sensitive literal runs at the top level
// of a regex's concatenation: each of them is in every match.
//
// <HOST> and <USER> are expanded to the real patterns first: a stand-in that is
// itself a literal would merge with its neighbours ("unknown\[h\]: 554")
// into a run no event line contains.
func requiredLiterals(src string) []string {
	re, err := syntax.Parse(expandPlaceholders(src), syntax.Perl)
	if err != nil {
		return nil
	}
	re = re.Simplify()
	for re.Op == syntax.OpCapture && len(re.Sub) == 1 {
		re = re.Sub[0]
	}
	var subs []*syntax.Regexp
	switch re.Op {
	case syntax.OpConcat:
		subs = re.Sub
	case syntax.OpLiteral:
		subs = []*syntax.Regexp{re}
	}
	var out []string
	for _, s := range subs {
		if s.Op == syntax.OpLiteral && s.Flags&syntax.FoldCase == 0 {
			out = append(out, splitRuneError(s.Rune)...)
		}
	}
	return out
}

// splitRuneError cuts a literal run at U+FFFD: the regexp engine matches
// that rune against any invalid UTF-8 byte of a line, which does not
// contain the rune's own encoding.
func splitRuneError(rs []rune) []string {
	var out []string
	start := 0
	for i := 0; i <= len(rs); i++ {
		if i == len(rs) || rs[i] == utf8.RuneError {
			if i > start {
				out = append(out, string(rs[start:i]))
			}
			start = i + 1
		}
	}
	return out
}
