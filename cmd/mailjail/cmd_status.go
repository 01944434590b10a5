package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/control"
	"github.com/mailjail/mailjail/internal/daemon"
	"github.com/mailjail/mailjail/internal/engine"
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show the daemon's state per jail",
		Description: `Per jail: what it counts (addresses or accounts), files followed and
their read positions, addresses or accounts holding strikes, active
bans, bans in total, active suspensions; the account map and the
accounts it holds; the daemon's uptime and version.
Without a running daemon it prints what the database holds and
"running": false.

A jail with mode = "log-only" shows its active would-be bans (mailjail
list --would-ban lists them). A tripped circuit breaker is shown with
when and why it tripped and the bans it holds back from the targets
(mailjail resume releases them).

Rate jails also show their rate events (and, from a running daemon, the
keys tracked per limit and the keys the full table let through).

JSON (every key always present): {"running", "degraded", "version", "pid",
"started" (null without a daemon), "uptime_seconds", "database",
"map_file", "map_entries", "map_writes", "map_error", "map_reader_error",
"account_map_file", "account_map_entries", "lines_read",
"lines_without_time", "matches", "ignored", "breaker" (null when not
tripped, else {"tripped", "reason", "held", "first_held_id"}), "jails":
[{"name", "key" ("address", "account", "" for manual), "mode" ("ban",
"log-only", a rate jail's "suspend"; "" for manual), "would_bans", "filter", "logpath", "journal",
"files": [{"path", "offset", "size", "open"}], "strikes_tracked",
"strikes_stored", "active_bans", "total_bans", "active_suspensions",
"rate_events", "rate_keys": {LIMIT: n}, "rate_untracked",
"events_too_old", "events_from_future"}], "targets": [{"name", "entries",
"syncs", "last_sync", "last_error", "repairs"}] ([] without a daemon),
"outbox": {"pending", "failed", "gave_up", "oldest_pending" (null: none
pending)} (null before the first start of this version); "failed" are
the pending items retried after a failure (mailjail outbox lists them),
"last_purge": {"at", "took_seconds", "removed", "error"} (null: no purge
of history older than dbpurgeage since the daemon started)}

Examples:
   mailjail status
   mailjail status --json | jq '.jails[] | {name, active_bans}'`,
		Flags: []cli.Flag{jsonFlag},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			cfg, err := loadConfig(c)
			if err != nil {
				return err
			}
			s, noDB, err := fetchStatus(c.Context, cfg)
			if err != nil {
				return err
			}
			s.Version = versionString()
			stableStatus(s)
			if c.Bool("json") {
				return printJSON(c.App.Writer, s)
			}
			printStatus(c.App.Writer, cfg, s, noDB)
			return nil
		},
	}
}

// fetchStatus asks the daemon, or without one reads the database; noDB
// says there is no database yet.
func fetchStatus(ctx context.Context, cfg *config.Config) (s *control.Status, noDB bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := control.Call(ctx, cfg.Global.Socket, control.OpStatus, control.Request{})
	switch {
	case err == nil && resp.Status != nil:
		return resp.Status, false, nil
	case err == nil:
		return nil, false, respond(resp)
	case !errors.Is(err, control.ErrNoDaemon):
		return nil, false, &exitError{code: control.ExitUnreachable, err: err}
	}
	st, err := openRead(cfg)
	if errors.Is(err, errNoDatabase) {
		return &control.Status{Database: cfg.Global.Database, MapFile: cfg.Global.MapFile}, true, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer st.Close()
	if s, err = daemon.BuildStatus(cfg, st, nil); err != nil {
		return nil, false, &exitError{code: control.ExitUnreachable, err: err}
	}
	return s, false, nil
}

// stableStatus gives every list and map of the schema a value, so that
// JSON has [] and {} where there is nothing, never null or a missing key.
func stableStatus(s *control.Status) {
	if s.Jails == nil {
		s.Jails = []control.JailStatus{}
	}
	if s.Targets == nil {
		s.Targets = []control.TargetStatus{}
	}
	for i := range s.Jails {
		j := &s.Jails[i]
		if j.LogPath == nil {
			j.LogPath = []string{}
		}
		if j.Files == nil {
			j.Files = []control.FileStatus{}
		}
		if j.RateKeys == nil {
			j.RateKeys = map[string]int{}
		}
	}
}

func printStatus(w io.Writer, cfg *config.Config, s *control.Status, noDB bool) {
	if s.Running {
		textf(w, "mailjail %s: running, pid %d, up %s\n", s.Version, s.PID, (time.Duration(s.UptimeSec) * time.Second).String())
		textf(w, "lines read: %d, matches: %d, ignored: %d, without timestamp: %d\n", s.Lines, s.Matches, s.Ignored, s.NoTime)
	} else {
		textf(w, "mailjail %s: daemon not running\n", s.Version)
	}
	if noDB {
		textf(w, "database: %s (none yet)\n", s.Database)
	} else {
		textf(w, "database: %s\n", s.Database)
	}
	textf(w, "map: %s (%d entries", s.MapFile, s.MapEntries)
	if s.Running {
		textf(w, ", %d writes", s.MapWrites)
	}
	textf(w, ")\n")
	if s.MapError != "" {
		textf(w, "map error: %s\n", s.MapError)
	}
	textf(w, "account map: %s (%d accounts)\n", s.AccountMapFile, s.AccountMapEntries)
	if s.MapReaderError != "" {
		textf(w, "WARNING rspamd cannot read the map, its bans are not enforced: %s\n", s.MapReaderError)
	}
	if s.Degraded != "" {
		textf(w, "DEGRADED: %s\n", s.Degraded)
	}
	if s.Breaker != nil {
		textf(w, "HELD: %s\n", s.Breaker.Summary())
	}
	for _, warn := range s.Warnings {
		textf(w, "WARNING %s\n", warn)
	}
	for _, t := range s.Targets {
		last := "never"
		if t.LastSync != nil {
			last = fmtTime(*t.LastSync)
		}
		textf(w, "target %s: %d entries, %d syncs, last %s, %d repairs", t.Name, t.Entries, t.Syncs, last, t.Repairs)
		if t.LastError != "" {
			textf(w, ", last error: %s", t.LastError)
		}
		textf(w, "\n")
	}
	if o := s.Outbox; o != nil {
		textf(w, "outbox: %d pending (%d after a failure), %d given up", o.Pending, o.Failed, o.GaveUp)
		if o.OldestPending != nil {
			textf(w, ", oldest pending queued %s", fmtTime(*o.OldestPending))
		}
		textf(w, "\n")
	}
	if p := s.LastPurge; p != nil {
		textf(w, "last purge: %s, %d rows removed in %.1fs", fmtTime(p.At), p.Removed, p.TookSec)
		if p.Error != "" {
			textf(w, ", stopped: %s", p.Error)
		}
		textf(w, "\n")
	}
	printIgnoreStatus(w, s.Ignore)
	printClusterStatus(w, s.Cluster)
	for _, j := range s.Jails {
		printJailStatus(w, cfg.Jail(j.Name), j, s.Running)
	}
}

// printIgnoreStatus writes what ignoreip's names, files and ignoreself
// stand for.
func printIgnoreStatus(w io.Writer, is *control.IgnoreStatus) {
	if is == nil {
		return
	}
	if is.Self != nil {
		textf(w, "ignoreself: %s\n", strings.Join(is.Self, " "))
	}
	for _, n := range is.Names {
		addrs := strings.Join(n.Addrs, " ")
		if addrs == "" {
			addrs = "no address"
		}
		textf(w, "ignoreip %s: %s", n.Name, addrs)
		if n.Resolved != nil {
			textf(w, " (resolved %s)", fmtTime(*n.Resolved))
		}
		if n.Error != "" {
			textf(w, ", last lookup failed: %s", n.Error)
		}
		textf(w, "\n")
	}
	for _, f := range is.Files {
		textf(w, "ignoreip file:%s: %d entries", f.Path, f.Entries)
		if f.Loaded != nil {
			textf(w, " (read %s)", fmtTime(*f.Loaded))
		}
		if f.Error != "" {
			textf(w, ", last read failed: %s", f.Error)
		}
		textf(w, "\n")
	}
}

// printJailStatus writes one jail: what it reads with, its counts, the
// rate events of a rate jail, its files.
func printJailStatus(w io.Writer, jc *config.Jail, j control.JailStatus, running bool) {
	var what []string
	switch {
	case jc != nil && jc.Rate != nil:
		what = append(what, "rate jail, key "+jc.Rate.Key)
	case j.Filter != "":
		what = append(what, "filter "+j.Filter)
	}
	counted := "addresses"
	if j.Key == config.KeyAccount {
		counted = "accounts"
	}
	if j.Key != "" {
		what = append(what, "counts "+counted)
	}
	// A rate jail's log-only (its default for accounts and senders)
	// records rate events, never would-be bans: its rate events tell.
	logOnly := j.Mode == config.ModeLogOnly && (jc == nil || jc.Rate == nil)
	if logOnly {
		what = append(what, "mode log-only")
	}
	paren := ""
	if len(what) > 0 {
		paren = " (" + strings.Join(what, ", ") + ")"
	}
	textf(w, "jail %s%s: %d active bans, %d bans total", j.Name, paren, j.ActiveBans, j.TotalBans)
	if j.WouldBans > 0 || logOnly {
		textf(w, ", %d would-be bans (not enforced)", j.WouldBans)
	}
	if j.Key == config.KeyAccount || j.ActiveSusp > 0 {
		textf(w, ", %d active suspensions", j.ActiveSusp)
	}
	if j.Name != engine.ManualJail {
		textf(w, ", %d %s with strikes, %d strikes stored", j.StrikesTracked, counted, j.StrikesStored)
	}
	textf(w, "\n")
	if j.EventsTooOld > 0 || j.EventsFuture > 0 {
		textf(w, "  WARNING events older than findtime: %d, from the future: %d (check the timezone setting and the log's clock)\n", j.EventsTooOld, j.EventsFuture)
	}
	if jc != nil && jc.Rate != nil || j.RateEvents > 0 || len(j.RateKeys) > 0 || j.RateUntracked > 0 {
		if !running {
			// Keys and the table live in the daemon's memory only.
			textf(w, "  rate events: %d\n", j.RateEvents)
		} else {
			keys := make([]string, 0, len(j.RateKeys))
			for k, n := range j.RateKeys {
				keys = append(keys, fmt.Sprintf("%s=%d", k, n))
			}
			sort.Strings(keys)
			if len(keys) == 0 {
				keys = []string{"none"}
			}
			textf(w, "  rate events: %d, keys tracked: %s, untracked (table full): %d\n", j.RateEvents, strings.Join(keys, " "), j.RateUntracked)
		}
	}
	for _, f := range j.Files {
		textf(w, "  %s at %d of %d bytes\n", f.Path, f.Offset, f.Size)
	}
}

// printClusterStatus writes this node's view of the cluster.
func printClusterStatus(w io.Writer, c *control.ClusterStatus) {
	if c == nil {
		return
	}
	state := "connected"
	if !c.Connected {
		state = "NOT connected (" + c.LastError + ")"
	}
	textf(w, "cluster: node %s, %s, %d published, %d received", c.Node, state, c.Published, c.Received)
	if c.LastResync != nil {
		textf(w, ", last resync %s", fmtTime(*c.LastResync))
	}
	if c.LastReceived != nil {
		textf(w, ", last record %s (%d ms after it was made)", fmtTime(*c.LastReceived), c.LagMS)
	}
	textf(w, "\n")
	for _, p := range c.Peers {
		textf(w, "cluster peer %s: last seen %s\n", p.Node, fmtTime(p.LastSeen))
	}
}
