package testutil

import (
	"slices"
	"testing"
)

func TestBinaryEnvTurnsOffTheRaceExitSleepOnly(t *testing.T) {
	in := []string{"A=1", "GORACE=halt_on_error=1", "B=2"}
	got := BinaryEnv(slices.Clone(in))
	want := in
	if Race {
		want = []string{"A=1", "B=2", "GORACE=halt_on_error=1 atexit_sleep_ms=0"}
	}
	if !slices.Equal(got, want) {
		t.Errorf("BinaryEnv(%q) = %q, want %q", in, got, want)
	}
	if got := BinaryEnv([]string{"A=1"}); Race && !slices.Equal(got, []string{"A=1", "GORACE=atexit_sleep_ms=0"}) {
		t.Errorf("BinaryEnv without GORACE = %q", got)
	}
}
