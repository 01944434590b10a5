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
// the one regex accepts, with the same captures (FuzzSplitAgrees checks
// that), provided:
//
//   - the tail starts with tailAt, so the greedy ".*" before it means "the
//     last occurrence of tailAt at which the tail matches" (when that is
//     not the last occurrence, whole decides);
//   - the head can only match up to the first headAt plus headWindow bytes
//     (it ends right after the captured address and, when there is one,
//     the login after it), and what it may leave out of an optional
//     group at its end cannot hold the start of a MID match.
type splitRegex struct {
	head       *regexp.Regexp // ^..., captures host and maybe user
	mid        *regexp.Regexp // must occur between the head and the tail
	tailAt     []byte
	tail       *regexp.Regexp // ^tailAt...$, may capture the bucket
	headAt     []byte
	headWindow int
	whole      *regexp.Regexp // the one regex
}

// match returns the spans of the host, user and bucket captures of msg
// (user and bucket {-1, -1} when they took no part), or ok=false.
func (s *splitRegex) match(msg []byte) (host, user, bucket span, ok bool) {
	k := bytes.LastIndex(msg, s.tailAt)
	if k < 0 {
		return host, user, bucket, false
	}
	t := s.tail.FindSubmatchIndex(msg[k:])
	if t == nil {
		if bytes.Contains(msg[:k], s.tailAt) {
			return s.wholeMatch(msg)
		}
		return host, user, bucket, false
	}
	end := k
	if i := bytes.Index(msg[:k], s.headAt); i >= 0 {
		end = min(k, i+len(s.headAt)+s.headWindow)
	}
	h := s.head.FindSubmatchIndex(msg[:end])
	if h == nil || !s.mid.Match(msg[h[1]:k]) {
		return host, user, bucket, false
	}
	host = groupSpan(s.head, h, "host")
	user = groupSpan(s.head, h, "user")
	bucket = groupSpan(s.tail, t, "bucket")
	if bucket.ok() {
		bucket = span{k + bucket[0], k + bucket[1]}
	}
	return host, user, bucket, true
}

// wholeMatch runs the one regex. It takes the lines whose last tailAt
// does not start a tail but an earlier one might (a tail whose free text
// spans the later tailAt): trying each earlier tailAt in turn would cost
// a hostile line with thousands of them quadratic time, the one regex
// costs linear time, and genuine events never get here.
func (s *splitRegex) wholeMatch(msg []byte) (host, user, bucket span, ok bool) {
	m := s.whole.FindSubmatchIndex(msg)
	if m == nil {
		return host, user, bucket, false
	}
	return groupSpan(s.whole, m, "host"), groupSpan(s.whole, m, "user"), groupSpan(s.whole, m, "bucket"), true
}
