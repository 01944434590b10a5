package enforce

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/core"
	"github.com/mailjail/mailjail/internal/engine"
	"github.com/mailjail/mailjail/internal/outbox"
	"github.com/mailjail/mailjail/internal/testutil"
	"github.com/mailjail/mailjail/notify"
	"github.com/mailjail/mailjail/rules"
)

// breakerConfig bans at the first event: jail long for an hour, jail
// short for a minute.
const breakerConfig = "[global]\ntimezone = \"UTC\"\nBREAKER\n" + alertSection + `[jail.long]
filter = "rspamd-ratelimit"
logpath = ["/var/log/rspamd/long.log"]
maxretry = 1
bantime = "1h"
ban_action = ["/usr/bin/true", "<ip>"]
[jail.short]
filter = "rspamd-ratelimit"
logpath = ["/var/log/rspamd/short.log"]
maxretry = 1
bantime = "1m"
`

func breakerAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
}

// banAt stages one event of each of addresses from..to-1 in jail at now
// and commits: one ban each.
func banAt(t *testing.T, o *Ops, jail string, from, to int, now time.Time) engine.Change {
	t.Helper()
	var lines []core.Line
	for i := from; i < to; i++ {
		l := testutil.RspamdRatelimit{At: now, IP: breakerAddr(i).String(), Bucket: "ip"}.Line()
		lines = append(lines, core.Line{Path: "/var/log/rspamd/" + jail + ".log", Text: []byte(strings.TrimSuffix(l, "\n")), Read: now})
	}
	ch := stageApply(t, o, lines, now)
	if len(ch.Bans) != to-from {
		t.Fatalf("%d bans, want %d", len(ch.Bans), to-from)
	}
	return ch
}

// holds is what the fake target was last given, as addresses.
func holds(f *fakeTarget) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	if len(f.synced) > 0 {
		for _, b := range f.synced[len(f.synced)-1] {
			out = append(out, rules.FormatPrefix(b.Prefix))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func addrRange(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, breakerAddr(i).String())
	}
	slices.Sort(out)
	return out
}

// 1,000 bans in a minute do not trip breaker_bans = 1000; the 1,001st
// does. From then on the targets get no new ban (but manual ones) while
// unbans and expiries still apply; an urgent alert is queued with the
// trip; a restart stays tripped; resume gives the targets the held bans
// that are still active, not those that ended meanwhile, and runs their
// commands.
func TestBreakerHoldsNewBansUntilResume(t *testing.T) {
	o, st, fake := newOps(t, strings.Replace(breakerConfig, "BREAKER", "breaker_bans = 1000\nbreaker_window = \"1m\"", 1))
	ctx := context.Background()
	now := o.Clock.Now()
	// 1,000 bans spread over 59 seconds: inside one window.
	for k := range 10 {
		banAt(t, o, "long", k*100, (k+1)*100, now.Add(time.Duration(k)*6500*time.Millisecond))
	}
	if o.Eng.Breaker().Active() {
		t.Fatal("1,000 bans in a minute tripped breaker_bans = 1000")
	}
	// The 1,001st trips it; the bans of the same batch after it are held too.
	at := now.Add(59 * time.Second)
	ch := banAt(t, o, "long", 1000, 1003, at)
	if ch.Trip == nil || ch.Trip.HeldFrom != ch.Bans[0].ID || !o.Eng.Breaker().Active() {
		t.Fatalf("the 1,001st ban in a minute did not trip the breaker: %+v", ch.Trip)
	}
	if !strings.Contains(ch.Trip.Reason, "1001 new bans within 1m") {
		t.Errorf("reason %q", ch.Trip.Reason)
	}
	banAt(t, o, "short", 1003, 1005, at)
	if got := holds(fake); !slices.Equal(got, addrRange(0, 1000)) {
		t.Fatalf("after the trip the target holds %d entries, want the 1,000 before it", len(got))
	}
	// The trip's urgent alert; no command for a held ban.
	items, err := st.PendingOutbox(5000)
	if err != nil {
		t.Fatal(err)
	}
	var trips, commands int
	for _, it := range items {
		switch it.Kind {
		case outbox.KindAction:
			commands++
		case outbox.KindAlert:
			var a outbox.Alert
			if err := json.Unmarshal(it.Payload, &a); err != nil {
				t.Fatal(err)
			}
			if a.Event == notify.EventBreaker {
				trips++
				if !it.Urgent || !strings.Contains(a.Reason, "mailjail resume") || a.Command != "mailjail resume" {
					t.Errorf("trip alert %+v (urgent %v)", a, it.Urgent)
				}
			}
		}
	}
	if trips != 1 || commands != 1000 {
		t.Errorf("%d trip alerts, %d ban commands; want 1 and 1,000 (held bans run none yet)", trips, commands)
	}
	// An unban of a ban made before the trip still reaches the target; a
	// manual ban is the operator's and is not held.
	if _, err := o.Unban(ctx, UnbanRequest{Prefixes: prefixes("10.0.0.5/32")}); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Ban(ctx, BanRequest{Prefixes: prefixes("192.0.2.99/32")}); err != nil {
		t.Fatal(err)
	}
	want := append(slices.DeleteFunc(addrRange(0, 1000), func(s string) bool { return s == "10.0.0.5" }), "192.0.2.99")
	slices.Sort(want)
	if got := holds(fake); !slices.Equal(got, want) {
		t.Fatalf("after an unban and a manual ban the target holds %d entries, want %d", len(got), len(want))
	}

	// A restart while tripped stays tripped.
	eng, err := engine.New(o.Cfg, st, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.RestoreBans(at); err != nil {
		t.Fatal(err)
	}
	if eng.Breaker() != o.Eng.Breaker() || len(eng.HeldBans()) != 5 {
		t.Fatalf("after a restart: %+v, %d held; want %+v, 5 held", eng.Breaker(), len(eng.HeldBans()), o.Eng.Breaker())
	}
	eng.SetEffects(Effects(o.Cfg))
	o.Eng = eng
	o.Enf = New([]Target{fake}, eng, nil, Options{Clock: o.Clock, Log: quiet})
	if err := o.Enf.SyncAll(ctx); err != nil {
		t.Fatal(err)
	}
	if got := holds(fake); !slices.Equal(got, want) {
		t.Fatalf("after a restart the target holds %d entries, want %d", len(got), len(want))
	}

	// Resume two minutes later: the short jail's held bans have ended.
	o.Clock.(*testutil.FakeClock).Advance(2 * time.Minute)
	ch, err = o.Resume(ctx, "root")
	if err != nil {
		t.Fatal(err)
	}
	if len(ch.Resumed) != 3 || len(ch.Lifted) != 2 {
		t.Fatalf("resume released %d and lifted %d; want the 3 held bans of jail long, and the 2 ended ones", len(ch.Resumed), len(ch.Lifted))
	}
	want = append(want, addrRange(1000, 1003)...)
	slices.Sort(want)
	if got := holds(fake); !slices.Equal(got, want) {
		t.Fatalf("after resume the target holds %d entries, want %d", len(got), len(want))
	}
	if o.Eng.Breaker().Active() {
		t.Error("still tripped after resume")
	}
	rec, ok, err := o.Eng.LastResume()
	if err != nil || !ok || rec.By != "root" || rec.Released != 3 {
		t.Errorf("last resume %+v, %v, %v", rec, ok, err)
	}
	items, _ = st.PendingOutbox(5000)
	commands = 0
	for _, it := range items {
		if it.Kind == outbox.KindAction {
			commands++
		}
	}
	if commands != 1000+3 {
		t.Errorf("%d ban commands planned; want 1,000 before the trip and the 3 released", commands)
	}
	if _, err := o.Resume(ctx, "root"); !errors.Is(err, engine.ErrNotTripped) || !errors.Is(err, core.ErrNotFound) {
		t.Errorf("a second resume: %v", err)
	}
}

// Bans that are more than a window apart never trip it; would-be bans
// and manual bans are not counted.
func TestBreakerCountsInsideTheWindowOnly(t *testing.T) {
	o, _, _ := newOps(t, strings.Replace(breakerConfig, "BREAKER", "breaker_bans = 10\nbreaker_window = \"1m\"", 1)+"mode = \"log-only\"\n")
	now := o.Clock.Now()
	for k := range 5 {
		banAt(t, o, "long", k*10, k*10+10, now.Add(time.Duration(k)*time.Minute))
	}
	banAt(t, o, "short", 100, 150, now.Add(5*time.Minute)) // log-only: the config's last jail
	for i := range 20 {
		if _, err := o.Ban(context.Background(), BanRequest{Prefixes: prefixes(fmt.Sprintf("192.0.2.%d/32", i))}); err != nil {
			t.Fatal(err)
		}
	}
	if o.Eng.Breaker().Active() {
		t.Fatalf("tripped: %+v", o.Eng.Breaker())
	}
	ch := banAt(t, o, "long", 200, 211, now.Add(6*time.Minute))
	if ch.Trip == nil || ch.Trip.HeldFrom != ch.Bans[10].ID {
		t.Fatalf("the 11th ban of a minute did not trip it: %+v", ch.Trip)
	}
}

// breaker_max_entries: a new ban that would make the enforced active bans
// more than the ceiling trips it, whatever the rate.
func TestBreakerMaxEntries(t *testing.T) {
	o, _, fake := newOps(t, strings.Replace(breakerConfig, "BREAKER", "breaker_bans = 0\nbreaker_max_entries = 25", 1))
	now := o.Clock.Now()
	for k := range 5 {
		banAt(t, o, "long", k*5, k*5+5, now.Add(time.Duration(k)*time.Hour/10))
	}
	if o.Eng.Breaker().Active() {
		t.Fatal("25 active bans tripped breaker_max_entries = 25")
	}
	ch := banAt(t, o, "long", 25, 27, now.Add(time.Hour/2))
	if ch.Trip == nil || !strings.Contains(ch.Trip.Reason, "26 active bans, more than breaker_max_entries = 25") {
		t.Fatalf("trip %+v", ch.Trip)
	}
	if got := holds(fake); !slices.Equal(got, addrRange(0, 25)) {
		t.Fatalf("the target holds %d entries, want 25", len(got))
	}
}
