package rules

import "bytes"

// Prefilter is the cheap test a line must pass before a filter's regex
// runs: it contains Lit (or, with AtEnd, ends with it), or its first ';'
// starts Task. A zero Prefilter passes every line.
type Prefilter struct {
	Lit   []byte
	AtEnd bool
	// Task, when set, also lets through the lines whose first ';' starts
	// Task: the lines a filter must see although they are no events, such
	// as the rspamd filter's ratelimit.lua lines ("<tag>; lua;
	// ratelimit.lua:"), which name the bucket that a summary line with a
	// bucket's own message does not. rspamd writes the first ';' of each
	// line itself, right after its task tag, so one assembly search for
	// the byte near the line's start and a short comparison decide: far
	// cheaper than looking at every line's end or searching it all.
	Task []byte
}

// Prefilter returns the filter's prefilter.
func (f *Filter) Prefilter() Prefilter {
	return Prefilter{Lit: f.literal, AtEnd: f.atEnd, Task: f.task}
}

// Pass reports whether line passes the prefilter.
func (pf Prefilter) Pass(line []byte) bool { return pf.passLit(line) || pf.passTask(line) }

func (pf Prefilter) passLit(line []byte) bool {
	if pf.AtEnd {
		return bytes.HasSuffix(line, pf.Lit)
	}
	return len(pf.Lit) == 0 || bytes.Contains(line, pf.Lit)
}

func (pf Prefilter) passTask(line []byte) bool {
	if pf.Task == nil {
		return false
	}
	i := bytes.IndexByte(line, ';')
	return i >= 0 && bytes.HasPrefix(line[i:], pf.Task)
}

// Candidates calls fn for every complete line in buf that passes pf, and
// returns how many lines buf holds and the length of its complete lines
// (the rest is a partial line for the caller to carry over).
//
// It searches the whole buffer for the literal with bytes.Index and only
// then finds the surrounding line, so the lines that cannot match (most of
// a mail log) are never split out one by one. A literal that ends event
// lines is checked at each line end instead: searching for
// "(set by ratelimit)" would stop at every '(' of every line. So is Task,
// near each line's start.
func Candidates(buf []byte, pf Prefilter, fn func(line []byte)) (lines int, used int) {
	lit := pf.Lit
	used = bytes.LastIndexByte(buf, '\n') + 1
	whole := buf[:used]
	if bytes.IndexByte(lit, '\n') >= 0 {
		return bytes.Count(whole, nl), used // no single line can contain it
	}
	if (pf.AtEnd && len(lit) > 0) || pf.Task != nil {
		for len(whole) > 0 {
			i := bytes.IndexByte(whole, '\n')
			if pf.passLit(whole[:i]) || pf.passTask(whole[:i]) {
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
