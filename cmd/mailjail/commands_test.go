package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/mailjail/mailjail/internal/testutil"
)

type banJSON struct {
	Addr      string  `json:"addr"`
	Jail      string  `json:"jail"`
	Until     *string `json:"until"`
	Permanent bool    `json:"permanent"`
	Reason    string  `json:"reason"`
}

func (e *env) listed() []string {
	var out struct{ Bans []banJSON }
	e.mustJSON(&out, "list")
	var addrs []string
	for _, b := range out.Bans {
		addrs = append(addrs, b.Addr)
	}
	return addrs
}

// The same operations behave the same with and without a daemon.
func TestBanUnbanListShow(t *testing.T) {
	t.Parallel()
	for _, withDaemon := range []bool{false, true} {
		t.Run(fmt.Sprintf("daemon=%v", withDaemon), func(t *testing.T) {
			e := newEnv(t)
			if withDaemon {
				e.startDaemon()
			}
			tests := []struct {
				args     []string
				code     int
				contains string
			}{
				{[]string{"ban", "198.51.100.23"}, 0, "banned 198.51.100.23 in jail manual until"},
				{[]string{"ban", "2001:0db8::0042", "--permanent", "--reason", "by hand"}, 0, "banned 2001:db8::42 in jail manual until permanent"},
				{[]string{"ban", "203.0.113.0/24", "--for", "1d"}, 0, "banned 203.0.113.0/24"},
				{[]string{"ban", "300.1.2.3"}, 2, `invalid address "300.1.2.3"`},
				{[]string{"ban", "198.51.100.7", "300.1.2.3"}, 2, "invalid address"},
				{[]string{"ban", "192.0.2.9"}, 2, "ignoreip"},
				{[]string{"ban", "198.51.100.1", "--for", "10x"}, 2, "--for"},
				{[]string{"ban", "198.51.100.1", "--jail", "nope"}, 2, `unknown jail "nope"`},
				{[]string{"ban"}, 2, "at least one address"},
				{[]string{"unban", "300.1.2.3"}, 2, "invalid address"},
				{[]string{"unban", "198.51.100.99"}, 1, "not banned"},
				{[]string{"unban"}, 2, "addresses or --all"},
				{[]string{"show", "198.51.100.99"}, 1, "not banned"},
				{[]string{"show", "2001:db8::42"}, 0, "2001:db8::42: banned"},
				{[]string{"frobnicate"}, 2, ""},
			}
			for _, tt := range tests {
				out, errs, code := e.mj(tt.args...)
				if code != tt.code || !strings.Contains(out+errs, tt.contains) {
					t.Errorf("%v: exit %d, want %d; output %q %q, want %q", tt.args, code, tt.code, out, errs, tt.contains)
				}
			}
			// Nothing from the failed commands got in; the map agrees.
			want := []string{"198.51.100.23", "2001:db8::42", "203.0.113.0/24"}
			got := e.listed()
			if !slices.Equal(sorted(got), sorted(want)) || !slices.Equal(sorted(e.mapAddrs()), sorted(want)) {
				t.Fatalf("list %v, map %v, want %v", got, e.mapAddrs(), want)
			}
			var show struct {
				Banned bool
				Active []banJSON
			}
			e.mustJSON(&show, "show", "2001:db8::42")
			if !show.Banned || !show.Active[0].Permanent || show.Active[0].Until != nil || show.Active[0].Reason != "by hand" {
				t.Errorf("show = %+v", show)
			}
			// The map changes before the command returns.
			if _, errs, code := e.mj("unban", "198.51.100.23"); code != 0 || e.inMap("198.51.100.23") {
				t.Fatalf("unban: exit %d %s, map %v", code, errs, e.mapAddrs())
			}
			var ch struct {
				OK   bool
				Bans []banJSON
			}
			e.mustJSON(&ch, "unban", "--all")
			if !ch.OK || len(ch.Bans) != 2 || len(e.mapAddrs()) != 0 || len(e.listed()) != 0 {
				t.Fatalf("unban --all: %+v, map %v", ch, e.mapAddrs())
			}
			if _, _, code := e.mj("unban", "--all"); code != 1 {
				t.Errorf("unban --all with nothing banned: exit %d", code)
			}
			var st struct {
				Running bool
				Jails   []struct {
					Name      string
					TotalBans int64 `json:"total_bans"`
				}
			}
			e.mustJSON(&st, "status")
			if st.Running != withDaemon || len(st.Jails) != 2 || st.Jails[1].Name != "manual" || st.Jails[1].TotalBans != 3 {
				t.Errorf("status = %+v", st)
			}
		})
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

func TestCheck(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if out, errs, code := e.mj("check"); code != 0 || !strings.Contains(out, ": ok") {
		t.Fatalf("check: %d %s %s", code, out, errs)
	}
	bad := e.config + ".bad"
	os.WriteFile(bad, []byte("[jail.x]\nfilter = \"rspamd-ratelimit\"\nlogpath = [\"/l\"]\nfindtime = \"1y\"\nmaxretyr = 1\n"), 0o644)
	_, errs, code := e.mj("check", "--config", bad)
	if code != 2 || !strings.Contains(errs, bad+":4: jail.x.findtime: invalid duration") {
		t.Fatalf("check bad: %d %q", code, errs)
	}
	os.WriteFile(bad, []byte("[jail.x]\nfilter = \"rspamd-ratelimit\"\nlogpath = [\"/l\"]\nmaxretry = 0\n"), 0o644)
	if _, errs, code := e.mj("check", "--config", bad); code != 2 || !strings.Contains(errs, bad+":4: jail.x.maxretry: must be at least 1") {
		t.Fatalf("check bad: %d %q", code, errs)
	}
	if _, errs, code := e.mj("run", "--config", bad); code != 2 && !strings.Contains(errs, "maxretry") {
		t.Fatalf("run with bad config: %d %q", code, errs)
	}
}

func TestTestFilterAndReplay(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var tf struct {
		Lines, Matched, Missed int
		Addresses              map[string]int
		Buckets                map[string]int
	}
	e.mustJSON(&tf, "test-filter", "rspamd-ratelimit", "../../testdata/rspamd-3.4-proxy.log")
	if tf.Lines != 3239 || tf.Matched != 19 || tf.Missed != 3220 || tf.Addresses["198.18.5.6"] != 5 || tf.Buckets["user"] != 7 {
		t.Errorf("test-filter = %+v", tf)
	}
	out, _, code := e.mj("test-filter", "rspamd-ratelimit", "../../testdata/rspamd-3.4-proxy.log")
	if code != 0 || !strings.Contains(out, "Lines: 3239, matched: 19, missed: 3220") || !strings.Contains(out, "lines/s") {
		t.Errorf("test-filter text: %s", out)
	}
	// A jail's name and a regex work as FILTER; flags may follow the arguments.
	out, _, code = e.mj("test-filter", `milter-reject: END-OF-MESSAGE from \S+\[<HOST>\]`, "../../testdata/postfix-3.7.log", "--print-matches")
	if code != 0 || strings.Count(out, "milter-reject") != 16 {
		t.Errorf("regex filter: exit %d\n%s", code, out)
	}
	if _, _, code := e.mj("test-filter", "rspamd-ratelimit", "../../testdata/postfix-3.7.log"); code != 1 {
		t.Errorf("no match: exit %d", code)
	}
	if _, errs, code := e.mj("test-filter", "nope", "x"); code != 2 || !strings.Contains(errs, `filter "nope"`) {
		t.Errorf("unknown filter: %d %s", code, errs)
	}
	var rp struct {
		Lines   int
		Strikes int
		Bans    []banJSON
	}
	e.mustJSON(&rp, "replay", "../../testdata/rspamd-3.4-proxy.log")
	var got []string
	for _, b := range rp.Bans {
		got = append(got, b.Addr)
	}
	if rp.Lines != 3239 || !slices.Equal(got, []string{"198.18.0.66", "198.18.5.6"}) {
		t.Errorf("replay = %+v", rp)
	}
	if _, err := os.Stat(e.db); err == nil {
		t.Error("replay touched the real database")
	}
}

// Several CLIs and the daemon act at once: no update is lost, and the
// database and the map agree at the end.
func TestConcurrentCLIsAndDaemon(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startDaemon()
	var wg sync.WaitGroup
	// The daemon bans 10.1.0.x from its log while CLIs ban and unban others.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 20 {
			for range 3 {
				if err := e.appendLog(testutil.RspamdRatelimit{IP: fmt.Sprintf("10.1.0.%d", i)}.Line()); err != nil {
					t.Errorf("append to the log: %v", err)
					return
				}
			}
		}
	}()
	for c := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 8 {
				addr := fmt.Sprintf("198.51.%d.%d", c, i)
				if _, errs, code, err := e.run("ban", addr); code != 0 || err != nil {
					t.Errorf("ban %s: %d %s %v", addr, code, errs, err)
				}
				if i%2 == 0 {
					if _, errs, code, err := e.run("unban", addr); code != 0 || err != nil {
						t.Errorf("unban %s: %d %s %v", addr, code, errs, err)
					}
				}
			}
		}()
	}
	wg.Wait()
	e.waitFor("20 log bans", func() bool { return len(e.listed()) == 20+16 })
	e.waitFor("map to agree", func() bool { return slices.Equal(sorted(e.listed()), sorted(e.mapAddrs())) })
}

// Without a daemon, CLIs serialise on the lock and lose nothing.
func TestConcurrentCLIsWithoutDaemon(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var wg sync.WaitGroup
	for c := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5 {
				if _, errs, code, err := e.run("ban", fmt.Sprintf("198.51.%d.%d", c, i)); code != 0 || err != nil {
					t.Errorf("ban: %d %s %v", code, errs, err)
				}
			}
		}()
	}
	wg.Wait()
	if got := e.listed(); len(got) != 20 || !slices.Equal(sorted(got), sorted(e.mapAddrs())) {
		t.Fatalf("list %d entries, map %v", len(got), e.mapAddrs())
	}
}

func TestJSONIsParseable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, args := range [][]string{{"list"}, {"status"}, {"version"}, {"show", "198.51.100.1"}} {
		out, _, _ := e.mj(append(args, "--json")...)
		if !json.Valid([]byte(out)) {
			t.Errorf("%v: invalid JSON %q", args, out)
		}
	}
}

// A database that cannot be read is named, with the reason, and exit 3.
func TestUnreadableDatabase(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if err := os.MkdirAll(filepath.Dir(e.db), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.db, []byte("this is not a database, just text long enough to fill a header page"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"list"}, {"ban", "198.51.100.1"}, {"status"}} {
		_, errs, code := e.mj(args...)
		if code != 3 || !strings.Contains(errs, e.db) {
			t.Errorf("%v: exit %d, %q; want 3 naming %s", args, code, errs, e.db)
		}
	}
}

func TestCompletion(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	out, _, code := e.mj("--generate-bash-completion")
	for _, cmd := range []string{"run", "list", "ban", "unban", "test-filter", "replay"} {
		if code != 0 || !strings.Contains(out, cmd+"\n") {
			t.Errorf("completion of commands lacks %s: %q", cmd, out)
		}
	}
	for _, shell := range []string{"bash", "zsh"} {
		if out, _, code := e.mj("completion", shell); code != 0 || !strings.Contains(out, "--generate-bash-completion") {
			t.Errorf("completion %s: %d %q", shell, code, out)
		}
	}
	if _, _, code := e.mj("completion", "tcsh"); code != 2 {
		t.Errorf("completion tcsh: exit %d", code)
	}
}
