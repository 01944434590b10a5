package watcher

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"
)

// growingReader exposes a prefix of data that grows, like a file being
// written.
type growingReader struct {
	data []byte
	n    int
}

func (g *growingReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(g.n) {
		return 0, io.EOF
	}
	n := copy(p, g.data[off:g.n])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// referenceSplit is the obvious, allocating definition of what lineReader
// must produce: complete lines of at most max bytes without their LF or
// CRLF, with their end offsets (past the LF).
func referenceSplit(data []byte, max int) (lines [][]byte, ends []int64) {
	off := 0
	for {
		i := bytes.IndexByte(data[off:], '\n')
		if i < 0 {
			return
		}
		line := bytes.TrimSuffix(data[off:off+i], []byte("\r"))
		if len(line) <= max {
			lines = append(lines, line)
			ends = append(ends, int64(off+i+1))
		}
		off += i + 1
	}
}

// readGrowing reads data through r as it grows by step bytes at a time,
// like a file being written, and returns the lines and their end offsets.
func readGrowing(t *testing.T, r *lineReader, data []byte, step int) (lines [][]byte, ends []int64) {
	t.Helper()
	g := &growingReader{data: data}
	for g.n < len(data) || r.readOff() < int64(len(data)) {
		g.n = min(len(data), g.n+step)
		for {
			n, err := r.fill(g)
			if err != nil {
				t.Fatal(err)
			}
			for {
				l, end, ok := r.next()
				if !ok {
					break
				}
				lines = append(lines, bytes.Clone(l))
				ends = append(ends, end)
			}
			if n == 0 {
				break
			}
		}
	}
	return lines, ends
}

func FuzzLineReader(f *testing.F) {
	f.Add([]byte("a\nbb\n\nccc"), uint8(2), uint8(3), uint8(1))
	f.Add([]byte("\x00\xff\n\r\n"), uint8(1), uint8(1), uint8(7))
	f.Add(bytes.Repeat([]byte("x"), 300), uint8(8), uint8(16), uint8(5))
	f.Add([]byte("ab\r\nabc\r\r\nab\rc\n\r\r\n\r"), uint8(1), uint8(2), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, maxLine, chunk, step uint8) {
		max, ch, st := int(maxLine)%64+1, int(chunk)%32+1, int(step)%40+1
		r := newLineReader(max, ch)
		got, ends := readGrowing(t, &r, data, st)
		for _, l := range got {
			if len(l) > max {
				t.Fatalf("line of %d bytes > max %d", len(l), max)
			}
		}
		if len(r.buf) != max+2+ch {
			t.Fatalf("buffer grew to %d", len(r.buf))
		}
		want, wantEnds := referenceSplit(data, max)
		if len(got) != len(want) {
			t.Fatalf("got %d lines, want %d: %q vs %q", len(got), len(want), got, want)
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) || ends[i] != wantEnds[i] {
				t.Fatalf("line %d: got %q@%d, want %q@%d", i, got[i], ends[i], want[i], wantEnds[i])
			}
		}
	})
}

// rspamdLine is a typical rspamd log line (about 230 bytes).
const rspamdLine = "2024-01-31 12:00:00 #1234(normal) <a1b2c3>; task; rspamd_task_write_log: id: <0123456789abcdef@example.org>, qid: <4Tq9Xy1abc>, ip: 192.0.2.1, from: <user@example.org>, (default: F (no action): [1.20/15.00] [R_SPF_ALLOW(-0.20){+ip4:192.0.2.0/24;}])\n"

// BenchmarkSplit measures the hot path: reading a buffer and cutting it into
// lines, without delivering them.
func BenchmarkSplit(b *testing.B) {
	data := bytes.Repeat([]byte(rspamdLine), 1<<16) // ~15 MB
	src := &growingReader{data: data, n: len(data)}
	r := newLineReader(64<<10, readChunk)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	lines := 0
	for range b.N {
		r.reset(0)
		for {
			n, err := r.fill(src)
			if err != nil {
				b.Fatal(err)
			}
			for {
				_, _, ok := r.next()
				if !ok {
					break
				}
				lines++
			}
			if n == 0 {
				break
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(lines), "ns/line")
}

// BenchmarkFollowerEmit adds what the follower does per line: copy into the
// batch arena and build the Line with its Position.
func BenchmarkFollowerEmit(b *testing.B) {
	data := bytes.Repeat([]byte(rspamdLine), 1<<16)
	src := &growingReader{data: data, n: len(data)}
	f := &Follower{out: newBatcher(1024, 64<<10)}
	go func() {
		for range f.out.out {
		}
	}()
	defer close(f.out.out)
	o := &openFile{r: newLineReader(64<<10, readChunk), headN: headBytes}
	copy(o.head[:], data)
	o.full = hashHead(o.head[:])
	s := &source{path: "/var/log/rspamd/rspamd.log"}
	ctx := b.Context()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		o.r.reset(0)
		for {
			n, err := o.r.fill(src)
			if err != nil {
				b.Fatal(err)
			}
			for {
				l, end, ok := o.r.next()
				if !ok {
					break
				}
				f.emit(ctx, s, o, l, end, time.Time{})
			}
			if n == 0 {
				break
			}
		}
	}
}

// MaxLineBytes counts the line without its ending, LF or CRLF alike, and
// however the bytes arrive.
func TestLineReaderLimitExcludesTheCRLF(t *testing.T) {
	const max = 4
	for _, tc := range []struct {
		name, data string
		want       []string
	}{
		{"max bytes and CRLF", "abcd\r\n", []string{"abcd"}},
		{"max bytes and LF", "abcd\n", []string{"abcd"}},
		{"one more and CRLF", "abcde\r\nok\r\n", []string{"ok"}},
		{"CR then more is not an ending", "abcd\rx\nok\n", []string{"ok"}},
		{"CR of max+1 bytes alone", "abc\r\r\n", []string{"abc\r"}},
		{"empty CRLF line", "\r\n\r\n", []string{"", ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for step := 1; step <= len(tc.data); step++ {
				r := newLineReader(max, 3)
				lines, _ := readGrowing(t, &r, []byte(tc.data), step)
				var got []string
				for _, l := range lines {
					got = append(got, string(l))
				}
				if strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
					t.Errorf("step %d: got %q, want %q", step, got, tc.want)
				}
			}
		})
	}
}
