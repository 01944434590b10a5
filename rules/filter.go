package rules

import (
	"bytes"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"time"
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
	// once, when set, must occur exactly once in an event line: the
	// rspamd filter's ", ip: " field, which a second copy would make
	// ambiguous (see builtin.go).
	once []byte
	date *DatePattern // the filter's own timestamp layout, or nil
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
	// Prefilter is a literal every event line contains. nil: derived from
	// the fail regexes; "": none, every line reaches the regexes (the way
	// out when a derived literal is wrong).
	Prefilter *string
	// PrefilterAtEnd says every event line ends with Prefilter, so
	// candidates are found by looking at line ends.
	PrefilterAtEnd bool
	// DatePattern is the layout of the filter's own log timestamps
	// (CompileDatePattern); empty: the built-in formats of ParseTime.
	DatePattern string
}

// SpecError is a problem with one field of a FilterSpec, so that a
// configuration error can point at the line where that field is written.
type SpecError struct {
	Field string // "failregex", "ignoreregex", "prefilter" or "datepattern"
	Err   error
}

// Error returns the underlying problem; the field is for locating it.
func (e *SpecError) Error() string { return e.Err.Error() }

// Unwrap returns the underlying problem.
func (e *SpecError) Unwrap() error { return e.Err }

func specErr(field, format string, args ...any) error {
	return &SpecError{Field: field, Err: fmt.Errorf(format, args...)}
}

// CompileFilter builds a filter from a spec. Errors are *SpecError and
// name the regex that failed, so config errors can point at the right line.
func CompileFilter(name string, spec FilterSpec) (*Filter, error) {
	if len(spec.FailRegex) == 0 {
		return nil, specErr("failregex", "filter %s: no failregex", name)
	}
	f := &Filter{Name: name}
	for i, src := range spec.FailRegex {
		re, err := compileFail(src)
		if err != nil {
			return nil, &SpecError{Field: "failregex", Err: fmt.Errorf("failregex[%d] %q: %w", i, src, err)}
		}
		f.fail = append(f.fail, re)
	}
	for i, src := range spec.IgnoreRegex {
		re, err := regexp.Compile(src)
		if err != nil {
			return nil, specErr("ignoreregex", "ignoreregex[%d] %q: %w", i, src, err)
		}
		f.ignore = append(f.ignore, re)
	}
	var lit string
	switch {
	case spec.Prefilter == nil:
		lit = commonLiteral(spec.FailRegex)
	case *spec.Prefilter == "":
		// Written empty on purpose: no prefilter.
	case !allRequire(spec.FailRegex, *spec.Prefilter):
		return nil, specErr("prefilter", "prefilter %q: not a literal that every failregex requires (prefilter = \"\" turns it off)", *spec.Prefilter)
	default:
		lit = *spec.Prefilter
	}
	f.literal = []byte(lit)
	f.atEnd = spec.PrefilterAtEnd && lit != ""
	if spec.DatePattern != "" {
		dp, err := CompileDatePattern(spec.DatePattern)
		if err != nil {
			return nil, &SpecError{Field: "datepattern", Err: err}
		}
		f.date = dp
	}
	return f, nil
}

// compileFail compiles one failregex with <HOST> expanded.
func compileFail(src string) (*regexp.Regexp, error) {
	if !strings.Contains(src, "<HOST>") {
		return nil, fmt.Errorf("missing <HOST>")
	}
	if strings.Count(src, "<HOST>") > 1 {
		return nil, fmt.Errorf("exactly one <HOST> is allowed")
	}
	re, err := regexp.Compile(expandHost(src))
	if err != nil {
		return nil, err
	}
	if re.SubexpIndex("host") < 0 {
		return nil, fmt.Errorf("exactly one <HOST> is allowed")
	}
	return re, nil
}

// expandHost replaces the <HOST> placeholder by HostPattern.
func expandHost(src string) string { return strings.Replace(src, "<HOST>", HostPattern, 1) }

// ParseTime reads the timestamp at the start of line: with the filter's
// datepattern when it has one (falling back to the built-in formats for
// lines that do not start with its layout), else as the package-level
// ParseTime does. Results are those of ParseTime.
func (f *Filter) ParseTime(line []byte, loc *time.Location, ref time.Time) (time.Time, int, bool) {
	if f.date != nil {
		if t, n, ok := f.date.Parse(line, loc, ref); n > 0 {
			return t, n, ok
		}
	}
	return ParseTime(line, loc, ref)
}

// HasDatePattern reports whether the filter reads timestamps with its own
// datepattern, so that a caller sharing one ParseTime result between
// filters knows it must ask this one separately.
func (f *Filter) HasDatePattern() bool { return f.date != nil }

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
	if f.once != nil && !onlyOnce(msg, f.once) {
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

// onlyOnce reports whether sub occurs exactly once in msg.
func onlyOnce(msg, sub []byte) bool {
	i := bytes.Index(msg, sub)
	return i >= 0 && !bytes.Contains(msg[i+1:], sub)
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
