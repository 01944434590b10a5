package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/mailjail/mailjail/internal/testutil"
	"github.com/mailjail/mailjail/rules"
)

type suspJSON struct {
	Account   string
	Jail      string
	Until     *string
	Permanent bool
	Enforced  bool
	Reason    string
	Sources   []struct {
		Addr  string
		Count int
	}
	Lifted   *string
	LiftedBy string `json:"lifted_by"`
}

// accountMap returns the accounts in the account map file, in file order.
func (e *env) accountMap() []string { return mapKeys(e.acctMap) }

func (e *env) suspended() []string {
	var out struct{ Suspensions []suspJSON }
	e.mustJSON(&out, "list", "--accounts")
	var accounts []string
	for _, s := range out.Suspensions {
		accounts = append(accounts, s.Account)
	}
	return accounts
}

// suspend, release, list --accounts and show ACCOUNT behave the same
// with and without a daemon, and the account map follows before each
// command returns.
func TestSuspendReleaseListShowAccounts(t *testing.T) {
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
				{[]string{"suspend", "mallory@example.org"}, 0, "suspended mallory@example.org in jail manual until 20"},
				{[]string{"suspend", "bot@example.org", "--permanent", "--reason", "spam run"}, 0, "suspended bot@example.org in jail manual until released"},
				{[]string{"suspend", "eve@example.org", "--for", "2d"}, 0, "suspended eve@example.org"},
				{[]string{"suspend", "x@example.org", "--for", "1h", "--permanent"}, 2, "exclude each other"},
				{[]string{"suspend", "x@example.org", "--for", "10x"}, 2, "--for"},
				{[]string{"suspend"}, 2, "at least one account"},
				{[]string{"release"}, 2, "at least one account"},
				{[]string{"release", "nobody@example.org"}, 1, "not suspended: [nobody@example.org]"},
				{[]string{"release", "eve@example.org", "nobody@example.org"}, 1, "released eve@example.org (jail manual)"},
				{[]string{"show", "nobody@example.org"}, 1, "nobody@example.org: not suspended"},
				{[]string{"show", "bot@example.org"}, 0, "release with: mailjail release bot@example.org"},
			}
			for _, tt := range tests {
				out, errs, code := e.mj(tt.args...)
				if code != tt.code || !strings.Contains(out+errs, tt.contains) {
					t.Errorf("%v: exit %d, want %d; output %q %q, want %q", tt.args, code, tt.code, out, errs, tt.contains)
				}
			}
			// An account the rules refuse is named, exit 2, nothing changes.
			const bad = "a b@example.org"
			if _, werr := rules.NormalizeAccount(bad); werr != nil {
				if _, errs, code := e.mj("suspend", "ok@example.org", bad); code != 2 || !strings.Contains(errs, `"a b@example.org"`) {
					t.Errorf("suspend of %q: exit %d %q, want 2 naming it", bad, code, errs)
				}
			}
			want := []string{"bot@example.org", "mallory@example.org"}
			if got := e.suspended(); !slices.Equal(got, want) || !slices.Equal(e.accountMap(), want) {
				t.Fatalf("list --accounts %v, map %v, want %v", got, e.accountMap(), want)
			}
			var list struct{ Suspensions []suspJSON }
			e.mustJSON(&list, "list", "--accounts", "--jail", "manual")
			if b := list.Suspensions[0]; !b.Permanent || b.Until != nil || !b.Enforced || b.Reason != "spam run" || b.Sources == nil {
				t.Errorf("list --accounts: %+v", b)
			}
			var show struct {
				Account   string
				Suspended bool
				Active    []suspJSON
				History   []suspJSON
				Strikes   []any
				Sources   []any
				FirstSeen *string `json:"first_seen"`
				Allowed   bool
				Release   string
			}
			e.mustJSON(&show, "show", "eve@example.org")
			if show.Suspended || len(show.Active) != 0 || len(show.History) != 1 || show.History[0].LiftedBy != "cli" || show.Release != "" || show.Strikes == nil || show.Sources == nil {
				t.Errorf("show eve: %+v", show)
			}
			e.mustJSON(&show, "show", "mallory@example.org")
			if !show.Suspended || len(show.Active) != 1 || show.Release != "mailjail release mallory@example.org" || show.Allowed {
				t.Errorf("show mallory: %+v", show)
			}
			// The map changes before the command returns.
			var rel struct {
				OK          bool
				Suspensions []suspJSON
			}
			e.mustJSON(&rel, "release", "mallory@example.org")
			if !rel.OK || len(rel.Suspensions) != 1 || rel.Suspensions[0].Lifted == nil || !slices.Equal(e.accountMap(), []string{"bot@example.org"}) {
				t.Fatalf("release: %+v, map %v", rel, e.accountMap())
			}
			var st struct {
				AccountMapFile    string `json:"account_map_file"`
				AccountMapEntries int    `json:"account_map_entries"`
				Jails             []struct {
					Name              string
					Key               string
					ActiveSuspensions int `json:"active_suspensions"`
				}
			}
			e.mustJSON(&st, "status")
			if st.AccountMapFile != e.acctMap || st.AccountMapEntries != 1 || len(st.Jails) != 2 || st.Jails[0].Key != "address" ||
				st.Jails[1].Name != "manual" || st.Jails[1].ActiveSuspensions != 1 {
				t.Errorf("status = %+v", st)
			}
			if _, errs, code := e.mj("release", "bot@example.org"); code != 0 || len(e.accountMap()) != 0 || len(e.suspended()) != 0 {
				t.Fatalf("release the last: exit %d %s, map %v", code, errs, e.accountMap())
			}
		})
	}
}

type allowJSON struct {
	Entry  string
	Origin string
	Added  *string
	Reason string
}

// allow add, del and list round trip with and without a daemon; entries
// of allow_senders are listed as the configuration's and cannot be
// deleted by the CLI.
func TestAllowAddDelList(t *testing.T) {
	t.Parallel()
	for _, withDaemon := range []bool{false, true} {
		t.Run(fmt.Sprintf("daemon=%v", withDaemon), func(t *testing.T) {
			e := newEnv(t, func(e *env, c *testutil.Config) {
				c.Global += "\nallow_senders = [\"newsletter@example.org\", \"@partner.example\"]"
			})
			if withDaemon {
				e.startDaemon()
			}
			tests := []struct {
				args     []string
				code     int
				contains string
			}{
				{[]string{"allow", "add", "ceo@example.org", "@Example.NET", "--reason", "vip"}, 0, "allowed ceo@example.org\nallowed example.net\n"},
				{[]string{"allow", "add", "ceo@example.org"}, 1, "already on the allow list: [ceo@example.org]"},
				{[]string{"allow", "add", "ok.example", "bad_domain"}, 2, `"bad_domain"`},
				{[]string{"allow", "add"}, 2, "at least one"},
				{[]string{"allow", "del", "nobody.example"}, 1, "not on the database's allow list: [nobody.example]"},
				{[]string{"allow", "del", "partner.example"}, 1, "allow_senders"},
				{[]string{"allow", "del"}, 2, "at least one"},
				{[]string{"allow", "frob"}, 2, `allow takes add, del or list, not "frob"`},
				{[]string{"allow"}, 2, "allow needs add, del or list"},
				{[]string{"allow", "list", "x"}, 2, "list takes no arguments"},
			}
			for _, tt := range tests {
				out, errs, code := e.mj(tt.args...)
				if code != tt.code || !strings.Contains(out+errs, tt.contains) {
					t.Errorf("%v: exit %d, want %d; output %q %q, want %q", tt.args, code, tt.code, out, errs, tt.contains)
				}
			}
			var list struct{ Allow []allowJSON }
			e.mustJSON(&list, "allow", "list")
			var got []string
			for _, a := range list.Allow {
				got = append(got, a.Entry+" "+a.Origin)
				if (a.Origin == "database") != (a.Added != nil) || a.Origin == "database" && a.Reason != "vip" {
					t.Errorf("entry %+v", a)
				}
			}
			want := []string{"ceo@example.org database", "example.net database", "newsletter@example.org config", "partner.example config"}
			if !slices.Equal(got, want) {
				t.Fatalf("allow list = %v, want %v", got, want)
			}
			var show struct{ Allowed bool }
			e.mustJSON(&show, "show", "anyone@example.net")
			if !show.Allowed {
				t.Error("show of an account of an allowed domain: not allowed")
			}
			if _, _, code := e.mj("show", "anyone@example.net"); code != 0 {
				t.Errorf("show of an allowed account: exit %d, want 0 (something is known)", code)
			}
			var del struct {
				OK    bool
				Allow []allowJSON
			}
			e.mustJSON(&del, "allow", "del", "example.net", "ceo@example.org")
			if !del.OK || len(del.Allow) != 2 || del.Allow[0].Entry != "example.net" {
				t.Fatalf("allow del: %+v", del)
			}
			out, _, code := e.mj("allow", "list")
			if code != 0 || strings.Contains(out, "database") || !strings.Contains(out, "partner.example") {
				t.Errorf("allow list after del: exit %d\n%s", code, out)
			}
		})
	}
}
