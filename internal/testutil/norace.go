//go:build !race

package testutil

// Race is true when the race detector is on: code runs several times
// slower, so deadlines are scaled by Scale.
const Race = false
