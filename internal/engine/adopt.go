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
func (e *Engine) AdoptMap(ctx context.Context, path string, prefixes []netip.Prefix, now time.Time) (Change, error) {
	if _, done, err := e.st.Meta(mapAdoptedKey(path)); err != nil || done {
		return Change{}, err
	}
	e.mu.Lock()
	have := map[netip.Prefix]bool{}
	for k := range e.bans {
		have[k.prefix] = true
	}
	e.mu.Unlock()
	ch, err := e.update(ctx, now, func(tx *store.Tx) (ch Change, err error) {
		for _, p := range prefixes {
			if have[p] {
				continue
			}
			have[p] = true
			b := store.Ban{Jail: ManualJail, Prefix: p, Since: now, Reason: "imported from " + path}
			if b.ID, err = tx.AddBan(b); err != nil {
				return ch, err
			}
			ch.Bans = append(ch.Bans, b)
		}
		return ch, tx.SetMeta(mapAdoptedKey(path), now.UTC().Format(time.RFC3339))
	})
	if err != nil {
		return Change{}, err
	}
	e.put(ch.Bans...)
	return ch, nil
}

// MapAdopted reports whether the map at path was taken over already.
func (e *Engine) MapAdopted(path string) (bool, error) {
	_, done, err := e.st.Meta(mapAdoptedKey(path))
	return done, err
}
