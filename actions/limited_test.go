package actions

import "testing"

// The output buffer takes every write whole, so the command never sees
// an error or a short write, and keeps only its limit.
func TestLimitedNeverFails(t *testing.T) {
	l := &limited{limit: 4}
	for _, s := range []string{"ab", "cdef", "", "gh"} {
		if n, err := l.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if o := l.output(); string(o.Kept) != "abcd" || o.Dropped != 4 {
		t.Errorf("output = %q, %d", o.Kept, o.Dropped)
	}
}
