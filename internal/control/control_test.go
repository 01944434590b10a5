package control

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/core"
	"github.com/mailjail/mailjail/internal/enforce"
	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/internal/testutil"
	"github.com/mailjail/mailjail/rules"
)

// fakeHandler is a Handler as a struct of funcs.
type fakeHandler struct {
	ban      func(context.Context, enforce.BanRequest) ([]store.Ban, error)
	unban    func(context.Context, enforce.UnbanRequest) ([]store.Ban, error)
	suspend  func(context.Context, enforce.SuspendRequest) ([]store.Suspension, error)
	release  func(context.Context, []string) ([]store.Suspension, error)
	allowAdd func(context.Context, AllowRequest) ([]store.Allowed, error)
	allowDel func(context.Context, AllowRequest) ([]store.Allowed, error)
	status   func(context.Context) (*Status, error)
	resume   func(context.Context, string) ([]store.Ban, error)
	outbox   Outbox
}

func (f fakeHandler) Ban(ctx context.Context, r enforce.BanRequest) ([]store.Ban, error) {
	return f.ban(ctx, r)
}
func (f fakeHandler) Unban(ctx context.Context, r enforce.UnbanRequest) ([]store.Ban, error) {
	return f.unban(ctx, r)
}
func (f fakeHandler) Suspend(ctx context.Context, r enforce.SuspendRequest) ([]store.Suspension, error) {
	return f.suspend(ctx, r)
}
func (f fakeHandler) Release(ctx context.Context, accounts []string) ([]store.Suspension, error) {
	return f.release(ctx, accounts)
}
func (f fakeHandler) AllowAdd(ctx context.Context, r AllowRequest) ([]store.Allowed, error) {
	return f.allowAdd(ctx, r)
}
func (f fakeHandler) AllowDel(ctx context.Context, r AllowRequest) ([]store.Allowed, error) {
	return f.allowDel(ctx, r)
}
func (f fakeHandler) Resume(ctx context.Context, by string) ([]store.Ban, error) {
	return f.resume(ctx, by)
}
func (f fakeHandler) Status(ctx context.Context) (*Status, error) { return f.status(ctx) }
func (f fakeHandler) Outbox() Outbox                              { return f.outbox }

func socketPath(t *testing.T) string {
	// Short: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "mjc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "s.sock")
}

func serve(t *testing.T, socket string, h Handler) {
	t.Helper()
	ln, err := Listen(socket, "")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(ln, h)
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	t.Cleanup(func() {
		srv.Shutdown(context.Background())
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
}

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// The daemon answers in domain values; the wire carries the CLI's view,
// and the exit code comes from the kind of error.
func TestCallCarriesDomainAnswersAndExitCodes(t *testing.T) {
	socket := socketPath(t)
	serve(t, socket, fakeHandler{
		ban: func(_ context.Context, r enforce.BanRequest) ([]store.Ban, error) {
			if r.For != 2*time.Hour || len(r.Prefixes) != 1 || r.Prefixes[0] != netip.MustParsePrefix("2001:db8::/64") {
				return nil, fmt.Errorf("request = %+v: %w", r, core.ErrInvalid)
			}
			return []store.Ban{{Jail: "manual", Prefix: r.Prefixes[0], Since: t0, Until: t0.Add(r.For)}}, nil
		},
		unban: func(context.Context, enforce.UnbanRequest) ([]store.Ban, error) {
			return nil, fmt.Errorf("not banned: [192.0.2.1]: %w", core.ErrNotFound)
		},
		status: func(context.Context) (*Status, error) { return &Status{Running: true, Version: "v"}, nil },
	})
	ctx := context.Background()
	resp, err := Call(ctx, socket, OpBan, Request{Addrs: []string{"2001:db8::/64"}, For: "2h"})
	if err != nil || !resp.OK || len(resp.Bans) != 1 || resp.Bans[0].Addr != "2001:db8::/64" || !resp.Bans[0].Until.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("ban: %+v, %v", resp, err)
	}
	resp, err = Call(ctx, socket, OpUnban, Request{Addrs: []string{"192.0.2.1"}})
	if err != nil || resp.OK || resp.Code != ExitNotFound {
		t.Fatalf("unban: %+v, %v", resp, err)
	}
	resp, err = Call(ctx, socket, OpBan, Request{Addrs: []string{"300.1.2.3"}})
	if err != nil || resp.OK || resp.Code != ExitUsage {
		t.Fatalf("bad address: %+v, %v", resp, err)
	}
	resp, err = Call(ctx, socket, OpStatus, Request{})
	if err != nil || !resp.OK || resp.Status == nil || resp.Status.Version != "v" {
		t.Fatalf("status: %+v, %v", resp, err)
	}
}

// A huge request is refused with a clear error before it is read whole;
// so is one with more addresses than MaxAddrs.
func TestControlRequestsAreBounded(t *testing.T) {
	socket := socketPath(t)
	called := false
	serve(t, socket, fakeHandler{ban: func(context.Context, enforce.BanRequest) ([]store.Ban, error) {
		called = true
		return nil, nil
	}})
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}}
	body := `{"addrs":["` + strings.Repeat("1", 3<<20) + `"]}`
	res, err := client.Post("http://mailjail/v1/ban", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	buf.ReadFrom(res.Body)
	res.Body.Close()
	if !strings.Contains(buf.String(), "larger than") || !strings.Contains(buf.String(), `"code":2`) {
		t.Fatalf("answer to 3 MB: %s", buf.String())
	}
	addrs := make([]string, MaxAddrs+1)
	for i := range addrs {
		addrs[i] = fmt.Sprintf("10.%d.%d.1", i/256, i%256)
	}
	resp, err := Call(context.Background(), socket, OpBan, Request{Addrs: addrs})
	if err != nil || resp.Code != ExitUsage || !strings.Contains(resp.Error, "at most") {
		t.Fatalf("answer to %d addresses: %+v, %v", len(addrs), resp, err)
	}
	if called {
		t.Fatal("an oversized request reached the daemon")
	}
}

// A second daemon must not take over the socket a live one answers on,
// nor remove a file that is not a socket; a dead daemon's socket is
// replaced.
func TestListenRefusesALiveDaemonsSocketAndReplacesAStaleOne(t *testing.T) {
	socket := socketPath(t)
	serve(t, socket, fakeHandler{})
	if _, err := Listen(socket, ""); err == nil || !strings.Contains(err.Error(), "another mailjail daemon") {
		t.Fatalf("second listen: %v", err)
	}

	stale := socketPath(t)
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close() // leaves the socket file, as a killed daemon does
	ln2, err := Listen(stale, "")
	if err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	ln2.Close()

	plain := socketPath(t)
	if err := os.WriteFile(plain, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(plain, ""); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("plain file: %v", err)
	}
	if _, err := os.Stat(plain); err != nil {
		t.Fatal("a plain file was removed")
	}
}

func TestCallWithoutDaemonIsErrNoDaemon(t *testing.T) {
	_, err := Call(context.Background(), socketPath(t), OpStatus, Request{})
	if !errors.Is(err, ErrNoDaemon) {
		t.Fatalf("err = %v", err)
	}
}

// A user who may not open the socket is told so, with the group that
// may, not that no daemon runs.
func TestCallAsAnotherUserSaysPermissionDenied(t *testing.T) {
	if socket := os.Getenv(testutil.AsNobodyEnv); socket != "" {
		_, err := Call(context.Background(), socket, OpStatus, Request{})
		if !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), "group root") {
			t.Fatalf("as nobody: %v", err)
		}
		return
	}
	socket := socketPath(t)
	if err := os.Chmod(filepath.Dir(socket), 0o755); err != nil {
		t.Fatal(err)
	}
	serve(t, socket, fakeHandler{status: func(context.Context) (*Status, error) { return &Status{}, nil }})
	testutil.RerunAsNobody(t, "TestCallAsAnotherUserSaysPermissionDenied", socket)
}

// Suspensions, releases and allow-list changes travel like bans: the
// request parsed on the daemon's side, the answer in wire types, partial
// results with the error that stopped or followed them.
func TestCallCarriesSuspensionsAndAllowChanges(t *testing.T) {
	socket := socketPath(t)
	src := netip.MustParseAddr("198.51.100.7")
	serve(t, socket, fakeHandler{
		suspend: func(_ context.Context, r enforce.SuspendRequest) ([]store.Suspension, error) {
			if !r.Permanent || r.Reason != "phished" || len(r.Accounts) != 1 {
				return nil, fmt.Errorf("request = %+v: %w", r, core.ErrInvalid)
			}
			return []store.Suspension{{Jail: "manual", Account: r.Accounts[0], Since: t0, Enforced: true, Reason: r.Reason, Sources: []store.Source{{Addr: src, Count: 3}}}}, nil
		},
		release: func(_ context.Context, accounts []string) ([]store.Suspension, error) {
			return []store.Suspension{{Jail: "manual", Account: accounts[0], Since: t0, Until: t0.Add(time.Hour), Lifted: t0.Add(time.Minute), LiftedBy: "cli"}},
				fmt.Errorf("not suspended: %v: %w", accounts[1:], core.ErrNotFound)
		},
		allowAdd: func(_ context.Context, r AllowRequest) ([]store.Allowed, error) {
			return []store.Allowed{{Entry: r.Entries[0], Added: t0, Reason: r.Reason}}, nil
		},
	})
	ctx := context.Background()
	resp, err := Call(ctx, socket, OpSuspend, Request{Accounts: []string{"alice@example.org"}, Permanent: true, Reason: "phished"})
	if err != nil || !resp.OK || len(resp.Suspensions) != 1 {
		t.Fatalf("suspend: %+v, %v", resp, err)
	}
	if s := resp.Suspensions[0]; s.Account != "alice@example.org" || s.Until != nil || !s.Permanent || !s.Enforced || len(s.Sources) != 1 || s.Sources[0] != (Source{Addr: "198.51.100.7", Count: 3}) {
		t.Errorf("suspension = %+v", s)
	}
	resp, err = Call(ctx, socket, OpRelease, Request{Accounts: []string{"alice@example.org", "bob@example.org"}})
	if err != nil || resp.OK || resp.Code != ExitNotFound || len(resp.Suspensions) != 1 || resp.Suspensions[0].LiftedBy != "cli" || !strings.Contains(resp.Error, "bob@example.org") {
		t.Fatalf("release: %+v, %v", resp, err)
	}
	resp, err = Call(ctx, socket, OpAllowAdd, Request{Entries: []string{"@Example.NET"}, Reason: "partner"})
	if err != nil || !resp.OK || len(resp.Allow) != 1 || resp.Allow[0].Entry != "example.net" || resp.Allow[0].Origin != OriginDatabase || !resp.Allow[0].Added.Equal(t0) {
		t.Fatalf("allow add: %+v, %v", resp, err)
	}
	resp, err = Call(ctx, socket, OpAllowDel, Request{Entries: []string{"not a domain"}})
	if err != nil || resp.Code != ExitUsage || !strings.Contains(resp.Error, `"not a domain"`) {
		t.Fatalf("allow del of an invalid entry: %+v, %v", resp, err)
	}
}

func TestParseSuspendReleaseAllow(t *testing.T) {
	many := make([]string, MaxAddrs+1)
	for i := range many {
		many[i] = fmt.Sprintf("u%d@example.org", i)
	}
	tests := []struct {
		name string
		op   string
		req  Request
		want any    // the parsed request, when valid
		err  string // else part of the error
	}{
		{"suspend", OpSuspend, Request{Accounts: []string{"alice@example.org"}},
			enforce.SuspendRequest{Accounts: []string{"alice@example.org"}}, ""},
		{"suspend for", OpSuspend, Request{Accounts: []string{"a@b.org", "c@d.org"}, For: "2d", Reason: "r"},
			enforce.SuspendRequest{Accounts: []string{"a@b.org", "c@d.org"}, For: 48 * time.Hour, Reason: "r"}, ""},
		{"suspend permanent", OpSuspend, Request{Accounts: []string{"a@b.org"}, Permanent: true},
			enforce.SuspendRequest{Accounts: []string{"a@b.org"}, Permanent: true}, ""},
		{"for and permanent", OpSuspend, Request{Accounts: []string{"a@b.org"}, For: "1h", Permanent: true}, nil, "exclude each other"},
		{"bad for", OpSuspend, Request{Accounts: []string{"a@b.org"}, For: "1x"}, nil, "--for"},
		{"zero for", OpSuspend, Request{Accounts: []string{"a@b.org"}, For: "0s"}, nil, "must be positive"},
		{"too many", OpSuspend, Request{Accounts: many}, nil, "at most 1000"},
		{"release", OpRelease, Request{Accounts: []string{"a@b.org"}}, []string{"a@b.org"}, ""},
		{"allow", OpAllowAdd, Request{Entries: []string{"Boss@Example.org", "@Example.NET", "example.com"}, Reason: "r"},
			AllowRequest{Entries: []string{"boss@example.org", "example.net", "example.com"}, Reason: "r"}, ""},
		{"allow bad domain", OpAllowAdd, Request{Entries: []string{"ok.org", "bad_domain"}}, nil, `allow list entry "bad_domain"`},
		{"allow empty", OpAllowDel, Request{Entries: []string{"@"}}, nil, `allow list entry "@"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got any
			var err error
			switch tt.op {
			case OpSuspend:
				got, err = ParseSuspend(tt.req)
			case OpRelease:
				got, err = ParseRelease(tt.req)
			default:
				got, err = ParseAllow(tt.req)
			}
			if tt.err != "" {
				if err == nil || !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), tt.err) || CodeOf(err) != ExitUsage {
					t.Fatalf("err = %v, want %q (invalid)", err, tt.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// An account rules.NormalizeAccount refuses fails the whole request,
// named, as invalid (exit 2); one it accepts is carried in its normal
// form. The test follows the rules package's verdict, which is the
// contract: normalisation is decided there, once.
func TestParseAccountsFollowsNormalizeAccount(t *testing.T) {
	for _, in := range []string{"<Alice@Example.ORG>", "a b@example.org", "", "x\x1b[2J@example.org", strings.Repeat("a", 300) + "@example.org", `a"b@example.org`} {
		want, werr := rules.NormalizeAccount(in)
		for _, parse := range []func([]string) ([]string, error){
			func(a []string) ([]string, error) {
				r, err := ParseSuspend(Request{Accounts: a})
				return r.Accounts, err
			},
			func(a []string) ([]string, error) { return ParseRelease(Request{Accounts: a}) },
		} {
			got, err := parse([]string{"ok@example.org", in})
			switch {
			case werr == nil && (err != nil || !slices.Equal(got, []string{"ok@example.org", want})):
				t.Errorf("%q: %v, %v; want %q", in, got, err, want)
			case werr != nil && (CodeOf(err) != ExitUsage || !strings.Contains(err.Error(), strconv.Quote(in)) || !strings.Contains(err.Error(), werr.Error())):
				t.Errorf("%q: err = %v, want exit 2 naming it and why (%v)", in, err, werr)
			}
		}
	}
}

// resume carries who asks and answers with the bans released (log_only
// in each ban's view); a breaker that is not tripped is exit 1; a "by"
// that is not one printable line is refused.
func TestCallResume(t *testing.T) {
	socket := socketPath(t)
	tripped := true
	serve(t, socket, fakeHandler{
		resume: func(_ context.Context, by string) ([]store.Ban, error) {
			if !tripped {
				return nil, fmt.Errorf("not tripped: %w", core.ErrNotFound)
			}
			tripped = false
			return []store.Ban{{Jail: "rl", Prefix: netip.MustParsePrefix("192.0.2.7/32"), Since: t0, Reason: by}}, nil
		},
	})
	ctx := context.Background()
	resp, err := Call(ctx, socket, OpResume, Request{By: "root (uid 0)"})
	if err != nil || !resp.OK || len(resp.Bans) != 1 || resp.Bans[0].Reason != "root (uid 0)" || resp.Bans[0].LogOnly {
		t.Fatalf("resume: %+v, %v", resp, err)
	}
	if resp, err = Call(ctx, socket, OpResume, Request{}); err != nil || resp.OK || resp.Code != ExitNotFound {
		t.Fatalf("resume when not tripped: %+v, %v", resp, err)
	}
	if resp, err = Call(ctx, socket, OpResume, Request{By: "evil\nline"}); err != nil || resp.OK || resp.Code != ExitUsage {
		t.Fatalf("resume by a control character: %+v, %v", resp, err)
	}
}
