package store

import (
	"fmt"
	"os"
)

// migrations are applied in order; PRAGMA user_version records how many
// ran. Never edit one that has shipped: add another.
var migrations = []string{
	`CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
	 CREATE TABLE strikes (
		id INTEGER PRIMARY KEY,
		jail TEXT NOT NULL,
		addr TEXT NOT NULL,
		at INTEGER NOT NULL,          -- unix nanoseconds, from the log line
		bucket TEXT NOT NULL DEFAULT '',
		line TEXT NOT NULL DEFAULT ''
	 );
	 CREATE INDEX strikes_addr ON strikes(addr, at);
	 CREATE INDEX strikes_at ON strikes(at);
	 CREATE TABLE bans (
		id INTEGER PRIMARY KEY,
		jail TEXT NOT NULL,
		addr TEXT NOT NULL,           -- address or CIDR, canonical
		since INTEGER NOT NULL,
		until INTEGER,                -- NULL: permanent
		strikes INTEGER NOT NULL DEFAULT 0,
		reason TEXT NOT NULL DEFAULT '',
		lifted INTEGER,               -- NULL while active
		lifted_by TEXT NOT NULL DEFAULT ''
	 );
	 CREATE UNIQUE INDEX bans_active ON bans(jail, addr) WHERE lifted IS NULL;
	 CREATE INDEX bans_addr ON bans(addr, since);
	 CREATE TABLE positions (
		path TEXT PRIMARY KEY,
		dev INTEGER NOT NULL, ino INTEGER NOT NULL,
		offset INTEGER NOT NULL, head INTEGER NOT NULL,
		cursor TEXT NOT NULL DEFAULT '',
		updated INTEGER NOT NULL
	 );`,
	`CREATE TABLE rate_events (
		id INTEGER PRIMARY KEY,
		jail TEXT NOT NULL,
		key TEXT NOT NULL,            -- account, sender or address the rate is counted by
		what TEXT NOT NULL,           -- "messages" or "recipients"
		at INTEGER NOT NULL,
		level REAL NOT NULL,          -- bucket level the event tried to reach
		burst REAL NOT NULL,
		rate TEXT NOT NULL,
		urgent INTEGER NOT NULL DEFAULT 0,
		detail TEXT NOT NULL DEFAULT ''
	 );
	 CREATE INDEX rate_events_key ON rate_events(key, at);
	 CREATE TABLE buckets (
		jail TEXT NOT NULL,
		what TEXT NOT NULL,
		key TEXT NOT NULL,
		level REAL NOT NULL,
		last INTEGER NOT NULL,
		PRIMARY KEY (jail, what, key)
	 );`,
	// Restoring strikes at start reads only the index.
	`CREATE INDEX strikes_restore ON strikes(at, jail, addr, bucket);
	 DROP INDEX strikes_at;`,
	// status counts strikes per jail from this index instead of sorting
	// every strike (seconds and hundreds of MB with 10M strikes).
	`CREATE INDEX strikes_jail ON strikes(jail);`,
	// The outbox holds the actions and alerts a change causes, written in
	// the change's own transaction, so pending work survives a stop; a
	// ban records which offense it was, for alerts and escalation.
	`ALTER TABLE bans ADD COLUMN offense INTEGER NOT NULL DEFAULT 0;
	 CREATE TABLE outbox (
		id INTEGER PRIMARY KEY,
		kind TEXT NOT NULL,           -- "action", "alert"
		payload BLOB NOT NULL,        -- JSON, by kind
		created INTEGER NOT NULL,
		attempts INTEGER NOT NULL DEFAULT 0,
		next_attempt INTEGER NOT NULL,
		last_error TEXT NOT NULL DEFAULT '',
		done INTEGER,                 -- delivered (NULL: pending)
		gave_up INTEGER               -- abandoned (NULL: pending)
	 );
	 CREATE INDEX outbox_pending ON outbox(id) WHERE done IS NULL AND gave_up IS NULL;`,
	// Accounts (SASL logins) are keys of their own: strikes with the
	// client each came from, suspensions, when mailjail first saw each
	// login, the rate allow list and the sliding-window rate counters.
	`CREATE TABLE account_strikes (
		id INTEGER PRIMARY KEY,
		jail TEXT NOT NULL,
		account TEXT NOT NULL,
		client TEXT NOT NULL DEFAULT '', -- address the event came from, '' when unknown
		at INTEGER NOT NULL,
		bucket TEXT NOT NULL DEFAULT '',
		line TEXT NOT NULL DEFAULT ''
	 );
	 CREATE INDEX account_strikes_account ON account_strikes(account, at);
	 CREATE INDEX account_strikes_at ON account_strikes(at, jail, account);
	 CREATE TABLE suspensions (
		id INTEGER PRIMARY KEY,
		jail TEXT NOT NULL,
		account TEXT NOT NULL,
		since INTEGER NOT NULL,
		until INTEGER,                -- NULL: until released
		strikes INTEGER NOT NULL DEFAULT 0,
		reason TEXT NOT NULL DEFAULT '',
		offense INTEGER NOT NULL DEFAULT 0,
		enforced INTEGER NOT NULL DEFAULT 1, -- 0: recorded only (the jail has suspend = false)
		sources TEXT NOT NULL DEFAULT '',    -- "ADDR=COUNT ..." the strikes came from
		lifted INTEGER,
		lifted_by TEXT NOT NULL DEFAULT ''
	 );
	 CREATE UNIQUE INDEX suspensions_active ON suspensions(jail, account) WHERE lifted IS NULL;
	 CREATE INDEX suspensions_account ON suspensions(account, since);
	 CREATE TABLE accounts (account TEXT PRIMARY KEY, first_seen INTEGER NOT NULL) WITHOUT ROWID;
	 CREATE TABLE allow (entry TEXT PRIMARY KEY, added INTEGER NOT NULL, reason TEXT NOT NULL DEFAULT '') WITHOUT ROWID;
	 CREATE TABLE windows (
		jail TEXT NOT NULL,
		what TEXT NOT NULL,
		key TEXT NOT NULL,
		events TEXT NOT NULL,         -- "UNIXNANO:N ..." oldest first
		PRIMARY KEY (jail, what, key)
	 );`,
	// Urgent alerts (suspensions, permanent bans) skip the digest wait:
	// the worker reads the flag of every pending alert on each pass, so
	// it is a column, not decoded from each payload. The alert queue is
	// read by kind and due time.
	`ALTER TABLE outbox ADD COLUMN urgent INTEGER NOT NULL DEFAULT 0;
	 CREATE INDEX outbox_pending_kind ON outbox(kind, next_attempt) WHERE done IS NULL AND gave_up IS NULL;`,
	// A jail in mode = "log-only" records the bans it would make: they
	// count as bans in the jail (one would-ban per address, not one per
	// line) but no target is given them, and escalation and recidive
	// skip them.
	`ALTER TABLE bans ADD COLUMN log_only INTEGER NOT NULL DEFAULT 0;`,
	// In a cluster a ban made on another node is mirrored into the local
	// database with the node it came from: it is enforced and acted on
	// here, but alerted by its own node only.
	`ALTER TABLE bans ADD COLUMN origin TEXT NOT NULL DEFAULT '';
	 ALTER TABLE suspensions ADD COLUMN origin TEXT NOT NULL DEFAULT '';`,
}

func (s *Store) migrate() error {
	var v int
	if err := s.db.QueryRow(`PRAGMA user_version`).Scan(&v); err != nil {
		return err
	}
	if v > len(migrations) {
		return fmt.Errorf("database schema version %d is newer than this mailjail knows (%d): refusing to touch it", v, len(migrations))
	}
	if v > 0 && v < len(migrations) {
		if err := s.backup(v); err != nil {
			return err
		}
	}
	for i := v; i < len(migrations); i++ {
		tx, err := s.db.Begin()
		if err != nil {
			return err
		}
		if _, err := tx.Exec(migrations[i]); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
		if _, err := tx.Exec(fmt.Sprintf(`PRAGMA user_version = %d`, i+1)); err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	return nil
}

// BackupPath is where the database is copied before a schema migration:
// an upgrade that goes wrong can go back to the previous version with it.
// Only the last backup is kept.
func BackupPath(db string) string { return db + ".bak" }

// backup copies the database (at schema version v) to BackupPath with
// VACUUM INTO: a consistent copy of a WAL database, written to a private
// temporary file first and renamed, so a failed copy never replaces the
// previous backup.
func (s *Store) backup(v int) error {
	dst := BackupPath(s.path)
	tmp := dst + ".tmp"
	os.Remove(tmp)
	if err := createPrivate(tmp); err != nil {
		return fmt.Errorf("back up before migration: %w", err)
	}
	if _, err := s.db.Exec(`VACUUM INTO ?`, tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("back up schema version %d to %s before migration: %w", v, tmp, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("back up before migration: %w", err)
	}
	return nil
}
