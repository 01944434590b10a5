// Package store keeps mailjail's state in SQLite: strikes, bans (active and
// history), read positions and a few meta values. The database is the
// source of truth: the rspamd map is rendered from it, and after a crash,
// kill -9 or restart the daemon rebuilds everything from it.
//
// The database runs in WAL mode with synchronous=FULL, so a committed ban
// survives a crash or power loss, and readers (the CLI) never block the
// daemon's writer. Every change is one transaction, so a full disk or a
// killed process leaves the previous state intact.
package store

import (
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"

	"github.com/mattn/go-sqlite3"
)

// driverName is go-sqlite3 with mailjail's SQL functions, which
// migrations use.
const driverName = "sqlite3_mailjail"

func init() {
	sql.Register(driverName, &sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
		if err := c.RegisterFunc("mj_line", shortLine, true); err != nil {
			return err
		}
		return c.RegisterFunc("mj_addr", addrFromText, true)
	}})
}

// addrFromText is SQL's mj_addr(text): an address written as text, as
// strikes stored them before they were stored compactly, in the bytes they store now.
func addrFromText(text string) ([]byte, error) {
	a, err := netip.ParseAddr(text)
	if err != nil {
		return nil, err
	}
	return addrBytes(a), nil
}

// addrBytes is how a strike stores its address: 4 bytes for IPv4, 16
// for IPv6 (a zone is never stored; strikes have none).
func addrBytes(a netip.Addr) []byte { return a.AsSlice() }

// Store is an open database.
type Store struct {
	db   *sql.DB
	path string

	stmts map[string]*sql.Stmt // prepared once: compiling SQL costs as much as running it

	mu     sync.Mutex
	jailID map[string]int64 // jails.id by name, of committed rows only
	dsn    string
	// checkpoint is a second connection that copies the write-ahead log
	// into the database during a purge (Store.Purge), beside the one
	// connection's writes instead of inside one of its commits.
	checkpoint *sql.DB
}

// Options tune Open.
type Options struct {
	// Durable=false trades crash safety for speed (synchronous=OFF): for
	// throw-away databases such as a replay's.
	Durable  bool
	ReadOnly bool
}

// Open opens (creating if needed) the database at path and migrates it.
func Open(path string, opt Options) (*Store, error) {
	if !opt.ReadOnly {
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return nil, fmt.Errorf("open database %s: %w", path, err)
		}
		// The database holds log lines and who is banned: owner only.
		// SQLite gives its -wal and -shm files the database's mode.
		if err := createPrivate(path); err != nil {
			return nil, fmt.Errorf("open database %s: %w", path, err)
		}
	}
	sync := "FULL"
	if !opt.Durable {
		sync = "OFF"
	}
	dsn := fmt.Sprintf("file:%s?mode=rwc&_journal_mode=WAL&_synchronous=%s&_busy_timeout=10000&_txlock=immediate", path, sync)
	if opt.ReadOnly {
		// A reader of a WAL database needs no pragma; the daemon set WAL.
		dsn = fmt.Sprintf("file:%s?mode=ro&_busy_timeout=10000", path)
	}
	db, err := sql.Open(driverName, dsn)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	// One connection: SQLite has one writer anyway, and a single
	// connection makes every statement see the same transaction state.
	db.SetMaxOpenConns(1)
	s := &Store{db: db, path: path, jailID: map[string]int64{}, dsn: dsn}
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	if !opt.ReadOnly {
		if err := s.migrate(); err != nil {
			db.Close()
			return nil, fmt.Errorf("migrate database %s: %w", path, err)
		}
		if err := s.prepare(); err != nil {
			db.Close()
			return nil, fmt.Errorf("open database %s: %w", path, err)
		}
	}
	return s, nil
}

// createPrivate creates an empty file at path with mode 0600 unless it
// exists.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return f.Close()
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// Close closes the database.
func (s *Store) Close() error {
	for _, st := range s.stmts {
		st.Close()
	}
	if s.checkpoint != nil {
		s.checkpoint.Close()
	}
	return s.db.Close()
}
