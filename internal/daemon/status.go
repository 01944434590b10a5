package daemon

import (
	"errors"
	"os"
	"path/filepath"

	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/control"
	"github.com/mailjail/mailjail/internal/enforce"
	"github.com/mailjail/mailjail/internal/engine"
	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/mapfile"
	"github.com/mailjail/mailjail/watcher"
)

// BuildStatus describes the state in the database (and, with an engine,
// the strikes it tracks). The daemon adds what only it knows.
func BuildStatus(cfg *config.Config, st *store.Store, eng *engine.Engine) (*control.Status, error) {
	counts, err := st.CountsByJail()
	if err != nil {
		return nil, err
	}
	entries, err := st.BannedPrefixes()
	if err != nil {
		return nil, err
	}
	susp, err := st.ActiveSuspensions()
	if err != nil {
		return nil, err
	}
	s := &control.Status{Database: cfg.Global.Database, MapFile: cfg.Global.MapFile, MapEntries: entries, AccountMapFile: cfg.Global.AccountMapFile}
	activeSusp := map[string]int{}
	mapped := map[string]bool{}
	for _, sp := range susp {
		activeSusp[sp.Jail]++
		if sp.Enforced {
			mapped[sp.Account] = true
		}
	}
	s.AccountMapEntries = len(mapped)
	s.MapReaderError = mapReaderError(cfg.Global.MapFile)
	// A database of an older schema, read without a daemon, has no outbox.
	if c, err := st.CountOutbox(); err == nil {
		s.Outbox = &control.OutboxStatus{Pending: c.Pending, Failed: c.Failed, GaveUp: c.GaveUp}
		if !c.OldestPending.IsZero() {
			oldest := c.OldestPending.UTC()
			s.Outbox.OldestPending = &oldest
		}
	}
	tracked := map[string]int{}
	counters := map[string]engine.JailCounters{}
	rateKeys := map[string]map[string]int{}
	rateFull := map[string]uint64{}
	if eng != nil {
		for _, j := range eng.Jails() {
			tracked[j.Cfg.Name] = j.Tracked()
			counters[j.Cfg.Name] = j.Counters()
			if rs := j.RateStats(); rs != nil {
				rateKeys[j.Cfg.Name] = rs.Keys
				rateFull[j.Cfg.Name] = rs.Full
			}
		}
	}
	positions, err := st.Positions()
	if err != nil {
		return nil, err
	}
	for _, j := range cfg.EnabledJails() {
		c := counts[j.Name]
		js := control.JailStatus{Journal: journalKey(j), Name: j.Name, Key: jailKey(j), Mode: j.Mode, WouldBans: c.WouldBans, Filter: j.Filter, LogPath: j.LogPath, StrikesTracked: tracked[j.Name],
			StrikesStored: c.Strikes, ActiveBans: c.ActiveBans, TotalBans: c.TotalBans, ActiveSusp: activeSusp[j.Name], RateEvents: c.RateEvents, RateKeys: rateKeys[j.Name], RateUntracked: rateFull[j.Name],
			EventsTooOld: counters[j.Name].TooOld, EventsFuture: counters[j.Name].Future}
		for path, p := range positions {
			if matchesAny(j.LogPath, path) || path == journalKey(j) {
				fs := control.FileStatus{Path: path, Offset: p.Offset}
				if fi, err := os.Stat(path); err == nil {
					fs.Size = fi.Size()
				}
				js.Files = append(js.Files, fs)
			}
		}
		s.Jails = append(s.Jails, js)
	}
	if c, ok := counts[engine.ManualJail]; ok || activeSusp[engine.ManualJail] > 0 {
		s.Jails = append(s.Jails, control.JailStatus{Name: engine.ManualJail, ActiveBans: c.ActiveBans, TotalBans: c.TotalBans, ActiveSusp: activeSusp[engine.ManualJail]})
	}
	if err := breakerStatus(s, st, eng); err != nil {
		return nil, err
	}
	return s, nil
}

// mapReaderError says why rspamd's workers cannot open the map, or "".
// They must, or every ban is silently not enforced; where there is no
// rspamd account this cannot be known.
func mapReaderError(path string) string {
	r, err := mapfile.LookupReader(mapfile.RspamdUser)
	if err != nil {
		return ""
	}
	if err := r.CanOpen(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err.Error()
	}
	return ""
}

// jailKey is what j counts, as status shows it.
func jailKey(j *config.Jail) string {
	if j.Accounts() {
		return config.KeyAccount
	}
	return config.KeyAddress
}

func journalKey(j *config.Jail) string {
	if j.Journal == nil {
		return ""
	}
	return j.Journal.Key()
}

func matchesAny(patterns []string, path string) bool {
	for _, p := range patterns {
		if ok, _ := filepath.Match(p, path); ok || p == path {
			return true
		}
	}
	return false
}

// fillRunning adds what only the running daemon knows.
func (d *daemon) fillRunning(s *control.Status) {
	s.Running = true
	s.Degraded = d.degraded
	s.Version = d.opt.Version
	s.PID = os.Getpid()
	started := d.started.UTC()
	s.Started = &started
	s.UptimeSec = int64(d.opt.Clock.Now().Sub(d.started).Seconds())
	for _, t := range d.enf.Targets() {
		ts := control.TargetStatus{Name: t.Name, Entries: t.Entries, Syncs: t.Syncs, Repairs: t.Repairs}
		if !t.LastSync.IsZero() {
			at := t.LastSync.UTC()
			ts.LastSync = &at
		}
		if t.LastErr != nil {
			ts.LastError = t.LastErr.Error()
		}
		s.Targets = append(s.Targets, ts)
		if t.Name == enforce.MapTargetName(d.cfg.Global.MapFile) {
			s.MapWrites, s.MapError = t.Syncs, ts.LastError
		}
	}
	es := d.eng.Stats()
	s.Lines, s.NoTime, s.Matches, s.Ignored = es.Lines, es.NoTime, es.Matches, es.Ignored
	var files []watcher.FileStats
	for _, src := range d.sources {
		files = append(files, src.Stats().Files...)
	}
	for i := range s.Jails {
		js := &s.Jails[i]
		js.Files = js.Files[:0]
		for _, f := range files {
			if matchesAny(js.LogPath, f.Path) || js.Journal != "" && js.Journal == f.Path {
				js.Files = append(js.Files, control.FileStatus{Path: f.Path, Offset: f.Pos.Offset, Size: f.Size, Open: f.Open > 0})
			}
		}
	}
	d.fillHealth(s)
	d.fillIgnore(s)
	d.fillPurge(s)
	d.fillCluster(s)
}
