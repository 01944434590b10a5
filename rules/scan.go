package rules

import "bytes"

// Prefilter is the cheap test a line must pass before a filter's regex
// runs: it contains Lit (or, with AtEnd, ends with it). A zero Prefilter
// passes every line.
type Prefilter struct {
	Lit   []byte
	AtEnd bool
}

// Prefilter returns the filter's prefilter.
func (f *Filter) Prefilter() Prefilter { return Prefilter{Lit: f.literal, AtEnd: f.atEnd} }

// Pass reports whether line passes the prefilter.
func (pf Prefilter) Pass(line []byte) bool {
	if pf.AtEnd {
		return bytes.HasSuffix(line, pf.Lit)
	}
	return len(pf.Lit) == 0 || bytes.Contains(line, pf.Lit)
}

// Candidates calls fn for every complete line in buf that passes pf, and
// returns how many lines buf holds and the length of its complete lines
// (the rest is a partial line for the caller to carry over).
//
// It searches the whole buffer for the literal with bytes.Index and only
// then finds the surrounding line, so the lines that cannot match (most of
// a mail log) are never split out one by one. A literal that ends event
// lines is checked at each line end instead: searching for
// "(set by ratelimit)" would stop at every '(' of every line.
func Candidates(buf []byte, pf Prefilter, fn func(line []byte)) (lines int, used int) {
	lit := pf.Lit
	used = bytes.LastIndexByte(buf, '\n') + 1
	whole := buf[:used]
	if bytes.IndexByte(lit, '\n') >= 0 {
		return bytes.Count(whole, nl), used // no single line can contain it
	}
	if pf.AtEnd && len(lit) > 0 {
		for len(whole) > 0 {
			i := bytes.IndexByte(whole, '\n')
			if bytes.HasSuffix(whole[:i], lit) {
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
