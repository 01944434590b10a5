package enforce

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/core"
	"github.com/mailjail/mailjail/internal/engine"
	"github.com/mailjail/mailjail/internal/outbox"
	"github.com/mailjail/mailjail/internal/store"
	"github.com/mailjail/mailjail/internal/testutil"
)

const opsConfig = `[global]
ignoreip = ["192.0.2.53"]
[alert]
smtp = "127.0.0.1:25"
to = ["postmaster@example.org"]
[jail.rl]
filter = "rspamd-ratelimit"
logpath = ["/var/log/rspamd/rspamd.log"]
maxretry = 1
ban_action = ["/usr/bin/true", "<ip>"]
`

func newOps(t *testing.T, toml string) (*Ops, *store.Store, *fakeTarget) {
	t.Helper()
	cfg, err := config.Parse(strings.NewReader(toml), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(t.TempDir(), "m.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	eng, err := engine.New(cfg, st, quiet)
	if err != nil {
		t.Fatal(err)
	}
	eng.SetEffects(Effects(cfg))
	f := newFakeTarget()
	clk := testutil.NewFakeClock(time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC))
	enf := New([]Target{f}, eng, nil, Options{Clock: clk, Log: quiet})
	return &Ops{Eng: eng, Cfg: cfg, Enf: enf, Clock: clk}, st, f
}

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// Bans the operator must not make by accident are refused with a usage
// error, and nothing is banned.
func TestBanRefusesWideRangesAndRangesHoldingIgnoredAddresses(t *testing.T) {
	for _, tt := range []struct {
		name  string
		req   BanRequest
		wants string // "" = accepted
	}{
		{"v4 wider than /16", BanRequest{Prefixes: prefixes("128.0.0.0/1")}, "wider than /16 (min_prefix_v4)"},
		{"everything", BanRequest{Prefixes: prefixes("0.0.0.0/0")}, "wider than /16"},
		{"v6 wider than /32", BanRequest{Prefixes: prefixes("::/0")}, "wider than /32 (min_prefix_v6)"},
		{"v4 /16 is allowed", BanRequest{Prefixes: prefixes("198.18.0.0/16")}, ""},
		{"forced", BanRequest{Prefixes: prefixes("64.0.0.0/2"), Force: true}, ""},
		{"range holding an ignored address", BanRequest{Prefixes: prefixes("192.0.2.0/24")}, "ignoreip"},
		{"forced still keeps ignoreip", BanRequest{Prefixes: prefixes("192.0.0.0/8"), Force: true}, "ignoreip"},
		{"unknown jail", BanRequest{Prefixes: prefixes("198.51.100.1/32"), Jail: "nosuch"}, "unknown jail"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o, _, f := newOps(t, opsConfig)
			bans, err := o.Ban(context.Background(), tt.req)
			if tt.wants == "" {
				if err != nil || len(bans) != 1 || f.syncs() != 1 {
					t.Fatalf("refused: %v (%d bans, %d syncs)", err, len(bans), f.syncs())
				}
				return
			}
			if !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), tt.wants) {
				t.Fatalf("err = %v, want a usage error with %q", err, tt.wants)
			}
			if len(bans) != 0 || len(o.Eng.ActiveBans()) != 0 {
				t.Fatalf("banned %v", o.Eng.ActiveBans())
			}
		})
	}
}

// unban of an address inside a banned prefix names the prefix, and lifts
// it with Covering.
func TestUnbanOfAnAddressNamesAndLiftsTheCoveringPrefix(t *testing.T) {
	o, _, f := newOps(t, opsConfig)
	ctx := context.Background()
	if _, err := o.Ban(ctx, BanRequest{Prefixes: prefixes("2001:db8:77::/64")}); err != nil {
		t.Fatal(err)
	}
	_, err := o.Unban(ctx, UnbanRequest{Prefixes: prefixes("2001:db8:77::1/128")})
	if !errors.Is(err, core.ErrNotFound) || !strings.Contains(err.Error(), "covered by the ban of 2001:db8:77::/64") {
		t.Fatalf("err = %v", err)
	}
	lifted, err := o.Unban(ctx, UnbanRequest{Prefixes: prefixes("2001:db8:77::1/128"), Covering: true})
	if err != nil || len(lifted) != 1 || lifted[0].Prefix != netip.MustParsePrefix("2001:db8:77::/64") || len(o.Eng.ActiveBans()) != 0 {
		t.Fatalf("lifted %v, %v", lifted, err)
	}
	if f.syncs() < 2 {
		t.Fatal("the unban was not put into force")
	}
}

// unban --all of a jail that does not exist is a usage error (exit 2),
// as ban --jail is; of an existing jail without bans, not found (exit 1).
func TestUnbanAllOfAnUnknownJailIsAUsageError(t *testing.T) {
	o, _, _ := newOps(t, opsConfig)
	if _, err := o.Unban(context.Background(), UnbanRequest{All: true, Jail: "nosuch"}); !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("unknown jail: %v", err)
	}
	if _, err := o.Unban(context.Background(), UnbanRequest{All: true, Jail: "rl"}); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("no bans: %v", err)
	}
}

// A repeat ban's alert says which offense it is; the ban's action is
// queued in the same transaction with the address as one argument.
func TestEffectsQueueTheActionAndAnAlertWithTheOffense(t *testing.T) {
	o, st, _ := newOps(t, opsConfig+"bantime_factor = 2\n")
	ctx := context.Background()
	now := o.Clock.Now()
	line := func() []core.Line {
		return []core.Line{{Path: "/var/log/rspamd/rspamd.log", Read: now, Text: []byte(now.Format("2006-01-02 15:04:05") +
			` #1(rspamd_proxy) <a1>; proxy; rspamd_task_write_log: id: <m>, ip: 198.51.100.9, from: <x@y>, (default: F (soft reject): [0.00/15.00] []), len: 1, forced: soft reject "Ratelimit "ip" exceeded"; score=nan (set by ratelimit)`)}}
	}
	for i := range 2 {
		o.Eng.Stage(line(), now)
		ch, err := o.Eng.Commit(ctx)
		if err != nil || len(ch.Bans) != 1 {
			t.Fatalf("ban %d: %v %v", i+1, ch.Bans, err)
		}
		if _, err := o.Unban(ctx, UnbanRequest{Prefixes: prefixes("198.51.100.9/32")}); err != nil {
			t.Fatal(err)
		}
	}
	items, err := st.PendingOutbox(100)
	if err != nil {
		t.Fatal(err)
	}
	var offenses []int
	var argv [][]string
	for _, it := range items {
		switch it.Kind {
		case outbox.KindAlert:
			var a outbox.Alert
			json.Unmarshal(it.Payload, &a)
			offenses = append(offenses, a.Offense)
			if len(a.Lines) == 0 || !strings.Contains(a.Lines[0], "ip: 198.51.100.9") {
				t.Errorf("alert quotes %q", a.Lines)
			}
		case outbox.KindAction:
			var a outbox.Action
			json.Unmarshal(it.Payload, &a)
			argv = append(argv, a.Argv)
		}
	}
	if len(offenses) != 2 || offenses[0] != 1 || offenses[1] != 2 {
		t.Fatalf("alert offenses = %v, want [1 2]", offenses)
	}
	if len(argv) != 2 || len(argv[0]) != 2 || argv[0][1] != "198.51.100.9" {
		t.Fatalf("actions = %q", argv)
	}
}
