//go:build unix

package watcher

import (
	"os"
	"syscall"
)

// fileID is what makes a file the same file across renames: its device and
// inode numbers.
type fileID struct{ dev, ino uint64 }

// idOf extracts the identity and link count from a stat result. ok is false
// on a platform or file system that does not report them.
func idOf(fi os.FileInfo) (id fileID, nlink uint64, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, 0, false
	}
	return fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)}, uint64(st.Nlink), true //nolint:unconvert // widths differ by platform
}
