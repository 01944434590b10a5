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
	// Retention (issue 16): strikes take about 60 bytes instead of 227.
	// The jail is a small integer (jails), the address its 4 or 16 bytes
	// (mj_addr, a Go function: see store.go), and the table is clustered
	// by (jail, at), the order restore, purge and status read it in, so
	// it needs no rowid and no time index; n tells apart strikes of one
	// address at the same time. strikes_addr serves show, alerts and
	// lifting (a WITHOUT ROWID index holds the key, so it covers jail).
	// Lines are carried over as the purge leaves them with dbmaxmatches'
	// default: only an address's newest strike in a jail keeps its
	// line, cut to 256 bytes (mj_line); the purge then goes on from the
	// newest strike instead of clearing millions of lines. History is
	// purged by age: indexes find what ended long ago.
	`CREATE TABLE jails (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
	 INSERT INTO jails (name) SELECT DISTINCT jail FROM strikes ORDER BY jail;
	 CREATE TABLE strikes_v9 (
		jail INTEGER NOT NULL,        -- jails.id
		at INTEGER NOT NULL,          -- unix nanoseconds, from the log line
		addr BLOB NOT NULL,           -- 4 or 16 bytes
		n INTEGER NOT NULL,           -- 0, 1...: strikes of addr at the same time
		bucket TEXT NOT NULL DEFAULT '',
		line TEXT NOT NULL DEFAULT '', -- '' once dbmaxmatches newer strikes keep theirs
		PRIMARY KEY (jail, at, addr, n)
	 ) WITHOUT ROWID;
	 INSERT INTO strikes_v9 (jail, at, addr, n, bucket, line)
		SELECT j.id, s.at, mj_addr(s.addr), row_number() OVER (PARTITION BY s.jail, s.at, s.addr ORDER BY s.id) - 1, s.bucket,
			CASE WHEN row_number() OVER (PARTITION BY s.jail, s.addr ORDER BY s.at DESC, s.id DESC) = 1 THEN mj_line(s.line) ELSE '' END
		FROM strikes s JOIN jails j ON j.name = s.jail;
	 INSERT INTO meta (key, value) SELECT 'purge_lines_upto', coalesce(max(at), 0) FROM strikes_v9 WHERE true
		ON CONFLICT(key) DO UPDATE SET value = excluded.value;
	 DROP TABLE strikes;
	 ALTER TABLE strikes_v9 RENAME TO strikes;
	 CREATE INDEX strikes_addr ON strikes(addr, at);
	 CREATE INDEX rate_events_at ON rate_events(at);
	 CREATE INDEX bans_lifted ON bans(lifted) WHERE lifted IS NOT NULL;
	 CREATE INDEX suspensions_lifted ON suspensions(lifted) WHERE lifted IS NOT NULL;
	 CREATE INDEX outbox_ended ON outbox(coalesce(done, gave_up)) WHERE done IS NOT NULL OR gave_up IS NOT NULL;`,
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
	if v == 0 {
		// Before the first table, so that the VACUUM the switch takes
		// (the file has its header since journal_mode = WAL) is instant.
		if err := s.switchAutoVacuum(); err != nil {
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
	if v > 0 && v < len(migrations) {
		return s.switchAutoVacuum()
	}
	return nil
}

// switchAutoVacuum makes the database give purged pages back in small
// steps (PRAGMA incremental_vacuum, Store.Purge). A new one is switched
// before its first table; one created before incremental vacuum is
// switched once, on its first upgrade: that takes a VACUUM (outside any
// transaction), which rewrites the file, so it is done while the
// migration holds the database anyway and right after its backup. It
// also gives back the space of the strikes the compact-strikes migration rewrote.
func (s *Store) switchAutoVacuum() error {
	var mode int
	if err := s.db.QueryRow(`PRAGMA auto_vacuum`).Scan(&mode); err != nil {
		return fmt.Errorf("read auto_vacuum: %w", err)
	}
	if mode == autoVacuumIncremental {
		return nil
	}
	if _, err := s.db.Exec(`PRAGMA auto_vacuum = INCREMENTAL`); err != nil {
		return fmt.Errorf("set auto_vacuum: %w", err)
	}
	if _, err := s.db.Exec(`VACUUM`); err != nil {
		return fmt.Errorf("vacuum to switch to incremental auto_vacuum: %w", err)
	}
	return nil
}

// autoVacuumIncremental is PRAGMA auto_vacuum's value for INCREMENTAL.
const autoVacuumIncremental = 2

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
