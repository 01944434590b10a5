package enforce

import (
	"context"
	"slices"
	"sync"

	"github.com/mailjail/mailjail/mapfile"
)

// AccountMapTarget is the rspamd multimap file of suspended accounts
// (type "user"): a listed login's next message is rejected, while other
// logins from the same address pass. Like MapTarget it is rewritten whole
// and atomically; a sync whose accounts did not change leaves the file
// alone (every ban kicks every target).
type AccountMapTarget struct {
	mp MapTarget // the file and its drift check

	mu   sync.Mutex
	last []mapfile.AccountEntry // what the file holds, nil before the first sync
}

// NewAccountMapTarget makes the target for the account map at path.
func NewAccountMapTarget(path string) *AccountMapTarget {
	return &AccountMapTarget{mp: MapTarget{path: path}}
}

// Name is AccountMapTargetName of its path.
func (m *AccountMapTarget) Name() string { return AccountMapTargetName(m.mp.path) }

// AccountMapTargetName is the name of the account map target of the map
// at path, as status shows it.
func AccountMapTargetName(path string) string { return "rspamd-account-map:" + path }

// Sync rewrites the account map with s's suspensions when they changed
// or the file drifted.
func (m *AccountMapTarget) Sync(_ context.Context, s State) error {
	entries := make([]mapfile.AccountEntry, 0, len(s.Suspensions))
	for _, sp := range s.Suspensions {
		entries = append(entries, mapfile.AccountEntry{Account: sp.Account, Until: sp.Until, Jail: sp.Jail})
	}
	m.mu.Lock()
	same := m.last != nil && slices.Equal(m.last, entries)
	m.mu.Unlock()
	if same && !m.mp.Drifted() {
		return nil
	}
	if err := mapfile.WriteAccounts(m.mp.path, entries, s.At); err != nil {
		return err
	}
	m.mp.wrote()
	m.mu.Lock()
	m.last = entries
	m.mu.Unlock()
	return nil
}

// Entries is the number of accounts the map held after the last sync.
func (m *AccountMapTarget) Entries() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.last)
}

// Drifted reports whether the file is gone or not the one last written.
func (m *AccountMapTarget) Drifted() bool { return m.mp.Drifted() }
