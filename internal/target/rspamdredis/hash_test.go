package rspamdredis

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mailjail/mailjail/internal/enforce"
	"github.com/mailjail/mailjail/internal/enforce/enforcetest"
	"github.com/mailjail/mailjail/internal/redisconn"
	"github.com/mailjail/mailjail/internal/redisconn/redistest"
	"github.com/mailjail/mailjail/internal/store"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func TestMain(m *testing.M) { redistest.Main(m) }

// fixture is a target on the shared server with keys of its own test.
type fixture struct {
	h        *Hash
	raw      *redis.Client // a plain client, for checking and for writing behind the target's back
	bans     string
	accounts string
	counter  *counter
}

var keyChars = regexp.MustCompile(`[^A-Za-z0-9]+`)

func newFixture(t testing.TB, owner string) *fixture {
	t.Helper()
	s := redistest.Shared(t)
	prefix := "t_" + keyChars.ReplaceAllString(t.Name(), "_") + "_"
	return newFixtureOn(t, s, prefix, owner)
}

func newFixtureOn(t testing.TB, s *redistest.Server, prefix, owner string) *fixture {
	t.Helper()
	c, err := redisconn.Open(redisconn.Config{Address: s.Addr, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{raw: s.Client(t), bans: prefix + "bans", accounts: prefix + "accounts", counter: &counter{}}
	c.AddHook(f.counter)
	f.h = New(c, Config{Bans: f.bans, Accounts: f.accounts, Owner: owner})
	t.Cleanup(func() {
		f.raw.Del(context.Background(), f.bans, f.accounts)
		f.h.Close()
	})
	return f
}

// another is a second host's target on the same hashes.
func (f *fixture) another(t testing.TB, owner string) *Hash {
	c := redis.NewClient(&redis.Options{Addr: f.raw.Options().Addr, DisableIdentity: true})
	h := New(c, Config{Bans: f.bans, Accounts: f.accounts, Owner: owner})
	t.Cleanup(func() { h.Close() })
	return h
}

func (f *fixture) sync(t testing.TB, s enforce.State) {
	t.Helper()
	if err := f.h.Sync(context.Background(), s); err != nil {
		t.Fatalf("Sync: %v", err)
	}
}

func (f *fixture) hash(t testing.TB, key string) map[string]string {
	t.Helper()
	m, err := f.raw.HGetAll(context.Background(), key).Result()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (f *fixture) fields(t testing.TB, key string) []string {
	t.Helper()
	m := f.hash(t, key)
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// counter is a go-redis hook counting round trips: a command sent alone
// is one, a pipeline (or MULTI/EXEC) is one.
type counter struct {
	mu         sync.Mutex
	roundTrips int
	pipelines  [][]string // the command names of each pipeline
}

func (c *counter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *counter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.mu.Lock()
		c.roundTrips++
		c.mu.Unlock()
		return next(ctx, cmd)
	}
}

func (c *counter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		names := make([]string, len(cmds))
		for i, cmd := range cmds {
			names[i] = cmd.Name()
		}
		c.mu.Lock()
		c.roundTrips++
		c.pipelines = append(c.pipelines, names)
		c.mu.Unlock()
		return next(ctx, cmds)
	}
}

func (c *counter) reset() {
	c.mu.Lock()
	c.roundTrips, c.pipelines = 0, nil
	c.mu.Unlock()
}

var at0 = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

func ban(p string, until time.Time, jail string) store.Ban {
	return store.Ban{Jail: jail, Prefix: netip.MustParsePrefix(p).Masked(), Since: at0.Add(-time.Minute), Until: until}
}

func suspension(account string, until time.Time, jail string) store.Suspension {
	return store.Suspension{Jail: jail, Account: account, Since: at0.Add(-time.Minute), Until: until, Enforced: true}
}

// dump is a hash as sorted "field = value" lines, for golden files.
func dump(m map[string]string) string {
	lines := make([]string, 0, len(m))
	for k, v := range m {
		lines = append(lines, k+" = "+v)
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n") + "\n"
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to write it)", err)
	}
	if got != string(want) {
		t.Fatalf("%s differs:\n--- got\n%s--- want\n%s", path, got, want)
	}
}

func TestBanAndUnban(t *testing.T) {
	f := newFixture(t, "mx1")
	hour := at0.Add(time.Hour)
	state := enforce.State{At: at0, Bans: []store.Ban{
		ban("192.0.2.7/32", hour, "rspamd-ratelimit"),
		ban("198.51.100.0/24", time.Time{}, "manual"),
		ban("2001:db8:44::5/128", hour, "rspamd-ratelimit"),
		ban("2001:db8:45::/64", hour, "rspamd-ratelimit"),
		ban("10.0.0.0/8", hour, "manual"),
		ban("203.0.113.9/32", at0, "rspamd-ratelimit"), // over at At: not written
	}, Suspensions: []store.Suspension{
		suspension("mallory@example.org", hour, "accounts"),
		suspension("eve@example.org", time.Time{}, "manual"),
	}}
	f.sync(t, state)
	golden(t, "ban.golden", dump(f.hash(t, f.bans))+"--- accounts\n"+dump(f.hash(t, f.accounts)))
	if n := f.h.Entries(); n != 7 {
		t.Errorf("Entries = %d, want 7", n)
	}

	// Unban two, release one: just those fields go.
	state.Bans = slices.Delete(state.Bans, 0, 2)
	state.Suspensions = state.Suspensions[1:]
	f.sync(t, state)
	if got, want := f.fields(t, f.bans), []string{"10.0.0.0/8", "2001:db8:44::5", "2001:db8:45::/64"}; !slices.Equal(got, want) {
		t.Errorf("bans after unban = %v, want %v", got, want)
	}
	if got := f.fields(t, f.accounts); !slices.Equal(got, []string{"eve@example.org"}) {
		t.Errorf("accounts after release = %v", got)
	}
	if n := f.h.Entries(); n != 4 {
		t.Errorf("Entries = %d, want 4", n)
	}

	// A sync with nothing changed writes nothing: one read, no MULTI.
	f.counter.reset()
	f.sync(t, state)
	for _, p := range f.counter.pipelines {
		if slices.Contains(p, "multi") {
			t.Errorf("a sync without changes wrote: %v", f.counter.pipelines)
		}
	}
}

func TestOverlappingBansAreOneFieldTheLongest(t *testing.T) {
	f := newFixture(t, "mx1")
	f.sync(t, enforce.State{At: at0, Bans: []store.Ban{
		ban("192.0.2.7/32", at0.Add(time.Hour), "a"),
		ban("192.0.2.7/32", at0.Add(3*time.Hour), "b"),
		ban("192.0.2.7/32", at0.Add(2*time.Hour), "c"),
		ban("192.0.2.0/24", at0.Add(time.Hour), "d"), // covers the address: a field of its own
		ban("2001:db8::/64", at0.Add(time.Hour), "e"),
		ban("2001:db8::/64", time.Time{}, "f"),
	}, Suspensions: []store.Suspension{
		suspension("mallory@example.org", at0.Add(time.Hour), "a"),
		suspension("mallory@example.org", at0.Add(2*time.Hour), "b"),
	}})
	got := f.hash(t, f.bans)
	want := map[string]string{
		"192.0.2.7":     v(at0.Add(3*time.Hour), "mx1", "b"),
		"192.0.2.0/24":  v(at0.Add(time.Hour), "mx1", "d"),
		"2001:db8::/64": v(time.Time{}, "mx1", "f"),
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("bans = %v\nwant %v", got, want)
	}
	if got := f.hash(t, f.accounts)["mallory@example.org"]; got != v(at0.Add(2*time.Hour), "mx1", "b") {
		t.Errorf("account = %q", got)
	}
	if n := f.h.Entries(); n != 4 {
		t.Errorf("Entries = %d, want 4", n)
	}
}

// A first run against a shared hash with an empty state removes nothing
// of the others; later runs remove only what this host wrote.
func TestSharedHash(t *testing.T) {
	f := newFixture(t, "mx1")
	ctx := context.Background()
	mx2 := f.another(t, "mx2")
	hour := at0.Add(time.Hour)
	if err := mx2.Sync(ctx, enforce.State{At: at0, Bans: []store.Ban{
		ban("192.0.2.2/32", hour, "j"), ban("192.0.2.3/32", time.Time{}, "j"),
	}, Suspensions: []store.Suspension{suspension("bob@example.org", hour, "j")}}); err != nil {
		t.Fatal(err)
	}
	f.raw.HSet(ctx, f.bans, "192.0.2.99", "") // by hand, as the rspamd docs show
	before := f.hash(t, f.bans)

	f.sync(t, enforce.State{At: at0})
	if got := f.hash(t, f.bans); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Fatalf("an empty first sync changed the shared hash:\n%v\nwas %v", got, before)
	}
	if got := f.fields(t, f.accounts); !slices.Equal(got, []string{"bob@example.org"}) {
		t.Fatalf("accounts = %v", got)
	}

	f.sync(t, enforce.State{At: at0, Bans: []store.Ban{ban("192.0.2.1/32", hour, "j")}})
	f.sync(t, enforce.State{At: at0})
	if got := f.hash(t, f.bans); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Fatalf("unban of mx1's own field:\n%v\nwant %v", got, before)
	}

	// Both hosts ban one address: the longer ban holds the field, and the
	// shorter host's unban does not lift the longer one.
	if err := mx2.Sync(ctx, enforce.State{At: at0, Bans: []store.Ban{ban("192.0.2.50/32", hour, "j")}}); err != nil {
		t.Fatal(err)
	}
	f.sync(t, enforce.State{At: at0, Bans: []store.Ban{ban("192.0.2.50/32", at0.Add(2*time.Hour), "k")}})
	if got := f.hash(t, f.bans)["192.0.2.50"]; got != v(at0.Add(2*time.Hour), "mx1", "k") {
		t.Fatalf("field of two hosts' bans = %q, want mx1's longer one", got)
	}
	if err := mx2.Sync(ctx, enforce.State{At: at0}); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.hash(t, f.bans)["192.0.2.50"]; !ok {
		t.Fatal("mx2's unban removed mx1's longer ban")
	}
	// and a host whose ban is covered by a longer one leaves it alone.
	if err := mx2.Sync(ctx, enforce.State{At: at0, Bans: []store.Ban{ban("192.0.2.50/32", hour, "j")}}); err != nil {
		t.Fatal(err)
	}
	if got := f.hash(t, f.bans)["192.0.2.50"]; got != v(at0.Add(2*time.Hour), "mx1", "k") {
		t.Fatalf("mx2 shortened mx1's field: %q", got)
	}
}

// A stopped host's fields stay until they ended SweepGrace ago; then any
// host's Sync removes them.
func TestExpiredFieldsOfAStoppedOwnerAreSwept(t *testing.T) {
	f := newFixture(t, "mx1")
	ctx := context.Background()
	f.raw.HSet(ctx, f.bans,
		"192.0.2.1", v(at0.Add(-SweepGrace-time.Second), "gone", "j"), // long over
		"192.0.2.2", v(at0.Add(-time.Minute), "gone", "j"), // just over: within the grace
		"192.0.2.3", v(time.Time{}, "gone", "j"), // permanent
		"192.0.2.4", "1 until=2020-01-01T00:00:00 owner=gone", // not ours to read: no zone
	)
	f.raw.HSet(ctx, f.accounts, "old@example.org", v(at0.Add(-time.Hour), "gone", "j"))
	f.sync(t, enforce.State{At: at0})
	if got, want := f.fields(t, f.bans), []string{"192.0.2.2", "192.0.2.3", "192.0.2.4"}; !slices.Equal(got, want) {
		t.Errorf("bans after the sweep = %v, want %v", got, want)
	}
	if got := f.fields(t, f.accounts); len(got) != 0 {
		t.Errorf("accounts after the sweep = %v, want none", got)
	}
	f.sync(t, enforce.State{At: at0.Add(SweepGrace)})
	if got, want := f.fields(t, f.bans), []string{"192.0.2.3", "192.0.2.4"}; !slices.Equal(got, want) {
		t.Errorf("bans a grace later = %v, want %v", got, want)
	}
}

func TestDriftIsSeenAndRepaired(t *testing.T) {
	f := newFixture(t, "mx1")
	ctx := context.Background()
	if f.h.Drifted() {
		t.Fatal("Drifted before the first sync")
	}
	state := enforce.State{At: at0, Bans: []store.Ban{ban("192.0.2.7/32", at0.Add(time.Hour), "j"), ban("192.0.2.8/32", time.Time{}, "j")},
		Suspensions: []store.Suspension{suspension("mallory@example.org", time.Time{}, "j")}}
	f.sync(t, state)
	if f.h.Drifted() {
		t.Fatal("Drifted right after a sync")
	}
	want := f.hash(t, f.bans)
	for _, tc := range []struct {
		name   string
		change func()
	}{
		{"DEL of the bans", func() { f.raw.Del(ctx, f.bans) }},
		{"DEL of the accounts", func() { f.raw.Del(ctx, f.accounts) }},
		{"HDEL of one field", func() { f.raw.HDel(ctx, f.bans, "192.0.2.8") }},
		{"FLUSHDB (a restart without persistence)", func() { f.raw.Del(ctx, f.bans, f.accounts) }},
		{"a field added by hand", func() { f.raw.HSet(ctx, f.bans, "192.0.2.99", "") }},
	} {
		tc.change()
		if !f.h.Drifted() {
			t.Fatalf("%s: not Drifted", tc.name)
		}
		f.sync(t, state)
		if f.h.Drifted() {
			t.Fatalf("%s: still Drifted after the sync", tc.name)
		}
		got := f.hash(t, f.bans)
		delete(got, "192.0.2.99") // nobody's: left where it is
		if fmt.Sprint(got) != fmt.Sprint(want) || len(f.fields(t, f.accounts)) != 1 {
			t.Fatalf("%s: after the sync bans = %v accounts = %v", tc.name, got, f.fields(t, f.accounts))
		}
	}
}

func TestRedisDown(t *testing.T) {
	s := redistest.Start(t)
	f := newFixtureOn(t, s, "down_", "mx1")
	state := enforce.State{At: at0, Bans: []store.Ban{ban("192.0.2.7/32", time.Time{}, "j")}}
	s.Stop()
	if f.h.Drifted() {
		t.Fatal("Drifted before any sync")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := f.h.Sync(ctx, state)
	if err == nil || !strings.Contains(err.Error(), f.bans) {
		t.Fatalf("Sync with Redis down = %v, want an error naming %s", err, f.bans)
	}
	if f.h.Drifted() {
		t.Fatal("Drifted with Redis down")
	}
	if f.h.Entries() != 0 {
		t.Fatalf("Entries after a failed sync = %d", f.h.Entries())
	}
}

func TestRedisGoesDownAfterASync(t *testing.T) {
	s := redistest.Start(t)
	f := newFixtureOn(t, s, "down_", "mx1")
	f.sync(t, enforce.State{At: at0, Bans: []store.Ban{ban("192.0.2.7/32", time.Time{}, "j")}})
	s.Stop()
	if f.h.Drifted() {
		t.Fatal("Drifted with Redis down: it cannot tell")
	}
	if err := f.h.Sync(context.Background(), enforce.State{At: at0}); err == nil {
		t.Fatal("Sync with Redis down: no error")
	}
}

// Bans rspamd cannot look up are an error naming them, and the others
// are still written.
func TestInexpressiblePrefixes(t *testing.T) {
	f := newFixture(t, "mx1")
	err := f.h.Sync(context.Background(), enforce.State{At: at0, Bans: []store.Ban{
		ban("10.0.0.0/7", time.Time{}, "manual"), ban("2001:db8::/48", time.Time{}, "manual"), ban("192.0.2.7/32", time.Time{}, "j"),
	}})
	if err == nil || !strings.Contains(err.Error(), "10.0.0.0/7") || !strings.Contains(err.Error(), "2001:db8::/48") {
		t.Fatalf("Sync = %v, want an error naming 10.0.0.0/7 and 2001:db8::/48", err)
	}
	if got := f.fields(t, f.bans); !slices.Equal(got, []string{"192.0.2.7"}) {
		t.Fatalf("bans = %v, want the expressible one", got)
	}
}

// 10,000 bans are one MULTI/EXEC, in a fixed number of round trips
// whatever the count: WATCH, one read of both hashes, the transaction,
// UNWATCH.
func TestBurstIsOnePipeline(t *testing.T) {
	f := newFixture(t, "mx1")
	bans := enforcetest.Bans(0, 10000)
	f.counter.reset()
	start := time.Now()
	f.sync(t, enforce.State{At: enforcetest.At, Bans: bans})
	took := time.Since(start)
	var multi [][]string
	for _, p := range f.counter.pipelines {
		if slices.Contains(p, "multi") {
			multi = append(multi, p)
		}
	}
	if len(multi) != 1 {
		t.Fatalf("%d MULTI pipelines, want 1: %v", len(multi), f.counter.pipelines)
	}
	hsets := 0
	for _, name := range multi[0] {
		if name == "hset" {
			hsets++
		}
	}
	if hsets != 10 {
		t.Errorf("%d HSETs in the transaction, want 10 of 1,000 fields", hsets)
	}
	if f.counter.roundTrips > 4 {
		t.Errorf("%d round trips, want at most 4", f.counter.roundTrips)
	}
	if n, _ := f.raw.HLen(context.Background(), f.bans).Result(); n != 10000 {
		t.Fatalf("HLEN = %d, want 10000", n)
	}
	t.Logf("10,000 bans: %d round trips, %s", f.counter.roundTrips, took)
}

// A host that writes between this Sync's read and its write makes the
// transaction fail (WATCH); the Sync reads again and respects the write.
func TestConcurrentWriterIsRespected(t *testing.T) {
	f := newFixture(t, "mx1")
	ctx := context.Background()
	f.h.c.AddHook(&interloper{once: func() {
		f.raw.HSet(ctx, f.bans, "192.0.2.7", v(time.Time{}, "mx2", "j"))
	}})
	f.sync(t, enforce.State{At: at0, Bans: []store.Ban{ban("192.0.2.7/32", at0.Add(time.Hour), "j")}})
	if got := f.hash(t, f.bans)["192.0.2.7"]; got != v(time.Time{}, "mx2", "j") {
		t.Fatalf("field = %q: the stale decision overwrote mx2's permanent ban", got)
	}
	if f.h.Drifted() {
		t.Fatal("Drifted after the retried sync")
	}
}

// interloper runs once after the first pipeline that reads (HGETALL).
type interloper struct {
	mu   sync.Mutex
	once func()
}

func (i *interloper) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (i *interloper) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (i *interloper) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		if len(cmds) > 0 && cmds[0].Name() == "hgetall" {
			i.mu.Lock()
			f := i.once
			i.once = nil
			i.mu.Unlock()
			if f != nil {
				f()
			}
		}
		return err
	}
}

func TestName(t *testing.T) {
	h := New(redis.NewClient(&redis.Options{}), Config{Bans: "mailjail_bans", Accounts: "mailjail_accounts"})
	defer h.Close()
	if h.Name() != "rspamd-redis:mailjail_bans" {
		t.Fatalf("Name = %q", h.Name())
	}
	if h.cfg.Owner == "" {
		t.Fatal("an empty owner stayed empty")
	}
}

// BenchmarkSync1 is one more ban over 1,000 held (p50/p99 of Sync).
func BenchmarkSync1(b *testing.B) {
	f := newFixture(b, "mx1")
	enforcetest.Sync1(b, f.h, 1000)
}

// BenchmarkBurst10k is 10,000 bans from empty in one Sync, with its
// round trips and commands.
func BenchmarkBurst10k(b *testing.B) {
	f := newFixture(b, "mx1")
	f.counter.reset()
	enforcetest.Burst(b, func() enforce.Target {
		f.raw.Del(context.Background(), f.bans, f.accounts)
		return f.h
	}, 10000)
	b.StopTimer()
	cmds := 0
	for _, p := range f.counter.pipelines {
		cmds += len(p)
	}
	b.ReportMetric(float64(f.counter.roundTrips)/float64(b.N), "roundtrips/op")
	b.ReportMetric(float64(cmds)/float64(b.N), "pipelined-cmds/op")
}

// BenchmarkEnforced is commit → held through a started enforcer, one
// ban at a time over 1,000 (p50/p99).
func BenchmarkEnforced(b *testing.B) {
	f := newFixture(b, "mx1")
	enforcetest.Enforced(b, f.h, 1000)
}

// BenchmarkBurstEnforced10k is 10,000 bans committed in batches of 100 to
// a started enforcer: the time until the hash holds them all, and the
// syncs (each one MULTI/EXEC) it took.
func BenchmarkBurstEnforced10k(b *testing.B) {
	f := newFixture(b, "mx1")
	enforcetest.BurstEnforced(b, func() enforce.Target {
		f.raw.Del(context.Background(), f.bans, f.accounts)
		return f.h
	}, 10000, 100)
}
