package store

import (
	"database/sql"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// Before a migration the database is copied to PATH.bak (0600, the old
// schema, its rows); a new database and an up-to-date one make no copy,
// and the next migration replaces the copy.
func TestBackupBeforeMigration(t *testing.T) {
	shipped := migrations
	t.Cleanup(func() { migrations = shipped })
	// Two migrations of a later version, after the shipped ones (Open
	// needs the whole shipped schema).
	all := append(shipped[:len(shipped):len(shipped)], `CREATE TABLE later1 (x)`, `CREATE TABLE later2 (x)`)
	path := filepath.Join(t.TempDir(), "mailjail.db")

	open := func(n int) {
		t.Helper()
		migrations = all[:n]
		s, err := Open(path, Options{Durable: true})
		if err != nil {
			t.Fatalf("open with %d migrations: %v", n, err)
		}
		if _, err := s.db.Exec(`INSERT OR REPLACE INTO meta (key, value) VALUES ('probe', ?)`, n); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	// backupAt returns the backup's schema version and probe value.
	backupAt := func() (version int, probe string) {
		t.Helper()
		fi, err := os.Stat(BackupPath(path))
		if err != nil {
			t.Fatalf("no backup: %v", err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("backup mode %v, want 0600", fi.Mode().Perm())
		}
		db, err := sql.Open("sqlite3", "file:"+BackupPath(path)+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := db.QueryRow(`PRAGMA user_version`).Scan(&version); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRow(`SELECT value FROM meta WHERE key = 'probe'`).Scan(&probe); err != nil {
			t.Fatal(err)
		}
		return version, probe
	}

	n := len(all)
	// n-2: the shipped schema
	open(n - 2)
	if _, err := os.Stat(BackupPath(path)); !os.IsNotExist(err) {
		t.Fatalf("a new database was backed up: %v", err)
	}
	open(n - 1)
	if v, p := backupAt(); v != n-2 || p != strconv.Itoa(n-2) {
		t.Fatalf("backup before migration %d: version %d, probe %q", n-1, v, p)
	}
	open(n - 1) // up to date: the backup stays as it was
	if v, _ := backupAt(); v != n-2 {
		t.Fatalf("an up-to-date open replaced the backup: version %d", v)
	}
	open(n) // the next migration keeps only the last backup
	if v, p := backupAt(); v != n-1 || p != strconv.Itoa(n-1) {
		t.Fatalf("backup before migration %d: version %d, probe %q", n, v, p)
	}
	if _, err := os.Stat(BackupPath(path) + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("temporary copy left: %v", err)
	}
}
