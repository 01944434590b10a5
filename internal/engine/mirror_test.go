package engine

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/core"
	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/internal/testutil"
)

// What another node banned is banned here: with its node as origin, not
// replacing a newer ban of the same key, never of an ignored address, and
// counting for escalation; its unban lifts only a ban made before it.
func TestMirror(t *testing.T) {
	e, st := newEngine(t, jail+`ignoreip = ["192.0.2.9"]`)
	ctx := context.Background()
	now := time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC)
	p := netip.MustParsePrefix("198.51.100.7/32")
	remote := store.Ban{Jail: "rl", Prefix: p, Since: now.Add(-time.Minute), Until: now.Add(time.Hour), Strikes: 2, Reason: "2 strikes", Offense: 1, Origin: "mx2"}
	ch, err := e.Mirror(ctx, Mirrored{Bans: []store.Ban{
		remote,
		{Jail: "rl", Prefix: netip.MustParsePrefix("192.0.2.9/32"), Since: now, Until: now.Add(time.Hour), Origin: "mx2"},       // ignored here
		{Jail: "rl", Prefix: netip.MustParsePrefix("192.0.2.10/32"), Since: now.Add(-2 * time.Hour), Until: now, Origin: "mx2"}, // ended
	}}, now)
	if err != nil || addrs(ch.Bans) != "198.51.100.7" || addrs(e.ActiveBans()) != "198.51.100.7" {
		t.Fatalf("mirrored %v (%v), active %v", addrs(ch.Bans), err, addrs(e.ActiveBans()))
	}
	if bans, _ := st.ActiveBans(); len(bans) != 1 || bans[0].Origin != "mx2" {
		t.Fatalf("stored %+v", bans)
	}
	// The same record again, or an older one: nothing.
	older := remote
	older.Since = now.Add(-time.Hour)
	if ch, err := e.Mirror(ctx, Mirrored{Bans: []store.Ban{remote, older}}, now); err != nil || !ch.Empty() {
		t.Fatalf("again: %+v %v", ch, err)
	}
	// The address's events here are the ban working.
	line := func(at time.Time) core.Line {
		return core.Line{Path: "/var/log/rspamd/rspamd.log", Text: []byte(strings.TrimSuffix(testutil.RspamdRatelimit{At: at, IP: "198.51.100.7", Bucket: "ip"}.Line(), "\n")), Read: at}
	}
	e.Stage([]core.Line{line(now)}, now)
	if len(e.pending.strikes) != 0 {
		t.Fatal("a mirrored ban's address still strikes")
	}
	// An unban older than the ban lifts nothing; a newer one lifts it.
	if ch, err := e.Mirror(ctx, Mirrored{Lifts: []Lift{{Jail: "rl", Prefix: p, At: now.Add(-2 * time.Minute), By: "cli", Node: "mx3"}}}, now); err != nil || !ch.Empty() {
		t.Fatalf("older unban: %+v %v", ch, err)
	}
	ch, err = e.Mirror(ctx, Mirrored{Lifts: []Lift{{Jail: "rl", Prefix: p, At: now, By: "cli", Node: "mx3"}}}, now)
	if err != nil || len(ch.Lifted) != 1 || ch.Lifted[0].LiftedBy != "cluster:mx3:cli" || len(e.ActiveBans()) != 0 {
		t.Fatalf("unban: %+v %v", ch, err)
	}
	// The mirrored ban was this address's first: its next ban here is
	// its second offense.
	later := now.Add(time.Minute)
	e.Stage([]core.Line{line(later), line(later)}, later)
	ch, err = e.Commit(ctx)
	if err != nil || len(ch.Bans) != 1 || ch.Bans[0].Offense != 2 {
		t.Fatalf("next ban here: %+v %v", ch.Bans, err)
	}
}
