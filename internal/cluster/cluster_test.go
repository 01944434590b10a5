package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/engine"
	"github.com/mailjail/mailjail/internal/redisconn/redistest"
	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/internal/testutil"
)

func TestMain(m *testing.M) { redistest.Main(m) }

var t0 = time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC)

// keyPrefix is a key prefix of the test's own on the shared server, new
// for each run (go test -count=N reruns a test on the same server).
func keyPrefix(t *testing.T) string {
	return fmt.Sprintf("t_%s_%d_", t.Name(), time.Now().UnixNano())
}

func us(d time.Duration) int64 { return t0.Add(d).UnixMicro() }

// ban is a record of a ban of jail j, prefix p, made by node at t0+at
// for an hour.
func ban(p, node string, at time.Duration) Record {
	return Record{Jail: "j", Prefix: p, Since: us(at), Until: us(at + time.Hour), Node: node, Stamp: us(at)}
}

func lift(r Record, node string, at time.Duration) Record {
	r.Lifted, r.By, r.Node, r.Stamp = us(at), "cli", node, us(at)
	return r
}

func fields(recs []Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Field()+"@"+r.Node)
	}
	sort.Strings(out)
	return out
}

func TestPlan(t *testing.T) {
	now := t0.Add(10 * time.Minute)
	a, b := ban("192.0.2.1", "a", 0), ban("192.0.2.2", "b", time.Minute)
	expired := ban("192.0.2.3", "a", -2*time.Hour)
	for _, tc := range []struct {
		name           string
		local, shared  []Record
		publish, apply []string
	}{
		{name: "made here while Redis was away: published", local: []Record{a}, publish: []string{"j|192.0.2.1@a"}},
		{name: "made elsewhere: applied", shared: []Record{b}, apply: []string{"j|192.0.2.2@b"}},
		{name: "the same on both sides: nothing", local: []Record{a}, shared: []Record{a}},
		{name: "an expired ban is never revived", shared: []Record{expired}},
		{name: "nor shared", local: []Record{expired}},
		{name: "unbanned here after the shared ban: the unban wins", local: []Record{lift(a, "c", 5*time.Minute)}, shared: []Record{a}, publish: []string{"j|192.0.2.1@c"}},
		{name: "unbanned elsewhere: applied", local: []Record{a}, shared: []Record{lift(a, "b", 5*time.Minute)}, apply: []string{"j|192.0.2.1@b"}},
		{name: "banned again after an unban: the ban wins", local: []Record{lift(a, "b", 5*time.Minute)}, shared: []Record{ban("192.0.2.1", "c", 6*time.Minute)}, apply: []string{"j|192.0.2.1@c"}},
		{name: "an unban of a ban not held here: nothing", shared: []Record{lift(a, "b", 5*time.Minute)}},
		{name: "same stamp: the later node name wins", local: []Record{ban("192.0.2.1", "b", 0)}, shared: []Record{a}, publish: []string{"j|192.0.2.1@b"}},
		{name: "local newest of two", local: []Record{a, lift(a, "a", 2*time.Minute)}, shared: []Record{a}, publish: []string{"j|192.0.2.1@a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pub, app := Plan(tc.local, tc.shared, now)
			if got := fields(pub); !equal(got, tc.publish) {
				t.Errorf("publish %v, want %v", got, tc.publish)
			}
			if got := fields(app); !equal(got, tc.apply) {
				t.Errorf("apply %v, want %v", got, tc.apply)
			}
		})
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestFromBanAndBack(t *testing.T) {
	b := store.Ban{Jail: "rspamd-ratelimit", Prefix: netip.MustParsePrefix("2001:db8::/64"), Since: t0, Until: t0.Add(time.Hour), Strikes: 10, Reason: "r", Offense: 2}
	r := FromBan(b, "mx1")
	if r.Prefix != "2001:db8::/64" || r.Node != "mx1" || r.Stamp != t0.UnixMicro() || !r.Active(t0) || r.Active(t0.Add(time.Hour)) {
		t.Fatalf("record %+v", r)
	}
	back, err := r.Ban()
	if err != nil || back.Origin != "mx1" || !back.Since.Equal(t0) || !back.Until.Equal(t0.Add(time.Hour)) || back.Prefix != b.Prefix || back.Offense != 2 {
		t.Fatalf("back %+v %v", back, err)
	}
	// A mirrored ban keeps its node; its lift is the lifter's.
	b.Origin, b.Lifted, b.LiftedBy = "mx1", t0.Add(time.Minute), "cli"
	if r := FromBan(b, "mx2"); r.Node != "mx2" || r.Stamp != t0.Add(time.Minute).UnixMicro() || r.Active(t0) {
		t.Fatalf("lift %+v", r)
	}
	for _, bad := range []Record{{Jail: "j", Prefix: "192.0.2.1/24", Node: "a"}, {Jail: "j k", Prefix: "192.0.2.1", Node: "a"}, {Jail: "j", Prefix: "192.0.2.1", Node: "a\n"}} {
		if _, err := bad.Ban(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// The shared hash keeps the later record of each field whoever writes
// last, and publishes only what it keeps.
func TestSharedLastWriterWins(t *testing.T) {
	sh := NewShared(redistest.Shared(t).Client(t), keyPrefix(t))
	ctx := context.Background()
	ps := sh.Subscribe(ctx)
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil { // the subscription's confirmation
		t.Fatal(err)
	}
	a := ban("192.0.2.1", "a", 0)
	l := lift(a, "b", time.Minute)
	for _, step := range []struct {
		r    Record
		kept bool
	}{{a, true}, {l, true}, {a, false}, {ban("192.0.2.1", "a", 30*time.Second), false}, {lift(a, "a", time.Minute), false}, {lift(a, "c", time.Minute), true}} {
		ok, err := sh.Put(ctx, step.r)
		if err != nil || ok != step.kept {
			t.Fatalf("put %+v: %v %v, want %v", step.r, ok, err, step.kept)
		}
	}
	recs, bad, err := sh.All(ctx)
	if err != nil || bad != 0 || len(recs) != 1 || recs[0].Node != "c" || recs[0].Lifted == 0 {
		t.Fatalf("all: %+v %d %v", recs, bad, err)
	}
	for _, want := range []string{"a", "b", "c"} {
		msg, err := ps.ReceiveMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		r, err := decode([]byte(msg.Payload))
		if err != nil || r.Node != want {
			t.Fatalf("published %+v %v, want from %s", r, err, want)
		}
	}
	if err := sh.Drop(ctx, recs[0]); err != nil {
		t.Fatal(err)
	}
	if recs, _, _ := sh.All(ctx); len(recs) != 0 {
		t.Fatalf("dropped record still there: %+v", recs)
	}
	if err := sh.Beat(ctx, "a", t0); err != nil {
		t.Fatal(err)
	}
	if peers, err := sh.Peers(ctx); err != nil || !peers["a"].Equal(t0) {
		t.Fatalf("peers %v %v", peers, err)
	}
}

// Strikes of one address from three nodes count together, a line read
// twice counts once, and exactly one node takes the ban; a node that
// crashed before saving its ban and reads the line again takes it again.
func TestSharedStrikes(t *testing.T) {
	sh := NewShared(redistest.Shared(t).Client(t), keyPrefix(t))
	node := NewNode(sh, Options{Name: "a", Resync: time.Minute, Clock: testutil.NewFakeClock(t0)})
	node.result(nil) // connected
	s := NewStrikes(sh, node)
	ctx := context.Background()
	a := netip.MustParseAddr("198.51.100.1")
	strike := func(id string, at time.Duration) (int, bool) {
		t.Helper()
		n, ban, err := s.Strike(ctx, engine.SharedStrike{Jail: "j", Key: a, ID: id, At: t0.Add(at), FindTime: 10 * time.Minute, MaxRetry: 3})
		if err != nil {
			t.Fatal(err)
		}
		return n, ban
	}
	if n, ban := strike("a|1:1:1:100", -time.Minute); n != 1 || ban {
		t.Fatalf("first: %d %v", n, ban)
	}
	if n, ban := strike("a|1:1:1:100", -time.Minute); n != 1 || ban {
		t.Fatalf("the same line again: %d %v", n, ban)
	}
	if n, ban := strike("b|7:7:7:50", -20*time.Minute); n != 1 || ban {
		t.Fatalf("older than findtime: %d %v", n, ban)
	}
	if n, ban := strike("b|7:7:7:90", 0); n != 2 || ban {
		t.Fatalf("second: %d %v", n, ban)
	}
	if n, ban := strike("c|9:9:9:10", 0); n != 3 || !ban {
		t.Fatalf("third, on c: %d %v", n, ban)
	}
	// The window is cleared; the lock is c's: another node reaching
	// maxretry at once does not ban again, c reading its line again does.
	for i, id := range []string{"a|1:1:1:200", "a|1:1:1:300"} {
		if n, ban := strike(id, 0); n != i+1 || ban {
			t.Fatalf("after the ban: %d %v", n, ban)
		}
	}
	if n, ban := strike("b|7:7:7:190", 0); n != 3 || ban {
		t.Fatalf("maxretry again while c's lock holds: %d %v", n, ban)
	}
	if _, ban := strike("c|9:9:9:10", 0); !ban {
		t.Fatal("c's own line read again after a crash does not ban")
	}
	node.result(errors.New("down"))
	if _, _, err := s.Strike(ctx, engine.SharedStrike{Jail: "j", Key: a, ID: "x", At: t0, FindTime: time.Minute, MaxRetry: 1}); err == nil {
		t.Fatal("no error while Redis is down")
	}
}
