// Package watcher follows log files (rspamd, Postfix) and delivers their
// lines in batches, each line carrying the exact position just after it, so
// that the daemon can store the position in the same SQLite transaction as
// the strikes the line produced. After a crash reading resumes at the last
// committed line: no line is missed and none is counted twice.
//
// # API
//
//	f, err := watcher.Follow(ctx, []string{"/var/log/rspamd/*.log"}, saved, watcher.Options{})
//	for batch := range f.Batches() {
//		// match lines, then in one transaction: strikes + batch[i].Pos
//		// of the last line of each Path
//	}
//	st := f.Stats()
//
// # Why not github.com/nxadm/tail
//
// nxadm/tail was evaluated and rejected. On a rename or delete event it
// closes the old file and opens the new one, so lines a writer appends to
// the old inode after the rename (rspamd does until it gets SIGUSR1) are
// lost. Without CompleteLines it emits a partial last line and seeks to the
// end; its offsets carry no device/inode, so an offset cannot be tied to the
// file it belongs to across a rotation; a long line is read whole into memory
// before MaxLineSize splits it (into several "lines"); and every line is a
// string allocation. This package is written directly on fsnotify instead.
//
// # How it works
//
// Each followed path has a queue of open files, oldest first; only the
// oldest is read. A sweep stats the path: a different inode there (rename
// rotation, delete and recreate, first appearance) is opened and queued. The
// old file is kept open and read to its end until it has not grown for
// Options.RotateWait, and only then does reading move to the new file, from
// offset 0. Reading the files of one path strictly one after another is what
// makes a single saved Position per path sufficient.
//
// When the path was rotated more than once since the last look, the files in
// between are found among its rotated siblings (path.1, path.2, ...; written
// after the newest queued file) and queued before the file now at the path.
// The file at the path is opened before that search, so a rotation during
// the look cannot make the follower take one file for another, and the
// directory is listed until two listings agree. A file deleted before the
// follower ever opened it cannot be read by anyone; such a file is lost.
//
// A file found shorter than what was read, or whose first bytes changed, was
// truncated (copytruncate) or rewritten: it is read again from offset 0.
// Before that, the rotated siblings (path.1, path-20240131, ...) are searched
// for a copy with the same first bytes, and the lines between our offset and
// the truncation are read from it.
//
// On start, a saved Position is checked against the file at its path
// (device, inode, hash of the first bytes, size). If the file changed while
// we were stopped, the old one is looked for among the rotated siblings,
// finished from the saved offset, followed by any sibling written after it,
// then the current file from 0. Failing that the current file is read from 0
// and a warning logged. Files without a saved position start at their end on
// the first start (unless Options.FromStart) and at 0 when they appear later;
// no rotated sibling is read for them, since nothing tells which was ours.
//
// Filesystem notifications (a watch on each pattern's directory) only wake
// the follower; every decision is made from stat, and a poll every
// Options.PollInterval (a ticker on Options.Clock) catches what inotify
// misses (NFS, files moved to another directory, writes to deleted files).
// The follower holds the channel of its Waker until it fires and asks for a
// new one only when everything is read and delivered, so a test's waker
// (internal/testutil.TestWaker) knows when the work of a wake-up is done.
//
// Lines longer than Options.MaxLineBytes are skipped up to their newline,
// counted and logged; memory per file is one line plus one 64 KiB read
// chunk. A last line without newline is held until its newline arrives; it
// is only delivered without one when its file is finished for good. A line
// ends at LF, and the CR of a CRLF ending is not part of the line (filters
// anchored at the line's end match either way); the position after it is
// past the LF. Other bytes pass through unchanged (NUL, invalid UTF-8, a CR
// inside a line).
//
// Residual risks: content replaced by content with the same first 64 bytes
// in the same inode is not detected; logrotate's copytruncate loses what is
// written between its copy and its truncate (nothing can recover that);
// compressed rotated files are not read; a copytruncate of content of which
// not a single byte was read yet looks exactly like growth, so that content
// is lost (only when rotations come faster than the follower reads).
//
// Globs are expanded with filepath.Glob and re-expanded when a directory
// changes or on each poll; a file reachable through several patterns or
// paths (same device and inode) is read through one of them only.
//
// Only Unix-like systems are supported: identity comes from syscall.Stat_t.
//
// # Files
//
// options.go (Options, Stats), follower.go (Follow, the loop and the poll
// waker), discovery.go (globs, first open, one path per file), rotation.go
// (resume, rotation, truncation, finishing files), read.go (the sweep),
// split.go (the line reader), file.go (an open file and its identity),
// siblings.go (rotated copies), batch.go (batches, shared by both
// followers), journal*.go (the journal through journalctl).
package watcher
