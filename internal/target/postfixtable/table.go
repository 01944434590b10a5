// Package postfixtable is the "postfix" enforcement target: a Postfix
// access table of the banned clients ("ADDR REJECT text"), which smtpd
// consults through check_client_access (or postscreen through
// postscreen_access_list), so a banned client is refused by Postfix itself
// before rspamd scans anything.
//
// Two table types, because Postfix rereads them differently:
//
//   - hash: the source is rebuilt into FILE.db with postmap. smtpd notices a
//     replaced .db by itself before it accepts the next connection (dict.c,
//     dict_changed_name), so no reload is needed. An exact-match table has
//     no CIDR: prefixes become the truncated keys smtpd also looks up (see
//     Keys), and a few IPv6 prefixes cannot be written at all.
//   - cidr: one "ADDR/LEN REJECT text" line per ban; read only when an smtpd
//     (or postscreen) process starts, so every change runs Reload
//     (postfix reload). postscreen_access_list needs this type.
//
// Either way the table is never half-written: a hash table's new source is
// built under a temporary name beside the table, postmap'd there, and the
// .db and then the source are renamed into place (postmap itself rewrites
// a .db in place); a cidr table is replaced by one rename. A failing
// postmap leaves the old source and .db as they were. The files keep their
// mode and group, so Postfix can still read them.
package postfixtable

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/mailjail/mailjail/internal/enforce"
	"github.com/mailjail/mailjail/mapfile"
)

// Table types.
const (
	TypeHash = "hash"
	TypeCIDR = "cidr"
)

// Defaults of Config's optional fields.
const (
	DefaultPostmap = "postmap"
	DefaultMessage = "banned by mailjail"
)

// DefaultReload is what tells Postfix that a cidr table changed.
var DefaultReload = []string{"postfix", "reload"}

// Config is one Postfix table. The daemon's configuration maps its
// [postfix] section onto it.
type Config struct {
	Path    string   // the table's source file; a hash table's database is Path + ".db"
	Type    string   // TypeHash or TypeCIDR
	Postmap string   // program that builds a hash table; default "postmap"
	Reload  []string // argv run after a cidr table changed; default DefaultReload
	Message string   // text after REJECT, which the client sees; default DefaultMessage
}

// withDefaults fills the optional fields.
func (c Config) withDefaults() Config {
	if c.Postmap == "" {
		c.Postmap = DefaultPostmap
	}
	if len(c.Reload) == 0 {
		c.Reload = DefaultReload
	}
	if c.Message == "" {
		c.Message = DefaultMessage
	}
	return c
}

// Validate reports a configuration that cannot be written: an unknown
// type, no path, or a message that would end the table's line (and so
// could add a line of its own).
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Path == "":
		return errors.New("postfix table: path is empty")
	case c.Type != TypeHash && c.Type != TypeCIDR:
		return fmt.Errorf("postfix table %s: type %q: want %q or %q", c.Path, c.Type, TypeHash, TypeCIDR)
	case strings.ContainsFunc(c.Message, func(r rune) bool { return r < ' ' || r == 0x7f }):
		return fmt.Errorf("postfix table %s: message %q holds a control character", c.Path, c.Message)
	case c.Reload[0] == "":
		return fmt.Errorf("postfix table %s: reload command is empty", c.Path)
	}
	return nil
}

// Table is the target. Sync and Drifted may run in different goroutines.
type Table struct {
	c Config

	mu      sync.Mutex
	written []byte // the source as the last successful Sync wrote it; nil before
	src, db enforce.FileID
	entries int
	reload  bool // a cidr table written whose reload has not succeeded yet
}

// New makes the target for the table c; c is checked by Sync (and should be
// by the configuration with Validate).
func New(c Config) *Table { return &Table{c: c.withDefaults()} }

// Name is "postfix:TYPE:PATH", as status shows it.
func (t *Table) Name() string { return "postfix:" + t.c.Type + ":" + t.c.Path }

// Entries is how many lines (keys) the table held after the last
// successful Sync.
func (t *Table) Entries() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.entries
}

// Sync makes the table hold exactly s's active bans. A state equal to the
// last one written, with the files still those written, costs no postmap
// and no reload. A ban that a hash table cannot hold is left out and named
// in the returned error, after the others are written: the reconciler
// retries (cheaply, nothing changed) and status shows why.
func (t *Table) Sync(ctx context.Context, s enforce.State) error {
	if err := t.c.Validate(); err != nil {
		return err
	}
	content, n, skipped := t.content(s)
	t.mu.Lock()
	same := t.written != nil && bytes.Equal(content, t.written) && !t.driftedLocked() && !t.reload
	t.mu.Unlock()
	if !same {
		var err error
		if t.c.Type == TypeHash {
			err = t.writeHash(ctx, content)
		} else {
			err = t.writeCIDR(ctx, content)
		}
		if err != nil {
			return err
		}
		t.mu.Lock()
		t.written, t.entries = content, n
		t.mu.Unlock()
	}
	return skipped
}

// content is the source file for s's active bans and its number of
// lines; skipped names the bans left out.
func (t *Table) content(s enforce.State) (content []byte, n int, skipped error) {
	entries := make([]mapfile.Entry, 0, len(s.Bans))
	for _, b := range s.Bans {
		if !b.Until.IsZero() && !b.Until.After(s.At) {
			continue
		}
		entries = append(entries, mapfile.Entry{Prefix: b.Prefix.Masked(), Until: b.Until, Jail: b.Jail})
	}
	lines, skipped := t.lines(mapfile.Normalize(entries))
	return t.render(lines, len(entries)), len(lines), skipped
}

// lines is the table's keys (hash) or patterns (cidr), each once, in the
// order of the normalised entries; skipped names the prefixes a hash table
// cannot hold.
func (t *Table) lines(entries []mapfile.Entry) (lines []string, skipped error) {
	if t.c.Type == TypeCIDR {
		for _, e := range entries {
			if e.Prefix.IsSingleIP() {
				lines = append(lines, e.Prefix.Addr().String())
			} else {
				lines = append(lines, e.Prefix.String())
			}
		}
		return lines, nil
	}
	seen := make(map[string]struct{}, len(entries))
	var errs []error
	for _, e := range entries {
		keys, err := Keys(e.Prefix)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, k := range keys {
			if _, dup := seen[k]; !dup {
				seen[k] = struct{}{}
				lines = append(lines, k)
			}
		}
	}
	if len(errs) > 0 {
		return lines, fmt.Errorf("%s: %d bans left out: %w", t.Name(), len(errs), errors.Join(errs...))
	}
	return lines, nil
}

// render is the source file: mapfile's header (edits are lost), a count,
// then "LINE REJECT message" for each line. It holds no time stamp, so the
// same bans give the same bytes and an unchanged state is not rewritten.
func (t *Table) render(lines []string, bans int) []byte {
	var b bytes.Buffer
	b.Grow(len(mapfile.Header) + 128 + len(lines)*(24+len(t.c.Message)))
	b.WriteString(mapfile.Header)
	if t.c.Type == TypeHash {
		fmt.Fprintf(&b, "# Postfix reads %s.db, built from this file by postmap. %d keys for %d bans.\n",
			filepath.Base(t.c.Path), len(lines), bans)
	} else {
		fmt.Fprintf(&b, "# Postfix reads this file when smtpd starts (postfix reload). %d entries.\n", len(lines))
	}
	for _, l := range lines {
		b.WriteString(l)
		b.WriteString(" REJECT ")
		b.WriteString(t.c.Message)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// writeHash builds the new table under a temporary name beside it and
// renames the .db, then the source, into place: smtpd only reads the .db,
// so it sees the old table or the new one, and a failure at any step
// leaves both old files as they were.
func (t *Table) writeHash(ctx context.Context, content []byte) error {
	path := t.c.Path
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".mailjail-new")
	os.Remove(tmp + ".db") // a crash's leftovers: postmap would update, not rebuild, a .db
	defer os.Remove(tmp)
	defer os.Remove(tmp + ".db")
	if err := mapfile.WriteFile(tmp, func(w io.Writer) error { _, err := w.Write(content); return err }); err != nil {
		return err
	}
	if err := keepAttrs(tmp, path); err != nil {
		return err
	}
	if err := run(ctx, []string{t.c.Postmap, "hash:" + tmp}); err != nil {
		return fmt.Errorf("build %s.db: %w", path, err)
	}
	if err := keepAttrs(tmp+".db", path+".db"); err != nil {
		return err
	}
	if err := os.Rename(tmp+".db", path+".db"); err != nil {
		return fmt.Errorf("replace %s.db: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	if err := mapfile.SyncDir(filepath.Dir(path)); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.src, _ = enforce.StatFile(path)
	t.db, _ = enforce.StatFile(path + ".db")
	return nil
}

// writeCIDR replaces the table and has Postfix reread it. A failed reload
// leaves the new file in place (smtpd processes read it when they next
// start) and is retried by the next Sync even if nothing else changed.
func (t *Table) writeCIDR(ctx context.Context, content []byte) error {
	if err := mapfile.WriteFile(t.c.Path, func(w io.Writer) error { _, err := w.Write(content); return err }); err != nil {
		return err
	}
	src, _ := enforce.StatFile(t.c.Path)
	t.mu.Lock()
	t.src, t.reload = src, true
	t.mu.Unlock()
	if err := run(ctx, t.c.Reload); err != nil {
		return fmt.Errorf("reload after writing %s: %w", t.c.Path, err)
	}
	t.mu.Lock()
	t.reload = false
	t.mu.Unlock()
	return nil
}

// Drifted reports whether the source or (hash) the .db is gone or is not
// the file the last Sync wrote: replaced, edited or deleted by hand.
func (t *Table) Drifted() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.driftedLocked()
}

func (t *Table) driftedLocked() bool {
	if t.written == nil {
		return false // never written: the first sync decides
	}
	if id, err := enforce.StatFile(t.c.Path); err != nil || id != t.src {
		return true
	}
	if t.c.Type == TypeHash {
		if id, err := enforce.StatFile(t.c.Path + ".db"); err != nil || id != t.db {
			return true
		}
	}
	return false
}

// keepAttrs gives the new file dst the mode and group of the file at ref,
// if there is one: a table Postfix could not open would lift every ban.
func keepAttrs(dst, ref string) error {
	fi, err := os.Stat(ref)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("keep mode of %s: %w", ref, err)
	}
	if err := os.Chmod(dst, fi.Mode().Perm()); err != nil {
		return fmt.Errorf("keep mode of %s: %w", ref, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if nf, err := os.Stat(dst); err == nil {
		if nst, ok := nf.Sys().(*syscall.Stat_t); ok && nst.Gid == st.Gid {
			return nil
		}
	}
	if err := os.Chown(dst, -1, int(st.Gid)); err != nil {
		return fmt.Errorf("keep group %d of %s: %w", st.Gid, ref, err)
	}
	return nil
}

// run runs argv (never through a shell) and puts its stderr in the error.
func run(ctx context.Context, argv []string) error {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, msg)
		}
		return fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	return nil
}
