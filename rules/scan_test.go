package rules

import (
	"bytes"
	"strings"
	"testing"
)

func TestCandidates(t *testing.T) {
	buf := []byte("a x b\nno\nx at start\nend x\nx x twice\npartial x")
	var got []string
	lines, used := Candidates(buf, Prefilter{Lit: []byte("x")}, func(l []byte) { got = append(got, string(l)) })
	if strings.Join(got, "|") != "a x b|x at start|end x|x x twice" || lines != 5 || used != len(buf)-len("partial x") {
		t.Errorf("got %q lines=%d used=%d", got, lines, used)
	}
	got = nil
	Candidates(buf, Prefilter{}, func(l []byte) { got = append(got, string(l)) })
	if len(got) != 5 {
		t.Errorf("all lines: %q", got)
	}
	got = nil
	lines, _ = Candidates(buf, Prefilter{Lit: []byte("x"), AtEnd: true}, func(l []byte) { got = append(got, string(l)) })
	if strings.Join(got, "|") != "end x" || lines != 5 {
		t.Errorf("at end: %q lines=%d", got, lines)
	}
}

func FuzzCandidates(f *testing.F) {
	f.Add([]byte("a\nbxb\n\nx"), []byte("x"), false)
	f.Fuzz(func(t *testing.T, buf, lit []byte, atEnd bool) {
		var n int
		lines, used := Candidates(buf, Prefilter{Lit: lit, AtEnd: atEnd}, func(l []byte) {
			if bytes.IndexByte(l, '\n') >= 0 || !bytes.Contains(l, lit) || atEnd && !bytes.HasSuffix(l, lit) {
				t.Fatalf("bad candidate %q", l)
			}
			n++
		})
		if used > len(buf) || lines != bytes.Count(buf[:used], []byte("\n")) || n > lines {
			t.Fatalf("lines=%d used=%d n=%d", lines, used, n)
		}
	})
}
