package store

import (
	"database/sql"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// AccountStrike is one counted event of an account (a SASL login).
type AccountStrike struct {
	Jail    string
	Account string
	Client  netip.Addr // the address the event came from; invalid when the log did not say
	At      time.Time
	Bucket  string
	Line    string
}

// Source is a client address an account's strikes came from, with how
// many.
type Source struct {
	Addr  netip.Addr
	Count int
}

// Suspension is one suspension of an account, active or lifted.
type Suspension struct {
	ID      int64
	Jail    string
	Account string
	Since   time.Time
	Until   time.Time // zero: until released
	Strikes int
	Reason  string
	Offense int // 1 for a first suspension, n for the nth in the lookback; 0 for manual ones
	// Enforced is false for a suspension a jail with suspend = false
	// recorded: it is shown and escalates, but no target holds it.
	Enforced bool
	Sources  []Source
	Lifted   time.Time // zero while active
	LiftedBy string
	// Origin is the cluster node that made the suspension when it was
	// mirrored from another node ("": made here).
	Origin string
}

// Permanent reports whether the suspension lasts until released.
func (s Suspension) Permanent() bool { return s.Until.IsZero() }

// AddAccountStrike records an account's strike.
func (t *Tx) AddAccountStrike(st AccountStrike) error {
	client := ""
	if st.Client.IsValid() {
		client = st.Client.String()
	}
	_, err := t.exec(sqlAddAccountStrike, st.Jail, st.Account, client, st.At.UnixNano(), st.Bucket, cutLine(st.Line))
	if err != nil {
		return fmt.Errorf("add strike of account %s: %w", st.Account, err)
	}
	return nil
}

const sqlAddAccountStrike = `INSERT INTO account_strikes (jail, account, client, at, bucket, line) VALUES (?, ?, ?, ?, ?, ?)`

// AddSuspension records a new active suspension, replacing an active one
// of the same account in the same jail.
func (t *Tx) AddSuspension(s Suspension) (int64, error) {
	if _, err := t.exec(`UPDATE suspensions SET lifted = ?, lifted_by = 'replaced' WHERE jail = ? AND account = ? AND lifted IS NULL`,
		s.Since.UnixNano(), s.Jail, s.Account); err != nil {
		return 0, fmt.Errorf("replace suspension of %s: %w", s.Account, err)
	}
	res, err := t.exec(`INSERT INTO suspensions (jail, account, since, until, strikes, reason, offense, enforced, sources, origin) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		s.Jail, s.Account, s.Since.UnixNano(), nullTime(s.Until), s.Strikes, s.Reason, s.Offense, s.Enforced, formatSources(s.Sources), s.Origin)
	if err != nil {
		return 0, fmt.Errorf("add suspension of %s: %w", s.Account, err)
	}
	return res.LastInsertId()
}

// LiftSuspensions ends the active suspensions of account (in jail, or in
// every jail when jail is empty) and deletes its strikes there, so a
// released account starts from zero. It returns what it lifted.
func (t *Tx) LiftSuspensions(account, jail string, at time.Time, by string) ([]Suspension, error) {
	out, err := querySuspensions(t.tx, `WHERE account = ? AND (? = '' OR jail = ?) AND lifted IS NULL`, account, jail, jail)
	if err != nil {
		return nil, err
	}
	if _, err := t.exec(`UPDATE suspensions SET lifted = ?, lifted_by = ? WHERE account = ? AND (? = '' OR jail = ?) AND lifted IS NULL`,
		at.UnixNano(), by, account, jail, jail); err != nil {
		return nil, fmt.Errorf("release %s: %w", account, err)
	}
	if _, err := t.exec(`DELETE FROM account_strikes WHERE account = ? AND (? = '' OR jail = ?)`, account, jail, jail); err != nil {
		return nil, fmt.Errorf("clear strikes of %s: %w", account, err)
	}
	for i := range out {
		out[i].Lifted, out[i].LiftedBy = at, by
	}
	return out, nil
}

// ExpireSuspensions lifts every active suspension whose end is at or
// before now and returns them.
func (t *Tx) ExpireSuspensions(now time.Time) ([]Suspension, error) {
	out, err := querySuspensions(t.tx, `WHERE lifted IS NULL AND until IS NOT NULL AND until <= ?`, now.UnixNano())
	if err != nil {
		return nil, err
	}
	if _, err := t.exec(`UPDATE suspensions SET lifted = until, lifted_by = 'expired' WHERE lifted IS NULL AND until IS NOT NULL AND until <= ?`, now.UnixNano()); err != nil {
		return nil, fmt.Errorf("expire suspensions: %w", err)
	}
	for i := range out {
		out[i].Lifted, out[i].LiftedBy = out[i].Until, "expired"
	}
	return out, nil
}

// SeeAccount records when account was first seen, unless it is known.
func (t *Tx) SeeAccount(account string, at time.Time) error {
	if _, err := t.exec(`INSERT INTO accounts (account, first_seen) VALUES (?, ?) ON CONFLICT(account) DO NOTHING`, account, at.UnixNano()); err != nil {
		return fmt.Errorf("record account %s: %w", account, err)
	}
	return nil
}

const suspensionColumns = `SELECT id, jail, account, since, until, strikes, reason, offense, enforced, sources, lifted, lifted_by, origin FROM suspensions `

func querySuspensions(q querier, where string, args ...any) ([]Suspension, error) {
	rows, err := q.Query(suspensionColumns+where, args...)
	if err != nil {
		return nil, fmt.Errorf("query suspensions: %w", err)
	}
	defer rows.Close()
	var out []Suspension
	for rows.Next() {
		var s Suspension
		var since int64
		var until, lifted sql.NullInt64
		var sources string
		if err := rows.Scan(&s.ID, &s.Jail, &s.Account, &since, &until, &s.Strikes, &s.Reason, &s.Offense, &s.Enforced, &sources, &lifted, &s.LiftedBy, &s.Origin); err != nil {
			return nil, fmt.Errorf("read suspension: %w", err)
		}
		if s.Sources, err = parseSources(sources); err != nil {
			return nil, fmt.Errorf("suspension %d: %w", s.ID, err)
		}
		s.Since = time.Unix(0, since)
		if until.Valid {
			s.Until = time.Unix(0, until.Int64)
		}
		if lifted.Valid {
			s.Lifted = time.Unix(0, lifted.Int64)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// ActiveSuspensions returns every active suspension, ordered by account.
func (s *Store) ActiveSuspensions() ([]Suspension, error) {
	return querySuspensions(s.db, `WHERE lifted IS NULL ORDER BY account, jail`)
}

// SuspensionsSince returns suspensions (any state) that started at or
// after t, for seeding escalation after a restart.
func (s *Store) SuspensionsSince(t time.Time) ([]Suspension, error) {
	return querySuspensions(s.db, `WHERE since >= ? ORDER BY since`, t.UnixNano())
}

// ReleasedSince returns the suspensions lifted at or after t by anything
// but their expiry, for a cluster resync (see LiftedSince).
func (s *Store) ReleasedSince(t time.Time) ([]Suspension, error) {
	return querySuspensions(s.db, `WHERE lifted >= ? AND lifted_by NOT IN ('expired', 'replaced') ORDER BY lifted`, t.UnixNano())
}

// SuspensionHistory returns account's suspensions, newest first.
func (s *Store) SuspensionHistory(account string, limit int) ([]Suspension, error) {
	return querySuspensions(s.db, `WHERE account = ? ORDER BY since DESC LIMIT ?`, account, limit)
}

// AccountStrikesSince calls fn for each account strike at or after t, in
// time order.
func (s *Store) AccountStrikesSince(t time.Time, fn func(jail, account string, client netip.Addr, at time.Time) error) error {
	rows, err := s.db.Query(`SELECT jail, account, client, at FROM account_strikes WHERE at >= ? ORDER BY at`, t.UnixNano())
	if err != nil {
		return fmt.Errorf("query account strikes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var jail, account, client string
		var at int64
		if err := rows.Scan(&jail, &account, &client, &at); err != nil {
			return fmt.Errorf("read account strike: %w", err)
		}
		a, _ := netip.ParseAddr(client) // '' when the log named no client
		if err := fn(jail, account, a, time.Unix(0, at)); err != nil {
			return err
		}
	}
	return rows.Err()
}

// RecentAccountStrikes returns account's newest strikes with their lines.
func (s *Store) RecentAccountStrikes(account string, limit int) ([]AccountStrike, error) {
	return recentAccountStrikes(s.db, account, limit)
}

// RecentAccountStrikes is Store.RecentAccountStrikes inside the
// transaction, which sees the strikes it added.
func (t *Tx) RecentAccountStrikes(account string, limit int) ([]AccountStrike, error) {
	return recentAccountStrikes(t.tx, account, limit)
}

func recentAccountStrikes(q querier, account string, limit int) ([]AccountStrike, error) {
	rows, err := q.Query(`SELECT jail, client, at, bucket, line FROM account_strikes WHERE account = ? ORDER BY at DESC LIMIT ?`, account, limit)
	if err != nil {
		return nil, fmt.Errorf("query account strikes: %w", err)
	}
	defer rows.Close()
	var out []AccountStrike
	for rows.Next() {
		st := AccountStrike{Account: account}
		var client string
		var at int64
		if err := rows.Scan(&st.Jail, &client, &at, &st.Bucket, &st.Line); err != nil {
			return nil, fmt.Errorf("read account strike: %w", err)
		}
		st.Client, _ = netip.ParseAddr(client)
		st.At = time.Unix(0, at)
		out = append(out, st)
	}
	return out, rows.Err()
}

// AccountSources counts account's strikes since t per client address,
// most first.
func (s *Store) AccountSources(account string, since time.Time) ([]Source, error) {
	rows, err := s.db.Query(`SELECT client, COUNT(*) FROM account_strikes WHERE account = ? AND at >= ? AND client != '' GROUP BY client ORDER BY COUNT(*) DESC, client`,
		account, since.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("query sources of %s: %w", account, err)
	}
	defer rows.Close()
	var out []Source
	for rows.Next() {
		var client string
		var src Source
		if err := rows.Scan(&client, &src.Count); err != nil {
			return nil, fmt.Errorf("read source: %w", err)
		}
		if src.Addr, err = netip.ParseAddr(client); err != nil {
			return nil, fmt.Errorf("source of %s: %w", account, err)
		}
		out = append(out, src)
	}
	return out, rows.Err()
}

// AccountFirstSeen returns when mailjail first saw account.
func (s *Store) AccountFirstSeen(account string) (time.Time, bool, error) {
	var at int64
	err := s.db.QueryRow(`SELECT first_seen FROM accounts WHERE account = ?`, account).Scan(&at)
	switch {
	case err == sql.ErrNoRows:
		return time.Time{}, false, nil
	case err != nil:
		return time.Time{}, false, fmt.Errorf("query account %s: %w", account, err)
	}
	return time.Unix(0, at), true, nil
}

// AccountsFirstSeen calls fn for every known account.
func (s *Store) AccountsFirstSeen(fn func(account string, first time.Time)) error {
	rows, err := s.db.Query(`SELECT account, first_seen FROM accounts`)
	if err != nil {
		return fmt.Errorf("query accounts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var account string
		var at int64
		if err := rows.Scan(&account, &at); err != nil {
			return fmt.Errorf("read account: %w", err)
		}
		fn(account, time.Unix(0, at))
	}
	return rows.Err()
}

// formatSources writes sources as "ADDR=COUNT ADDR=COUNT".
func formatSources(srcs []Source) string {
	var b strings.Builder
	for i, s := range srcs {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s.Addr.String())
		b.WriteByte('=')
		b.WriteString(strconv.Itoa(s.Count))
	}
	return b.String()
}

func parseSources(s string) ([]Source, error) {
	var out []Source
	for _, f := range strings.Fields(s) {
		addr, count, ok := strings.Cut(f, "=")
		if !ok {
			return nil, fmt.Errorf("source %q: no count", f)
		}
		a, err := netip.ParseAddr(addr)
		if err != nil {
			return nil, fmt.Errorf("source %q: %w", f, err)
		}
		n, err := strconv.Atoi(count)
		if err != nil {
			return nil, fmt.Errorf("source %q: %w", f, err)
		}
		out = append(out, Source{Addr: a, Count: n})
	}
	return out, nil
}
