package rules

import (
	"bytes"
	"regexp"
)

// splitRegex is a fail regex of the form HEAD.*MID.*TAIL$ cut into its
// three anchored pieces. Go's regexp runs one regex with two unanchored
// ".*" over the whole (500-byte, attacker-padded) line; the pieces each
// look at only the bytes they need, which makes a match several times
// faster and a hostile near-miss almost free. It accepts exactly the lines
// the one regex accepts (FuzzSplitAgrees checks that), provided:
//
//   - the tail starts with tailAt and nothing the tail matches after tailAt
//     can contain tailAt again, so the greedy ".*" before it means "the
//     last occurrence of tailAt";
//   - the head can only match up to the first headAt plus headWindow bytes
//     (it ends right after the captured address).
type splitRegex struct {
	head       *regexp.Regexp // ^..., captures the host (group 1)
	mid        *regexp.Regexp // must occur between the head and the tail
	tailAt     []byte
	tail       *regexp.Regexp // ^tailAt...$, captures the bucket (group 1)
	headAt     []byte
	headWindow int
}

// match returns the host and bucket spans of msg, or ok=false.
func (s *splitRegex) match(msg []byte) (host, bucket []byte, ok bool) {
	k := bytes.LastIndex(msg, s.tailAt)
	if k < 0 {
		return nil, nil, false
	}
	t := s.tail.FindSubmatchIndex(msg[k:])
	if t == nil {
		return nil, nil, false
	}
	end := k
	if i := bytes.Index(msg[:k], s.headAt); i >= 0 {
		end = min(k, i+len(s.headAt)+s.headWindow)
	}
	h := s.head.FindSubmatchIndex(msg[:end])
	if h == nil || !s.mid.Match(msg[h[1]:k]) {
		return nil, nil, false
	}
	return msg[h[2]:h[3]], msg[k+t[2] : k+t[3]], true
}
