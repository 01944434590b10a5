package core

import "math/bits"

// Sparse reports whether a count that went from before to after passed a
// power of two. Warnings about input an attacker can repeat at will (an
// over-long line, an unreadable journal entry) are logged at the 1st,
// 2nd, 4th, 8th... occurrence, with the count, never once per line read.
func Sparse(before, after uint64) bool {
	return after > before && bits.Len64(after) > bits.Len64(before)
}
