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
	// userThen, when set, lists what may follow a captured login: the
	// rspamd filter's check that the login ended where rspamd's next field
	// starts, which its regex cannot say (RE2 has no lookahead).
	userThen [][]byte
	// tasks, when set, remembers the buckets that rspamd's ratelimit.lua
	// lines name per task, for summary lines that do not name theirs.
	tasks     *taskBuckets
	hasUser   bool         // a fail regex has <USER>
	hasBucket bool         // a fail regex has a bucket group
	date      *DatePattern // the filter's own timestamp layout, or nil
	task      []byte       // Prefilter().Task
}

// Match is what a filter extracts from one event line.
type Match struct {
	Addr   netip.Addr
	Bucket string // rspamd ratelimit bucket ("ip", "user", ...) when the filter captures it; "" when unknown
	// User is the authenticated login the line names, normalised by
	// NormalizeAccount; "" when it names none or one that NormalizeAccount
	// refuses, so that a malformed login never becomes a key.
	User string
}

// FilterSpec is a filter as written in the configuration.
type FilterSpec struct {
	// FailRegex: each must contain <HOST> and may contain <USER> once.
	FailRegex   []string
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
		f.hasUser = f.hasUser || re.SubexpIndex("user") > 0
		f.hasBucket = f.hasBucket || re.SubexpIndex("bucket") > 0
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

// compileFail compiles one failregex with <HOST> and <USER> expanded.
func compileFail(src string) (*regexp.Regexp, error) {
	if !strings.Contains(src, "<HOST>") {
		return nil, fmt.Errorf("missing <HOST>")
	}
	if strings.Count(src, "<HOST>") > 1 {
		return nil, fmt.Errorf("exactly one <HOST> is allowed")
	}
	users := strings.Count(src, "<USER>")
	if users > 1 {
		return nil, fmt.Errorf("at most one <USER> is allowed")
	}
	re, err := regexp.Compile(expandPlaceholders(src))
	if err != nil {
		return nil, err
	}
	if groupsNamed(re, "host") != 1 {
		return nil, fmt.Errorf("exactly one <HOST> is allowed (and no group of your own named host)")
	}
	// A group of one's own named user would fill Match.User with text
	// that UserPattern never vetted.
	if groupsNamed(re, "user") != users {
		return nil, fmt.Errorf("the group name user is reserved for <USER>")
	}
	return re, nil
}

// groupsNamed counts re's capture groups called name.
func groupsNamed(re *regexp.Regexp, name string) int {
	n := 0
	for _, s := range re.SubexpNames() {
		if s == name {
			n++
		}
	}
	return n
}

// expandPlaceholders replaces <HOST> by HostPattern and <USER> by
// UserPattern.
func expandPlaceholders(src string) string {
	return strings.Replace(strings.Replace(src, "<HOST>", HostPattern, 1), "<USER>", UserPattern, 1)
}

// CapturesUser reports whether the filter can name an account (a fail
// regex has <USER>), so that a jail that strikes accounts can refuse a
// filter that never names one.
func (f *Filter) CapturesUser() bool { return f.hasUser }

// CapturesBucket reports whether the filter can name the rspamd bucket of
// an event at all. When it can, an event whose Bucket is "" is one whose
// bucket is unknown (not "any"), and a jail restricted to some buckets
// must skip it.
func (f *Filter) CapturesBucket() bool { return f.hasBucket }

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
//
// A line that only names the bucket of a later line (rspamd's
// ratelimit.lua line, see builtin.go) is remembered and is no event, so
// one message stays one strike.
func (f *Filter) Match(msg []byte) (Match, bool) {
	pf := f.Prefilter()
	if !pf.passLit(msg) {
		if f.tasks != nil && pf.passTask(msg) {
			f.tasks.see(msg)
		}
		return Match{}, false
	}
	if f.once != nil && !onlyOnce(msg, f.once) {
		return Match{}, false
	}
	var host, user, bucket span
	if f.split != nil {
		var ok bool
		if host, user, bucket, ok = f.split.match(msg); !ok {
			return Match{}, false
		}
	} else {
		m, re := f.firstFail(msg)
		if m == nil {
			return Match{}, false
		}
		host = groupSpan(re, m, "host")
		user = groupSpan(re, m, "user")
		bucket = groupSpan(re, m, "bucket")
	}
	if f.ignored(msg) {
		return Match{}, false
	}
	a, err := ParseAddr(string(host.of(msg)))
	if err != nil {
		return Match{}, false
	}
	mt := Match{Addr: a, User: f.user(msg, user)}
	switch {
	case bucket.ok():
		mt.Bucket = internBucket(bucket.of(msg))
	case f.tasks != nil:
		mt.Bucket = f.tasks.take(msg)
	}
	return mt, true
}

// span is a capture's [start, end) in a line; -1 when it did not take part.
type span [2]int

func (s span) ok() bool           { return s[0] >= 0 }
func (s span) of(b []byte) []byte { return b[s[0]:s[1]] }

// groupSpan is the span of re's group name in the submatch indexes m.
func groupSpan(re *regexp.Regexp, m []int, name string) span {
	if i := re.SubexpIndex(name); i > 0 {
		return span{m[2*i], m[2*i+1]}
	}
	return span{-1, -1}
}

// firstFail is the first fail regex that matches msg and its submatches.
func (f *Filter) firstFail(msg []byte) ([]int, *regexp.Regexp) {
	for _, re := range f.fail {
		if m := re.FindSubmatchIndex(msg); m != nil {
			return m, re
		}
	}
	return nil, nil
}

// user normalises the captured login, or gives "" for none or a bad one.
func (f *Filter) user(msg []byte, s span) string {
	if !s.ok() {
		return ""
	}
	if f.userThen != nil && !startsWithAny(msg[s[1]:], f.userThen) {
		return ""
	}
	u, err := NormalizeAccount(string(s.of(msg)))
	if err != nil {
		return ""
	}
	return u
}

func startsWithAny(b []byte, prefixes [][]byte) bool {
	for _, p := range prefixes {
		if bytes.HasPrefix(b, p) {
			return true
		}
	}
	return false
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

// knownBuckets are shared constants, so a match allocates only for
// unusual buckets.
var knownBuckets = []string{"ip", "user", "to", "to_ip", "to_ip_from", "bounce_to", "bounce_to_ip"}

func internBucket(b []byte) string {
	for _, k := range knownBuckets {
		if string(b) == k {
			return k
		}
	}
	return string(b)
}
