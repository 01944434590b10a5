package core

import "testing"

func TestSparseLogsAtPowersOfTwo(t *testing.T) {
	var logged []uint64
	for n := uint64(1); n <= 100; n++ {
		if Sparse(n-1, n) {
			logged = append(logged, n)
		}
	}
	want := []uint64{1, 2, 4, 8, 16, 32, 64}
	if len(logged) != len(want) {
		t.Fatalf("logged at %v, want %v", logged, want)
	}
	for i := range want {
		if logged[i] != want[i] {
			t.Fatalf("logged at %v, want %v", logged, want)
		}
	}
	for _, tc := range []struct {
		before, after uint64
		want          bool
	}{{5, 9, true}, {9, 15, false}, {0, 0, false}, {3, 3, false}, {100, 300, true}} {
		if got := Sparse(tc.before, tc.after); got != tc.want {
			t.Errorf("Sparse(%d, %d) = %v", tc.before, tc.after, got)
		}
	}
}
