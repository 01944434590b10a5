//go:build race

package e2e

// raceEnabled reports whether the test binary runs with the race detector; the
// daemon under test is then built with -race too.
const raceEnabled = true
