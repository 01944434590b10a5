package config

import (
	"slices"
	"testing"
	"time"
)

const hookJail = "[jail.ok]\nfilter = \"rspamd-ratelimit\"\nlogpath = [\"/l\"]\nban_action = [\"/bin/true\", \"<ip>\"]\n"

// Defaults: action_timeout 30s, a webhook's timeout 10s and every event;
// [defaults] webhooks and action_timeout reach the jails that set none.
func TestActionsDefaults(t *testing.T) {
	c, errs := validate(t, hookJail+"[jail.own]\nfilter = \"rspamd-ratelimit\"\nlogpath = [\"/l\"]\nunban_action = [\"/bin/true\"]\naction_timeout = \"2m\"\nwebhooks = []\n"+
		"[defaults]\nwebhooks = [\"soc\"]\naction_timeout = \"45s\"\n[webhook.soc]\nurl = \"https://soc.example.org/hook\"\n")
	if errs != "" {
		t.Fatal(errs)
	}
	ok, own := c.Jail("ok"), c.Jail("own")
	if ok.ActionTimeout != 45*time.Second || !slices.Equal(ok.Webhooks, []string{"soc"}) {
		t.Errorf("ok: %+v", ok.JailActions)
	}
	if own.ActionTimeout != 2*time.Minute || len(own.Webhooks) != 0 {
		t.Errorf("own: %+v", own.JailActions)
	}
	w := c.Webhook("soc")
	if w == nil || w.Timeout.D != 10*time.Second || !slices.Equal(w.Events, WebhookEvents) || !w.Wants("release") {
		t.Errorf("soc: %+v", w)
	}
	c, errs = validate(t, hookJail)
	if errs != "" || c.Jail("ok").ActionTimeout != DefaultActionTimeout || len(c.Webhooks) != 0 {
		t.Errorf("no hooks: %q %+v", errs, c.Jail("ok").JailActions)
	}
}

func TestWebhookURLs(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want string // "" = accepted
	}{
		{"https://soc.example.org/hook", ""},
		{"http://127.0.0.1:8080/hook", ""},
		{"http://[::1]:8080/hook", ""},
		{"http://localhost/hook", ""},
		{"http://127.9.9.9/", ""},
		{"http://soc.example.org/hook", "http:// is for a loopback host only (soc.example.org is not)"},
		{"http://192.0.2.1/hook", "http:// is for a loopback host only"},
		{"http://localhost.example.org/", "http:// is for a loopback host only"},
		{"http://[::ffff:127.0.0.1]/", ""},
		{"ftp://soc.example.org/", "must be an http:// or https:// URL"},
		{"soc.example.org/hook", "must be an http:// or https:// URL"},
		{"https:///hook", "names no host"},
		{"https://user:pw@soc.example.org/", "has credentials in it"},
		{"https://soc example/", `parse "https://soc example/": invalid character " " in host name`},
	} {
		t.Run(tc.url, func(t *testing.T) {
			_, errs := validate(t, hookJail+"webhooks = [\"h\"]\n[webhook.h]\nurl = \""+tc.url+"\"\n")
			switch {
			case tc.want == "" && errs != "":
				t.Errorf("refused: %s", errs)
			case tc.want != "":
				wantErrors(t, hookJail+"webhooks = [\"h\"]\n[webhook.h]\nurl = \""+tc.url+"\"\n", "t.toml:7: webhook.h.url: "+tc.want)
			}
		})
	}
}

func TestActionsRejected(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  string
		want []string
	}{
		{"unknown webhook in a jail", hookJail + "webhooks = [\"soc\", \"nope\", \"soc\"]\n[webhook.soc]\nurl = \"https://a.example/\"\n",
			[]string{`t.toml:5: jail.ok.webhooks: unknown webhook "nope": no [webhook.nope] section`, `t.toml:5: jail.ok.webhooks: webhook "soc" is listed twice`}},
		{"unknown webhook in defaults", "[defaults]\nwebhooks = [\"nope\"]\n" + hookJail,
			[]string{`t.toml:2: defaults.webhooks: unknown webhook "nope"`}},
		{"both secret kinds", hookJail + "webhooks = [\"soc\"]\n[webhook.soc]\nurl = \"https://a.example/\"\nbearer_token_file = \"/etc/mailjail/token\"\nhmac_secret_file = \"/etc/mailjail/secret\"\n",
			[]string{"t.toml:9: webhook.soc.hmac_secret_file: bearer_token_file and hmac_secret_file are both set: keep one"}},
		{"relative files", hookJail + "webhooks = [\"soc\"]\n[webhook.soc]\nurl = \"https://a.example/\"\nhmac_secret_file = \"secret\"\nca_file = \"ca.pem\"\n",
			[]string{`t.toml:8: webhook.soc.hmac_secret_file: must be an absolute path, got "secret"`, `t.toml:9: webhook.soc.ca_file: must be an absolute path`}},
		{"ca_file with http", hookJail + "webhooks = [\"soc\"]\n[webhook.soc]\nurl = \"http://127.0.0.1/\"\nca_file = \"/ca.pem\"\n",
			[]string{"t.toml:8: webhook.soc.ca_file: applies to an https:// URL only"}},
		{"events unknown, twice, none", hookJail + "webhooks = [\"a\", \"b\"]\n[webhook.a]\nurl = \"https://a.example/\"\nevents = [\"ban\", \"banned\", \"ban\"]\n[webhook.b]\nurl = \"https://b.example/\"\nevents = []\n",
			[]string{`t.toml:8: webhook.a.events: unknown event "banned": must be one of ban, unban, suspend, release`, `t.toml:8: webhook.a.events: event "ban" is listed twice`,
				"t.toml:11: webhook.b.events: names no event"}},
		{"unused webhook", hookJail + "[webhook.soc]\nurl = \"https://a.example/\"\n",
			[]string{"t.toml:5: webhook.soc: no enabled jail lists it in webhooks"}},
		{"no url", hookJail + "webhooks = [\"soc\"]\n[webhook.soc]\ntimeout = \"5s\"\n",
			[]string{"t.toml:6: webhook.soc.url: is required"}},
		{"bad name", hookJail + "[webhook.\"a b\"]\nurl = \"https://a.example/\"\n",
			[]string{"webhook names are letters, digits"}},
		{"timeouts", "[defaults]\naction_timeout = \"soon\"\n" + hookJail + "webhooks = [\"soc\"]\n[jail.off]\nenabled = false\naction_timeout = \"2h\"\n[webhook.soc]\nurl = \"https://a.example/\"\ntimeout = \"permanent\"\n",
			[]string{`t.toml:2: defaults.action_timeout: invalid duration "soon"`, "t.toml:10: jail.off.action_timeout: must be a duration between 1ms and 1h, got 2h",
				"t.toml:13: webhook.soc.timeout: must be a duration between 1ms and 1h, got permanent"}},
		{"action_timeout without actions", "[jail.x]\nfilter = \"rspamd-ratelimit\"\nlogpath = [\"/l\"]\naction_timeout = \"10s\"\n",
			[]string{"t.toml:4: jail.x.action_timeout: the jail has no ban_action or unban_action"}},
		{"unknown key", hookJail + "webhooks = [\"soc\"]\n[webhook.soc]\nurl = \"https://a.example/\"\nsecret = \"x\"\n",
			[]string{"t.toml:8: webhook.soc.secret: unknown field"}},
	} {
		t.Run(tc.name, func(t *testing.T) { wantErrors(t, tc.src, tc.want...) })
	}
}
