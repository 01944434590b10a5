package rules

import "bytes"

// Candidates calls fn for every complete line in buf that contains lit,
// and returns how many lines buf holds and the length of its complete
// lines (the rest is a partial line for the caller to carry over).
//
// It searches the whole buffer for lit with bytes.Index and only then
// finds the surrounding line, so the lines that cannot match (most of a
// mail log) are never split out one by one. With an empty lit every line
// is a candidate.
func Candidates(buf, lit []byte, fn func(line []byte)) (lines int, used int) {
	used = bytes.LastIndexByte(buf, '\n') + 1
	whole := buf[:used]
	lines = bytes.Count(whole, nl)
	if bytes.IndexByte(lit, '\n') >= 0 {
		return lines, used // no single line can contain it
	}
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
