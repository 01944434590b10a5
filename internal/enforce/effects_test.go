package enforce

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailjail/mailjail/internal/outbox"
	"github.com/mailjail/mailjail/internal/store"
)

// alertsQueued are the queued alerts as "event jail addr", and the
// unban alerts' reasons.
func alertsQueued(t *testing.T, st *store.Store) (got []string, reasons []string) {
	t.Helper()
	items, err := st.PendingOutbox(100)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if it.Kind != outbox.KindAlert {
			continue
		}
		var a outbox.Alert
		if err := json.Unmarshal(it.Payload, &a); err != nil {
			t.Fatal(err)
		}
		if it.Urgent != a.Urgent() {
			t.Errorf("%s %s: queued urgent = %v", a.Event, a.Addr, it.Urgent)
		}
		got = append(got, a.Event+" "+a.Jail+" "+a.Addr)
		if a.Event == "unban" {
			reasons = append(reasons, a.Reason)
		}
	}
	return got, reasons
}

// Manual bans and suspensions are alerted unless alert.report_manual is
// false; unbans only with alert.report_unbans, saying who lifted them
// (of manual bans, only when manual bans are reported too).
func TestEffectsReportManualAndUnbansPerConfig(t *testing.T) {
	for _, tt := range []struct {
		name  string
		alert string
		want  []string
	}{
		{"defaults", "", []string{"ban manual 198.51.100.1", "ban rl 198.51.100.2", "suspend manual a@example.org"}},
		{"report_manual = false", "report_manual = false\n", []string{"ban rl 198.51.100.2"}},
		{"report_unbans = true", "report_unbans = true\n", []string{"ban manual 198.51.100.1", "ban rl 198.51.100.2",
			"suspend manual a@example.org", "unban manual 198.51.100.1", "unban rl 198.51.100.2"}},
		{"unbans but not manual", "report_unbans = true\nreport_manual = false\n", []string{"ban rl 198.51.100.2", "unban rl 198.51.100.2"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := strings.Replace(opsConfig, "[alert]\n", "[alert]\n"+tt.alert, 1)
			o, st, _ := newOps(t, cfg)
			ctx := context.Background()
			if _, err := o.Ban(ctx, BanRequest{Prefixes: prefixes("198.51.100.1/32")}); err != nil {
				t.Fatal(err)
			}
			if _, err := o.Ban(ctx, BanRequest{Prefixes: prefixes("198.51.100.2/32"), Jail: "rl", For: time.Hour}); err != nil {
				t.Fatal(err)
			}
			if _, err := o.Suspend(ctx, SuspendRequest{Accounts: []string{"a@example.org"}}); err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{"198.51.100.1/32", "198.51.100.2/32"} {
				if _, err := o.Unban(ctx, UnbanRequest{Prefixes: prefixes(p)}); err != nil {
					t.Fatal(err)
				}
			}
			got, reasons := alertsQueued(t, st)
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("alerts %q, want %q", got, tt.want)
			}
			for _, r := range reasons {
				if !strings.HasSuffix(r, "lifted by cli") {
					t.Errorf("unban reason %q does not say who lifted it", r)
				}
			}
		})
	}
}

// A ban that ends is an unban lifted by "expired", reported with
// report_unbans.
func TestEffectsReportExpiredBans(t *testing.T) {
	o, st, _ := newOps(t, strings.Replace(opsConfig, "[alert]\n", "[alert]\nreport_unbans = true\n", 1))
	ctx := context.Background()
	if _, err := o.Ban(ctx, BanRequest{Prefixes: prefixes("198.51.100.3/32"), Jail: "rl", For: time.Minute}); err != nil {
		t.Fatal(err)
	}
	ch, err := o.Eng.ExpireDue(ctx, o.Clock.Now().Add(time.Hour))
	if err != nil || len(ch.Lifted) != 1 {
		t.Fatalf("expire: %+v, %v", ch, err)
	}
	got, reasons := alertsQueued(t, st)
	if !slices.Equal(got, []string{"ban rl 198.51.100.3", "unban rl 198.51.100.3"}) || len(reasons) != 1 || !strings.HasSuffix(reasons[0], "lifted by expired") {
		t.Fatalf("alerts %q, reasons %q", got, reasons)
	}
}

// A repeat offender's alert lists its earlier bans, newest first, with
// who lifted them; the ban it is about is not among them.
func TestBanAlertListsEarlierBans(t *testing.T) {
	o, st, _ := newOps(t, opsConfig)
	ctx := context.Background()
	for range 2 {
		if _, err := o.Ban(ctx, BanRequest{Prefixes: prefixes("198.51.100.9/32"), Jail: "rl", For: time.Hour}); err != nil {
			t.Fatal(err)
		}
		if _, err := o.Unban(ctx, UnbanRequest{Prefixes: prefixes("198.51.100.9/32")}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := o.Ban(ctx, BanRequest{Prefixes: prefixes("198.51.100.9/32"), Jail: "rl", For: time.Hour}); err != nil {
		t.Fatal(err)
	}
	items, err := st.PendingOutbox(100)
	if err != nil {
		t.Fatal(err)
	}
	var last outbox.Alert
	for _, it := range items {
		if it.Kind == outbox.KindAlert {
			if err := json.Unmarshal(it.Payload, &last); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(last.History) != 2 {
		t.Fatalf("third ban's history %q, want the two earlier bans", last.History)
	}
	for _, h := range last.History {
		if !strings.Contains(h, " rl 1h (lifted ") || !strings.HasSuffix(h, " by cli)") {
			t.Errorf("history line %q", h)
		}
	}
}
