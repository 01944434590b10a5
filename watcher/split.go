package watcher

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// lineReader carves complete lines out of a file through one fixed buffer.
//
// It reads with ReadAt at offsets it tracks itself rather than relying on the
// descriptor's seek position, so that truncation handling and resuming are a
// matter of setting a number, and so that the offset reported after each line
// is exact by construction.
//
// Memory is bounded: the buffer holds at most one line of max bytes (and
// its CR) plus one read chunk. A longer line is skipped (counted in skipped)
// up to and including its newline; no line is ever emitted in pieces.
//
// A line ends at LF; a CR just before the LF (CRLF, as Windows programs and
// some syslog relays write) is part of the line ending, not of the line:
// filters anchored at the end of a line must match either way. The offset
// after a line is past its LF all the same.
type lineReader struct {
	buf      []byte
	start    int   // buf[start:end] is read but not yet consumed
	end      int   //
	off      int64 // file offset of buf[start]: just past the last consumed line
	max      int   // longest line accepted, without its line ending
	skipping bool  // discarding the rest of an over-long line
	skipped  uint64
}

func newLineReader(maxLine, chunk int) lineReader {
	// One full line plus its CR and LF must fit next to a read chunk, so
	// a fill after compaction always has room to make progress.
	return lineReader{buf: make([]byte, maxLine+2+chunk), max: maxLine}
}

// readOff is the file offset of the next byte to read.
func (r *lineReader) readOff() int64 { return r.off + int64(r.end-r.start) }

// reset forgets buffered bytes and positions the reader at off.
func (r *lineReader) reset(off int64) {
	r.start, r.end, r.off, r.skipping = 0, 0, off, false
}

// fill reads once from src at readOff. It returns the number of bytes read;
// io.EOF is not an error here because following a file means living at EOF.
func (r *lineReader) fill(src io.ReaderAt) (int, error) {
	if r.start == r.end {
		r.start, r.end = 0, 0
	} else if r.end == len(r.buf) {
		// Only an unfinished line remains (next consumed everything
		// else), so this copy is at most max+1 bytes and rare.
		r.end = copy(r.buf, r.buf[r.start:r.end])
		r.start = 0
	}
	n, err := src.ReadAt(r.buf[r.end:], r.readOff())
	r.end += n
	if err != nil && !errors.Is(err, io.EOF) {
		return n, fmt.Errorf("read at %d: %w", r.readOff()-int64(n), err)
	}
	return n, nil
}

// unread drops the last n bytes returned by fill, used when the file turned
// out to have been replaced under the read.
func (r *lineReader) unread(n int) { r.end -= n }

// next returns the next complete line (without its LF or CRLF) and the file
// offset just past that LF. The line aliases the internal buffer and is
// valid until the next fill. ok is false when no complete line is buffered.
func (r *lineReader) next() (line []byte, end int64, ok bool) {
	for {
		w := r.buf[r.start:r.end]
		i := bytes.IndexByte(w, '\n')
		if i < 0 {
			if !r.skipping && r.tooLong(w) {
				r.skipping = true
				r.skipped++
			}
			if r.skipping {
				// Drop what we have of the long line now so the
				// buffer never has to grow to hold it.
				r.off += int64(len(w))
				r.start = r.end
			}
			return nil, 0, false
		}
		line = dropCR(w[:i])
		r.start += i + 1
		r.off += int64(i + 1)
		if r.skipping {
			r.skipping = false
			continue
		}
		if len(line) > r.max {
			r.skipped++
			continue
		}
		return line, r.off, true
	}
}

// tooLong reports whether w, the start of a line without its LF yet, is
// already longer than max; a last byte CR may be the start of a CRLF.
func (r *lineReader) tooLong(w []byte) bool {
	return len(w) > r.max && (len(w) > r.max+1 || w[r.max] != '\r')
}

// dropCR removes the CR of a CRLF line ending.
func dropCR(line []byte) []byte {
	if n := len(line); n > 0 && line[n-1] == '\r' {
		return line[:n-1]
	}
	return line
}

// tail hands out an unterminated last line and consumes it; used only when a
// file is finished for good and the newline can never come.
func (r *lineReader) tail() (line []byte, end int64, ok bool) {
	if r.skipping || r.start == r.end {
		return nil, 0, false
	}
	line = r.buf[r.start:r.end]
	r.off += int64(len(line))
	r.start = r.end
	return dropCR(line), r.off, true
}
