package enforce

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailjail/mailjail/actions"
	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/core"
	"github.com/mailjail/mailjail/internal/outbox"
	"github.com/mailjail/mailjail/rules"
)

// hooksConfig is a jail whose filter matches lines with shell
// metacharacters after the address, with exec actions and two webhooks
// (one for every event, one for bans only), and an account jail with the
// same webhooks. OUT is where the ban action writes its arguments.
const hooksConfig = `[global]
timezone = "UTC"
[filter.web]
failregex = ['login failed from <HOST>']
datepattern = '^\[%d/%b/%Y %H:%M:%S\]'
[jail.web]
filter = "web"
logpath = ["/var/log/web.log"]
maxretry = 1
action_timeout = "5s"
ban_action = ["/bin/sh", "-c", "printf '%s\\0' \"$#\" \"$@\" >> \"$0\"", "OUT", "<ip>"]
unban_action = ["/bin/true", "<ip>"]
webhooks = ["all", "bans"]
[jail.u]
filter = "rspamd-ratelimit"
key = "account"
logpath = ["/var/log/rspamd/rspamd.log"]
webhooks = ["all", "bans"]
[webhook.all]
url = "https://soc.example.org/hook"
timeout = "3s"
[webhook.bans]
url = "http://127.0.0.1:9/"
events = ["ban"]
`

// planned is one outbox item, decoded.
type planned struct {
	kind   string
	action outbox.Action
	hook   outbox.Webhook
}

func (p planned) String() string {
	if p.kind == outbox.KindAction {
		return fmt.Sprintf("action %s %s", p.action.Event, p.action.Addr)
	}
	return fmt.Sprintf("webhook %s %s %s%s", p.hook.Hook, p.hook.Event, p.hook.Addr, p.hook.Account)
}

// Lines whose captured text holds shell metacharacters plan commands
// whose <ip> is only the address mailjail parsed, as one argv element;
// bans, unbans, suspensions and releases plan the webhooks of their jail
// that want the event, with the webhook's timeout, and the commands carry
// the jail's action_timeout.
func TestHostileLinesPlanOneArgvElementAndWebhooks(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "args")
	o, st, _ := newOps(t, strings.Replace(hooksConfig, `"OUT"`, fmt.Sprintf("%q", out), 1))
	ctx := context.Background()
	now := o.Clock.Now()
	stamp := now.Format("[02/Jan/2006 15:04:05] ")
	pwned := filepath.Join(dir, "PWNED")
	var lines []core.Line
	for _, tail := range []string{
		"192.0.2.7; touch " + pwned,
		"2001:db8::1|sh -c 'touch " + pwned + "'",
		"$(touch " + pwned + ")",
		"`touch " + pwned + "`",
		"192.0.2.8$(touch " + pwned + ")",
	} {
		lines = append(lines, core.Line{Path: "/var/log/web.log", Read: now, Text: []byte(stamp + "login failed from " + tail)})
	}
	o.Eng.Stage(lines, now)
	ch, err := o.Eng.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ch.Bans) != 3 {
		t.Fatalf("bans %v: want 192.0.2.7, 2001:db8::1 and 192.0.2.8 (the lines without an address ban nobody)", ch.Bans)
	}
	if _, err := o.Eng.Unban(ctx, netip.MustParsePrefix("192.0.2.7/32"), "web", now, "cli"); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Eng.Suspend(ctx, "user@example.org", "u", config.Permanent, "by hand", now); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Eng.Release(ctx, "user@example.org", "u", now, "cli"); err != nil {
		t.Fatal(err)
	}

	items, err := st.PendingOutbox(100)
	if err != nil {
		t.Fatal(err)
	}
	var got []planned
	for _, it := range items {
		p := planned{kind: it.Kind}
		switch it.Kind {
		case outbox.KindAction:
			err = json.Unmarshal(it.Payload, &p.action)
		case outbox.KindWebhook:
			err = json.Unmarshal(it.Payload, &p.hook)
		default:
			t.Fatalf("unexpected %s item", it.Kind)
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p)
	}
	var names []string
	for _, p := range got {
		names = append(names, p.String())
	}
	want := []string{
		"action ban 192.0.2.7", "webhook all ban 192.0.2.7", "webhook bans ban 192.0.2.7",
		"action ban 2001:db8::1", "webhook all ban 2001:db8::1", "webhook bans ban 2001:db8::1",
		"action ban 192.0.2.8", "webhook all ban 192.0.2.8", "webhook bans ban 192.0.2.8",
		"action unban 192.0.2.7", "webhook all unban 192.0.2.7",
		"webhook all suspend user@example.org",
		"webhook all release user@example.org",
	}
	if strings.Join(names, "\n") != strings.Join(want, "\n") {
		t.Fatalf("planned:\n%s\nwant:\n%s", strings.Join(names, "\n"), strings.Join(want, "\n"))
	}
	for _, p := range got {
		switch {
		case p.kind == outbox.KindAction:
			if p.action.TimeoutSec != 5 {
				t.Errorf("%s: timeout %gs, want the jail's 5s", p, p.action.TimeoutSec)
			}
			if p.action.Event == "ban" {
				if len(p.action.Argv) != 5 || p.action.Argv[4] != p.action.Addr {
					t.Errorf("%s: argv %q", p, p.action.Argv)
				}
				if _, err := actions.Run(ctx, actions.Command{Argv: p.action.Argv}, nil); err != nil {
					t.Fatal(err)
				}
			}
		case p.hook.Hook == "all" && p.hook.TimeoutSec != 3, p.hook.Hook == "bans" && p.hook.TimeoutSec != 10:
			t.Errorf("%s: timeout %gs", p, p.hook.TimeoutSec)
		}
	}
	args, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if want := "1\x00192.0.2.7\x001\x002001:db8::1\x001\x00192.0.2.8\x00"; string(args) != want {
		t.Errorf("the commands got %q, want %q", args, want)
	}
	if _, err := os.Stat(pwned); err == nil {
		t.Error("a line's text was run")
	}
	ban, unban, susp := got[1].hook, got[10].hook, got[11].hook
	if ban.Reason != "1 strike in 10m" || !ban.Until.Equal(now.Add(time.Hour)) || !ban.Since.Equal(now) {
		t.Errorf("ban webhook %+v", ban)
	}
	if unban.Reason != "lifted: cli" {
		t.Errorf("unban reason %q", unban.Reason)
	}
	if !susp.Until.IsZero() || susp.Addr != "" || susp.Jail != "u" || got[12].hook.Reason != "lifted: cli" {
		t.Errorf("suspension webhook %+v, release %+v", susp, got[12].hook)
	}
}

// Whatever follows "from " in a line, the address a filter yields, as
// <ip> formats it (alone or as its /64), holds nothing but hex digits,
// '.', ':' and '/': no shell or argv metacharacter can reach a command.
func FuzzParsedAddressHasNoMetacharacters(f *testing.F) {
	for _, s := range []string{"192.0.2.7; touch x", "2001:db8::1|sh", "$(id)", "::ffff:192.0.2.1`id`", "fe80::1%eth0", "1.2.3.4\n5.6.7.8", "::"} {
		f.Add(s)
	}
	flt, err := rules.CompileFilter("web", rules.FilterSpec{FailRegex: []string{"login failed from <HOST>"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, ok := flt.Match([]byte("login failed from " + s))
		if !ok {
			return
		}
		for _, bits := range []int{m.Addr.BitLen(), min(64, m.Addr.BitLen())} {
			p, err := m.Addr.Prefix(bits)
			if err != nil {
				t.Fatal(err)
			}
			if v := rules.FormatPrefix(p); strings.Trim(v, "0123456789abcdef.:/") != "" {
				t.Fatalf("%q gave <ip> %q", s, v)
			}
		}
	})
}
