package engine

import (
	"context"
	"net/netip"
	"time"

	"github.com/mailjail/mailjail/internal/store"
)

// mapAdoptedKey is the meta key recording that mailjail took over a map.
func mapAdoptedKey(path string) string { return "map_adopted:" + path }

// AdoptMap takes over the map at path the first time mailjail writes it:
// entries already there (from fail2ban, or written by hand) become
// permanent manual bans, so no ban is silently dropped. A map that cannot
// be parsed stops the takeover with an error naming its line.
func (e *Engine) AdoptMap(ctx context.Context, path string, prefixes []netip.Prefix, now time.Time) (int, error) {
	if _, done, err := e.st.Meta(mapAdoptedKey(path)); err != nil || done {
		return 0, err
	}
	e.mu.Lock()
	have := map[netip.Prefix]bool{}
	for k := range e.bans {
		have[k.prefix] = true
	}
	e.mu.Unlock()
	var added []store.Ban
	err := e.st.Update(ctx, func(tx *store.Tx) error {
		for _, p := range prefixes {
			if have[p] {
				continue
			}
			have[p] = true
			b := store.Ban{Jail: ManualJail, Prefix: p, Since: now, Reason: "imported from " + path}
			id, err := tx.AddBan(b)
			if err != nil {
				return err
			}
			b.ID = id
			added = append(added, b)
		}
		return tx.SetMeta(mapAdoptedKey(path), now.UTC().Format(time.RFC3339))
	})
	if err != nil {
		return 0, err
	}
	e.put(added...)
	return len(added), nil
}

// MapAdopted reports whether the map at path was taken over already.
func (e *Engine) MapAdopted(path string) (bool, error) {
	_, done, err := e.st.Meta(mapAdoptedKey(path))
	return done, err
}
