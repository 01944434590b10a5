package watcher

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// headBytes is how much of the start of a file identifies its content. An
// inode number alone is not enough: file systems reuse them, and
// copytruncate keeps the inode while replacing the content.
const headBytes = 64

// hashHead is FNV-1a, written out so the per-line path does not allocate.
func hashHead(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

// openFile is one open file of a source, read from its own offset.
type openFile struct {
	f     *os.File
	name  string // the name it was opened by, for messages
	id    fileID
	r     lineReader
	head  [headBytes]byte
	headN int
	full  uint64 // hashHead(head[:]) once headN == headBytes

	lastSize   int64
	lastGrowth time.Time // by Options.Clock; drives RotateWait
	// final is set for a file nobody writes to any more (a copytruncate
	// copy): it is closed as soon as it is read to its end.
	final bool
}

// openAt opens name and identifies what was actually opened; the caller
// compares ids because the name may have been replaced since a stat.
func openAt(name string, maxLine, chunk int, now time.Time) (*openFile, os.FileInfo, error) {
	fd, err := os.Open(name)
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", name, err)
	}
	fi, err := fd.Stat()
	if err != nil {
		fd.Close()
		return nil, nil, fmt.Errorf("stat %s: %w", name, err)
	}
	if !fi.Mode().IsRegular() {
		fd.Close()
		return nil, nil, fmt.Errorf("open %s: not a regular file", name)
	}
	id, _, ok := idOf(fi)
	if !ok {
		fd.Close()
		return nil, nil, fmt.Errorf("stat %s: no device/inode", name)
	}
	o := &openFile{f: fd, name: name, id: id, r: newLineReader(maxLine, chunk), lastGrowth: now}
	if err := o.loadHead(); err != nil {
		fd.Close()
		return nil, nil, err
	}
	return o, fi, nil
}

func (o *openFile) close() { o.f.Close() }

func (o *openFile) loadHead() error {
	n, err := o.f.ReadAt(o.head[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read head of %s: %w", o.name, err)
	}
	o.headN = n
	if n == headBytes {
		o.full = hashHead(o.head[:])
	}
	return nil
}

// headHash is Position.Head for offset off: the hash of the first
// min(off, headBytes) bytes, zero at offset zero.
func (o *openFile) headHash(off int64) uint64 {
	if off <= 0 {
		return 0
	}
	if off >= headBytes && o.headN == headBytes {
		return o.full
	}
	n := int(min(off, headBytes))
	if o.headN < n {
		// The file grew past what we saw of its head when opening.
		_ = o.loadHead()
		n = min(n, o.headN)
	}
	return hashHead(o.head[:n])
}

// replaced reports whether the bytes at the start of the file are no longer
// the ones we read there, which means the content was replaced (truncated and
// rewritten) even if the size did not shrink below our offset.
func (o *openFile) replaced() (bool, error) {
	var cur [headBytes]byte
	n, err := o.f.ReadAt(cur[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("read head of %s: %w", o.name, err)
	}
	k := int(min(int64(min(o.headN, n)), o.r.readOff()))
	if !bytes.Equal(cur[:k], o.head[:k]) {
		return true, nil
	}
	if n > o.headN {
		copy(o.head[:], cur[:n])
		o.headN = n
		if n == headBytes {
			o.full = hashHead(o.head[:])
		}
	}
	return false, nil
}

// matches reports whether this file's head agrees with a saved position.
func (o *openFile) matches(p Position, size int64) bool {
	return size >= p.Offset && o.headHash(p.Offset) == p.Head
}
