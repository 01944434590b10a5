// Package mapfile renders and writes the rspamd multimap "ip" file that
// mailjail owns. The file is always complete: it is written to a temporary
// file in the same directory, fsync'd, renamed over the old one (renameio),
// and the directory is fsync'd, so rspamd (which rereads the map by itself
// when it changes) and a crash at any moment only ever see the old list or
// the new one, never half of either. A rewrite keeps the file's group and
// mode, so rspamd can still open it (CheckWritable, Reader.CanOpen).
//
// ParseEntries reads a map as rspamd 3.4 does, to take over one that
// existed before mailjail; TryLock makes one process the map's only owner.
package mapfile

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/renameio/v2"
)

// Entry is one banned address or range.
type Entry struct {
	Prefix netip.Prefix
	Until  time.Time // zero: permanent
	Jail   string
}

// Header opens every map mailjail writes; it tells an operator who edits
// the file by hand that the change will not last.
const Header = "# Managed by mailjail: rewritten on every change, edits here are lost.\n" +
	"# Use `mailjail ban` / `mailjail unban`; `mailjail list` shows why each entry is here.\n"

// Normalize sorts entries by address and merges duplicates (one address
// banned by several jails is one map line, kept for the longest ban), so
// the file is stable and diffs between versions stay small.
func Normalize(entries []Entry) []Entry {
	out := slices.Clone(entries)
	slices.SortFunc(out, func(a, b Entry) int {
		if c := a.Prefix.Addr().Compare(b.Prefix.Addr()); c != 0 {
			return c
		}
		if c := a.Prefix.Bits() - b.Prefix.Bits(); c != 0 {
			return c
		}
		return strings.Compare(a.Jail, b.Jail)
	})
	j := 0
	for i, e := range out {
		if i > 0 && e.Prefix == out[j].Prefix {
			if longer(e, out[j]) {
				out[j] = e
			}
			continue
		}
		if i > 0 {
			j++
		}
		out[j] = e
	}
	if len(out) == 0 {
		return out
	}
	return out[:j+1]
}

func longer(a, b Entry) bool {
	switch {
	case a.Until.IsZero():
		return !b.Until.IsZero()
	case b.Until.IsZero():
		return false
	}
	return a.Until.After(b.Until)
}

// Render writes the map: the header, a count, and one line per entry with
// a trailing comment rspamd ignores: "ADDR # until 2026-11-25T04:00:00Z
// jail=NAME" (or "# permanent jail=NAME"). entries must be normalised.
// NAME is escaped (see escapeField): whatever a jail is called, each entry
// is one line and ParseEntries reads the name back exactly.
func Render(w io.Writer, entries []Entry, now time.Time) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.WriteString(Header)
	fmt.Fprintf(bw, "# %d entries, written %s\n", len(entries), now.UTC().Format(time.RFC3339))
	buf := make([]byte, 0, 128)
	for _, e := range entries {
		buf = buf[:0]
		if e.Prefix.IsSingleIP() {
			buf = e.Prefix.Addr().AppendTo(buf)
		} else {
			buf = e.Prefix.AppendTo(buf)
		}
		if e.Until.IsZero() {
			buf = append(buf, " # permanent"...)
		} else {
			buf = append(buf, " # until "...)
			buf = e.Until.UTC().AppendFormat(buf, time.RFC3339)
		}
		buf = append(buf, " jail="...)
		buf = append(buf, escapeField(e.Jail)...)
		buf = append(buf, '\n')
		bw.Write(buf)
	}
	return bw.Flush()
}

// Write atomically replaces the map at path with entries. On any error the
// old file is untouched (a full disk fails the write, not the map).
//
// The new file keeps the old one's mode and group, so that a map an
// administrator made readable to rspamd alone (root:_rspamd 0640) stays
// readable to it; its owner is the writing process's user. When the group
// cannot be kept (a process that is not root can only give a file a group
// it belongs to) the write fails and the old map stays: a map rspamd
// cannot open would lift every ban. CheckWritable reports that in advance.
func Write(path string, entries []Entry, now time.Time) error {
	return writeAtomic(path, func(w io.Writer) error { return Render(w, Normalize(entries), now) })
}

// WriteFile atomically replaces the file at path with what render writes,
// as Write does for the map: the old file's mode and group are kept, and on
// any error (render's included) the old file is untouched. It serves the
// other files mailjail owns (the Postfix access table).
func WriteFile(path string, render func(io.Writer) error) error {
	return writeAtomic(path, render)
}

// writeAtomic replaces the file at path with what render writes, keeping
// its mode and group; on any error the old file is untouched.
func writeAtomic(path string, render func(io.Writer) error) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write map %s: %w", path, err)
	}
	// The temporary file goes beside the map: the rename cannot cross
	// file systems, and renameio would otherwise probe $TMPDIR each time.
	pf, err := renameio.NewPendingFile(path, renameio.WithTempDir(dir),
		renameio.WithPermissions(0o644), renameio.WithExistingPermissions())
	if err != nil {
		return fmt.Errorf("write map %s: %w", path, err)
	}
	defer pf.Cleanup()
	if err := keepGroup(pf.File, path); err != nil {
		return fmt.Errorf("write map %s: %w", path, err)
	}
	if err := render(pf); err != nil {
		return fmt.Errorf("write map %s: %w", path, err)
	}
	if err := pf.CloseAtomicallyReplace(); err != nil {
		return fmt.Errorf("write map %s: %w", path, err)
	}
	// The rename is durable only once the directory entry is on disk.
	return SyncDir(dir)
}

// SyncDir makes the renames done in dir durable: a renamed file is only
// in place after a crash once its directory entry is on disk.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
