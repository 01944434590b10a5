package rules

import (
	"fmt"
	"net/netip"
	"regexp"
	"regexp/syntax"
	"sort"
	"strings"
)

// HostPattern is what <HOST> expands to: an IPv4 or IPv6 literal, never a
// host name. fail2ban also accepts names and resolves them; a sender who
// controls its own DNS could then point a ban at anyone, so mailjail only
// bans addresses that are written in the line.
const HostPattern = `(?P<host>[0-9]{1,3}(?:\.[0-9]{1,3}){3}|[0-9A-Fa-f]{0,4}:[0-9A-Fa-f:.]*[0-9A-Fa-f])`

// Filter recognises one kind of event in the message part of a log line
// (the line after its timestamp). A line is an event when it contains the
// filter's literal, matches one of its fail regexes and none of its ignore
// regexes. The literal lets callers skip most lines with a bytes.Index
// instead of a regex.
type Filter struct {
	Name    string
	literal []byte
	atEnd   bool // every event line ends with literal
	fail    []*regexp.Regexp
	ignore  []*regexp.Regexp
	split   *splitRegex // a faster equivalent of fail[0], for built-ins
}

// Match is what a filter extracts from one event line.
type Match struct {
	Addr   netip.Addr
	Bucket string // rspamd ratelimit bucket ("ip", "user", ...) when the filter captures it
}

// FilterSpec is a filter as written in the configuration.
type FilterSpec struct {
	FailRegex   []string // each must contain <HOST>
	IgnoreRegex []string
	Prefilter   string // literal every event line contains; derived from the regexes when empty
	// PrefilterAtEnd says every event line ends with Prefilter, so
	// candidates are found by looking at line ends.
	PrefilterAtEnd bool
}

// CompileFilter builds a filter from a spec. Errors name the regex that
// failed, so config errors can point at the right line.
func CompileFilter(name string, spec FilterSpec) (*Filter, error) {
	if len(spec.FailRegex) == 0 {
		return nil, fmt.Errorf("filter %s: no failregex", name)
	}
	f := &Filter{Name: name}
	for i, src := range spec.FailRegex {
		if !strings.Contains(src, "<HOST>") {
			return nil, fmt.Errorf("failregex[%d] %q: missing <HOST>", i, src)
		}
		re, err := regexp.Compile(strings.Replace(src, "<HOST>", HostPattern, 1))
		if err != nil {
			return nil, fmt.Errorf("failregex[%d] %q: %w", i, src, err)
		}
		if re.SubexpIndex("host") < 0 || strings.Count(src, "<HOST>") > 1 {
			return nil, fmt.Errorf("failregex[%d] %q: exactly one <HOST> is allowed", i, src)
		}
		f.fail = append(f.fail, re)
	}
	for i, src := range spec.IgnoreRegex {
		re, err := regexp.Compile(src)
		if err != nil {
			return nil, fmt.Errorf("ignoreregex[%d] %q: %w", i, src, err)
		}
		f.ignore = append(f.ignore, re)
	}
	lit := spec.Prefilter
	if lit == "" {
		lit = commonLiteral(spec.FailRegex)
	} else if !allRequire(spec.FailRegex, lit) {
		return nil, fmt.Errorf("prefilter %q: not a literal that every failregex requires", lit)
	}
	f.literal = []byte(lit)
	f.atEnd = spec.PrefilterAtEnd && lit != ""
	return f, nil
}

// Literal is the fixed text every event line contains (maybe empty). Callers
// scanning whole read buffers use it to find candidate lines.
func (f *Filter) Literal() []byte { return f.literal }

// LiteralAtEnd reports whether every event line ends with Literal.
func (f *Filter) LiteralAtEnd() bool { return f.atEnd }

// Match reports whether msg (a line without its timestamp) is an event and
// extracts its address. Captured text is only ever parsed as an address or
// kept as a short token; it is never interpreted further.
func (f *Filter) Match(msg []byte) (Match, bool) {
	if !f.Prefilter().Pass(msg) {
		return Match{}, false
	}
	if f.split != nil {
		host, bucket, ok := f.split.match(msg)
		if !ok || f.ignored(msg) {
			return Match{}, false
		}
		return capture(host, bucket)
	}
	for _, re := range f.fail {
		m := re.FindSubmatchIndex(msg)
		if m == nil {
			continue
		}
		if f.ignored(msg) {
			return Match{}, false
		}
		hi := 2 * re.SubexpIndex("host")
		var bucket []byte
		if bi := re.SubexpIndex("bucket"); bi > 0 && m[2*bi] >= 0 {
			bucket = msg[m[2*bi]:m[2*bi+1]]
		}
		return capture(msg[m[hi]:m[hi+1]], bucket)
	}
	return Match{}, false
}

func (f *Filter) ignored(msg []byte) bool {
	for _, ig := range f.ignore {
		if ig.Match(msg) {
			return true
		}
	}
	return false
}

// capture turns the captured spans into a Match. Known bucket names are
// shared constants, so a match allocates only for unusual buckets.
func capture(host, bucket []byte) (Match, bool) {
	a, err := ParseAddr(string(host))
	if err != nil {
		return Match{}, false
	}
	m := Match{Addr: a}
	if len(bucket) > 0 {
		m.Bucket = internBucket(bucket)
	}
	return m, true
}

var knownBuckets = []string{"ip", "user", "to", "to_ip", "to_ip_from", "bounce_to", "bounce_to_ip"}

func internBucket(b []byte) string {
	for _, k := range knownBuckets {
		if string(b) == k {
			return k
		}
	}
	return string(b)
}

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
func requiredLiterals(src string) []string {
	re, err := syntax.Parse(strings.ReplaceAll(src, "<HOST>", "(?:h)"), syntax.Perl)
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
			out = append(out, string(s.Rune))
		}
	}
	return out
}
