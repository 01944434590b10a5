package rules

import "bytes"

// Prefilter is the cheap test a line must pass before a filter's regex
// runs: it contains Lit (or, with AtEnd, ends with it), or it contains
// Head within its first HeadWindow bytes. A zero Prefilter passes every
// line.
type Prefilter struct {
	Lit   []byte
	AtEnd bool
	// Head, when set, also lets through the lines a filter must see
	// although they are no events: the rspamd filter's ratelimit.lua lines,
	// which name the bucket that a summary line with a bucket's own
	// message does not. It is looked for near the line's start only, where
	// the logging program writes it, so the long lines that fail Lit are
	// not searched to their end.
	Head []byte
}

// HeadWindow is how far into a line Prefilter.Head is looked for: past
// any timestamp, host name and program tag a log writes before the
// message.
const HeadWindow = 256

// Prefilter returns the filter's prefilter.
func (f *Filter) Prefilter() Prefilter {
	return Prefilter{Lit: f.literal, AtEnd: f.atEnd, Head: f.head}
}

// Pass reports whether line passes the prefilter.
func (pf Prefilter) Pass(line []byte) bool { return pf.passLit(line) || pf.passHead(line) }

func (pf Prefilter) passLit(line []byte) bool {
	if pf.AtEnd {
		return bytes.HasSuffix(line, pf.Lit)
	}
	return len(pf.Lit) == 0 || bytes.Contains(line, pf.Lit)
}

func (pf Prefilter) passHead(line []byte) bool {
	return pf.Head != nil && bytes.Contains(line[:min(len(line), HeadWindow)], pf.Head)
}

// Candidates calls fn for every complete line in buf that passes pf, and
// returns how many lines buf holds and the length of its complete lines
// (the rest is a partial line for the caller to carry over).
//
// It searches the whole buffer for the literal with bytes.Index and only
// then finds the surrounding line, so the lines that cannot match (most of
// a mail log) are never split out one by one. A literal that ends event
// lines is checked at each line end instead: searching for
// "(set by ratelimit)" would stop at every '(' of every line. So is a
// Head, which only the start of each line can hold.
func Candidates(buf []byte, pf Prefilter, fn func(line []byte)) (lines int, used int) {
	lit := pf.Lit
	used = bytes.LastIndexByte(buf, '\n') + 1
	whole := buf[:used]
	if bytes.IndexByte(lit, '\n') >= 0 {
		return bytes.Count(whole, nl), used // no single line can contain it
	}
	if (pf.AtEnd && len(lit) > 0) || pf.Head != nil {
		for len(whole) > 0 {
			i := bytes.IndexByte(whole, '\n')
			if pf.Pass(whole[:i]) {
				fn(whole[:i])
			}
			whole = whole[i+1:]
			lines++
		}
		return lines, used
	}
	lines = bytes.Count(whole, nl)
	if len(lit) == 0 {
		for len(whole) > 0 {
			i := bytes.IndexByte(whole, '\n')
			fn(whole[:i])
			whole = whole[i+1:]
		}
		return lines, used
	}
	for pos := 0; pos < len(whole); {
		i := bytes.Index(whole[pos:], lit)
		if i < 0 {
			break
		}
		i += pos
		start := bytes.LastIndexByte(whole[:i], '\n') + 1
		end := i + bytes.IndexByte(whole[i:], '\n')
		fn(whole[start:end])
		pos = end + 1
	}
	return lines, used
}

var nl = []byte{'\n'}
