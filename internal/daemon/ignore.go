package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/mailjail/mailjail/internal/allowlist"
	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/control"
	"github.com/mailjail/mailjail/internal/engine"
	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/rules"
)

// metaIgnoreName prefixes the meta rows that keep what each ignoreip host
// name last resolved to: a restart while DNS is down keeps ignoring them.
const metaIgnoreName = "ignoreip.name."

// LoadIgnore reads cfg's ignoreip files, resolves its host names (from the
// addresses saved in st when a lookup fails) and the host's own
// addresses, and puts them in force in eng; names that resolved are saved
// for the next start. The daemon, the CLI without a daemon and replay all
// start their engines with it, so a manual ban of an address an ignoreip
// file holds is refused whichever runs it.
func LoadIgnore(ctx context.Context, cfg *config.Config, st *store.Store, eng *engine.Engine, opt allowlist.Options) (*allowlist.List, allowlist.State, error) {
	saved, err := savedNames(st)
	if err != nil {
		return nil, allowlist.State{}, err
	}
	l := allowlist.New(cfg, opt)
	state := l.Load(ctx, saved)
	if err := eng.SetIgnore(state.Resolved()); err != nil {
		return nil, state, err
	}
	return l, state, saveNames(ctx, st, saved, state)
}

// ResolveIgnore is what cfg's ignoreip stands for now, found as
// LoadIgnore finds it (st nil: no saved addresses), neither put in force
// nor saved: for a command that only reads the database (mailjail show).
func ResolveIgnore(ctx context.Context, cfg *config.Config, st *store.Store, opt allowlist.Options) (rules.Resolved, error) {
	var saved map[string]allowlist.Name
	if st != nil {
		var err error
		if saved, err = savedNames(st); err != nil {
			return nil, err
		}
	}
	return allowlist.New(cfg, opt).Load(ctx, saved).Resolved(), nil
}

// savedNames reads the names' last addresses from the database.
func savedNames(st *store.Store) (map[string]allowlist.Name, error) {
	rows, err := st.MetaPrefix(metaIgnoreName)
	if err != nil {
		return nil, err
	}
	out := make(map[string]allowlist.Name, len(rows))
	for host, v := range rows {
		var n allowlist.Name
		if err := json.Unmarshal([]byte(v), &n); err != nil {
			// A row this version cannot read is as good as none: the
			// name is looked up again.
			continue
		}
		out[host] = n
	}
	return out, nil
}

// saveNames writes the names whose addresses changed since saved.
func saveNames(ctx context.Context, st *store.Store, saved map[string]allowlist.Name, state allowlist.State) error {
	changed := map[string][]byte{}
	for host, n := range state.Names {
		if n.Resolved.IsZero() || slices.Equal(saved[host].Addrs, n.Addrs) {
			continue
		}
		v, err := json.Marshal(n)
		if err != nil {
			return err
		}
		changed[host] = v
	}
	if len(changed) == 0 {
		return nil
	}
	return st.Update(ctx, func(tx *store.Tx) error {
		for host, v := range changed {
			if err := tx.SetMeta(metaIgnoreName+host, string(v)); err != nil {
				return err
			}
		}
		return nil
	})
}

// startIgnore loads the ignore lists of the running configuration and
// keeps them current in the background; the loop applies what changes.
func (d *daemon) startIgnore(ctx context.Context) error {
	var l *allowlist.List
	var state allowlist.State
	err := d.wd.during(func() (err error) {
		l, state, err = LoadIgnore(ctx, d.cfg, d.st, d.eng, d.opt.Ignore)
		return err
	})
	if err != nil {
		return fmt.Errorf("load ignoreip: %w", err)
	}
	d.ignoreState = state
	ictx, stop := context.WithCancel(ctx)
	updates := make(chan allowlist.State)
	wait := l.Start(ictx, updates)
	d.ignoreUpdates = updates
	d.stopIgnore = func() { stop(); wait() }
	return nil
}

// restartIgnore replaces the ignore lists after a reload.
func (d *daemon) restartIgnore(ctx context.Context) error {
	d.stopIgnore()
	return d.startIgnore(ctx)
}

// applyIgnore puts a changed ignore state in force: bans of addresses it
// now ignores are lifted, as at a start.
func (d *daemon) applyIgnore(ctx context.Context, state allowlist.State, now time.Time) {
	if err := d.eng.SetIgnore(state.Resolved()); err != nil {
		d.log.Error("ignoreip not updated", "err", err)
		return
	}
	if err := saveNames(ctx, d.st, d.ignoreState.Names, state); err != nil {
		d.log.Warn("ignoreip host names not saved (a restart while DNS is down would not know them)", "err", err)
	}
	d.ignoreState = state
	lifted, err := d.eng.LiftIgnored(ctx, now)
	if err != nil {
		d.log.Error("bans of newly ignored addresses not lifted (the next change lifts them)", "err", err)
	}
	d.enf.Apply(ctx, lifted)
}

// fillIgnore adds the resolved part of ignoreip to status, and a warning
// for each entry that ignores less than the operator thinks.
func (d *daemon) fillIgnore(s *control.Status) {
	st := d.ignoreState
	is := &control.IgnoreStatus{Names: []control.IgnoreName{}, Files: []control.IgnoreFile{}}
	for _, host := range slices.Sorted(maps.Keys(st.Names)) {
		n := st.Names[host]
		v := control.IgnoreName{Name: host, Addrs: addrStrings(n.Addrs), Resolved: timeOrNil(n.Resolved), Error: n.Err}
		is.Names = append(is.Names, v)
		switch {
		case n.Resolved.IsZero():
			s.Warnings = append(s.Warnings, fmt.Sprintf("ignoreip host name %s has never resolved, so it ignores no address: %s", host, n.Err))
		case n.Err != "":
			s.Warnings = append(s.Warnings, fmt.Sprintf("ignoreip host name %s does not resolve (%s); its addresses of %s stay ignored", host, n.Err, n.Resolved.UTC().Format(time.RFC3339)))
		}
	}
	for _, path := range slices.Sorted(maps.Keys(st.Files)) {
		f := st.Files[path]
		is.Files = append(is.Files, control.IgnoreFile{Path: path, Entries: len(f.Entries), Loaded: timeOrNil(f.Loaded), Error: f.Err})
		if f.Err != "" {
			s.Warnings = append(s.Warnings, fmt.Sprintf("ignoreip file %s not read (%s); its last content stays in force", path, f.Err))
		}
	}
	if st.Self != nil {
		is.Self = addrStrings(st.Self)
	}
	s.Ignore = is
}

func addrStrings(addrs []netip.Addr) []string {
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = a.String()
	}
	return out
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}
