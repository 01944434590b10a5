package engine

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/mapfile"
	"github.com/mailjail/mailjail/rules"
)

// mapAdoptedKey is the meta key recording that mailjail took over a map.
func mapAdoptedKey(path string) string { return "map_adopted:" + path }

// AdoptMap takes over the map at path the first time mailjail writes it,
// so that no ban is silently dropped: entries mailjail wrote itself (a
// database lost or replaced) keep their jail and expiry, and those that
// have ended are dropped (logged); other entries (from fail2ban, or
// written by hand) become permanent manual bans, their rspamd value kept
// as the reason. Comment lines are logged, since the rewritten map will
// not hold them.
func (e *Engine) AdoptMap(ctx context.Context, path string, m mapfile.Parsed, now time.Time) (Change, error) {
	if _, done, err := e.st.Meta(mapAdoptedKey(path)); err != nil || done {
		return Change{}, err
	}
	e.logMapComments(path, m)
	e.mu.Lock()
	have := map[netip.Prefix]bool{}
	for k := range e.bans {
		have[k.prefix] = true
	}
	e.mu.Unlock()
	ch, err := e.update(ctx, now, func(tx *store.Tx) (ch Change, err error) {
		ch.Imported = true
		for _, pe := range m.Entries {
			if have[pe.Prefix] {
				continue
			}
			have[pe.Prefix] = true
			b, ok := e.adopted(path, pe, now)
			if !ok {
				continue
			}
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

// adopted is the ban an imported map entry becomes, if any.
func (e *Engine) adopted(path string, pe mapfile.ParsedEntry, now time.Time) (store.Ban, bool) {
	b := store.Ban{Jail: ManualJail, Prefix: pe.Prefix, Since: now, Reason: "imported from " + path}
	if pe.Value != "" {
		b.Reason += ": " + pe.Value
	}
	if !pe.Own {
		return b, true
	}
	if !pe.Until.IsZero() && !pe.Until.After(now) {
		e.log.Info("imported map entry had ended; dropped", "map", path, "line", pe.Line, "addr", rules.FormatPrefix(pe.Prefix), "until", pe.Until)
		return b, false
	}
	b.Until = pe.Until
	if e.jail(pe.Jail) != nil {
		b.Jail = pe.Jail
	}
	b.Reason = fmt.Sprintf("imported from %s (jail %s)", path, pe.Jail)
	return b, true
}

// logMapComments reports the comment lines of a map being taken over:
// the map mailjail writes will not hold them.
func (e *Engine) logMapComments(path string, m mapfile.Parsed) {
	const most = 20
	for i, c := range m.Comments {
		if i == most {
			e.log.Warn("more comments in the imported map not shown", "map", path, "count", len(m.Comments)-most)
			break
		}
		e.log.Warn("comment in the imported map is not kept", "map", path, "line", c.Line, "comment", c.Text)
	}
}
