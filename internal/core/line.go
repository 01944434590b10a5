package core

import (
	"strings"
	"time"
)

// Position identifies a place in a log source so reading can resume
// exactly there. The consumer stores the Pos of the last line of each path
// it committed, in the transaction of the strikes those lines made, and
// hands those back to the watcher on the next start.
type Position struct {
	// Path is the followed path (a literal path or a glob match), or a
	// journal source's key: the key under which positions are saved.
	Path string
	// Dev and Ino identify the file that Offset refers to; after a rename
	// rotation it is no longer the file at Path.
	Dev, Ino uint64
	// Offset is the byte offset just past the last consumed line.
	Offset int64
	// Head is a hash of the first min(Offset, 64) bytes of the file, zero
	// when Offset is zero. It tells a file apart from a truncated or
	// rewritten one that kept (or reused) the same inode.
	Head uint64
	// Cursor is a systemd journal cursor, for journal sources; files leave
	// it empty.
	Cursor string
}

// Line is one complete line read from a log source.
type Line struct {
	// Path is the followed path the line came from (the glob match, not
	// the pattern), even when it was read from the rotated-away file; for
	// a journal source, its key.
	Path string
	// Text is the line without its line ending, byte for byte (NUL and
	// invalid UTF-8 included). It is only valid until the next batch is
	// received.
	Text []byte
	// Pos is the position just after this line.
	Pos Position
	// Read is when the line was read, by the source's clock; a fallback
	// for lines without a usable timestamp.
	Read time.Time
}

// JournalMatch selects the journal entries a journal source delivers. Units
// and Identifiers both narrow the selection: an entry must match one of the
// units (when any are given) and one of the identifiers (when any are
// given). A value ending in "*" matches by prefix ("postfix*" also matches
// the multi-instance "postfix-out/smtpd"). Exact values are handed to
// journalctl, which then reads only matching entries; a prefix is checked
// by the follower, so journalctl reads every entry (of the units, if those
// are exact).
type JournalMatch struct {
	// Name makes the source's key, "journal:" + Name, the Position.Path
	// its lines carry and its position is saved under. Changing it
	// forgets the saved position. Default: the units and identifiers
	// joined with ",".
	Name string
	// Units are systemd units (_SYSTEMD_UNIT), e.g. "postfix@-.service".
	Units []string
	// Identifiers are syslog identifiers (SYSLOG_IDENTIFIER), e.g.
	// "postfix/smtpd", or "postfix/*" for all of Postfix's programs.
	Identifiers []string
	// Directory reads the journal files of this directory
	// (journalctl --directory) instead of the system journal.
	Directory string
	// Journalctl is the journalctl binary (default: "journalctl" in PATH).
	Journalctl string
}

// Key is the Position.Path of the source's lines: "journal:" + Name, or the
// units and identifiers when Name is empty.
func (m JournalMatch) Key() string {
	if m.Name != "" {
		return "journal:" + m.Name
	}
	return "journal:" + strings.Join(append(append([]string(nil), m.Units...), m.Identifiers...), ",")
}
