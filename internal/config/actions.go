package config

import (
	"net/netip"
	"net/url"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
)

// JailActions are a jail's hook settings besides its argv commands:
// action_timeout bounds each of its ban_action and unban_action runs,
// webhooks names the [webhook.NAME] sections told of its events.
type JailActions struct {
	ActionTimeout time.Duration // default DefaultActionTimeout
	Webhooks      []string
}

// actionsFile is JailActions as written in a jail or [defaults].
type actionsFile struct {
	ActionTimeout *Duration `toml:"action_timeout"`
	Webhooks      []string  `toml:"webhooks"`
}

// Defaults and bounds of the hooks' timeouts. A timeout longer than
// MaxHookTimeout would hold the outbox's ordered lane for that long.
const (
	DefaultActionTimeout  = 30 * time.Second
	DefaultWebhookTimeout = 10 * time.Second
	MaxHookTimeout        = time.Hour
)

func buildJailActions(j, d actionsFile) JailActions {
	return JailActions{ActionTimeout: dur(j.ActionTimeout, d.ActionTimeout, DefaultActionTimeout), Webhooks: first(j.Webhooks, d.Webhooks)}
}

// Webhook is a [webhook.NAME]: where and how a jail's events are POSTed.
type Webhook struct {
	Name            string   `toml:"-"`
	URL             string   `toml:"url"`
	Timeout         Duration `toml:"timeout"`           // default 10s
	BearerTokenFile string   `toml:"bearer_token_file"` // Authorization: Bearer, read at start
	HMACSecretFile  string   `toml:"hmac_secret_file"`  // X-Mailjail-Signature, read at start
	Events          []string `toml:"events"`            // default WebhookEvents
	CAFile          string   `toml:"ca_file"`           // PEM roots for https; default the system's
}

// WebhookEvents are the events a webhook can be sent, all of them by
// default.
var WebhookEvents = []string{"ban", "unban", "suspend", "release"}

// Wants reports whether the webhook is sent for event.
func (w *Webhook) Wants(event string) bool { return slices.Contains(w.Events, event) }

// webhooksFile holds the [webhook.NAME] sections as written.
type webhooksFile struct {
	Webhook map[string]Webhook `toml:"webhook"`
}

func (c *Config) applyWebhookDefaults(f webhooksFile) {
	c.Webhooks = map[string]*Webhook{}
	for name, w := range f.Webhook {
		w.Name = name
		if !w.Timeout.set {
			w.Timeout.D = DefaultWebhookTimeout
		}
		if w.Events == nil {
			w.Events = slices.Clone(WebhookEvents)
		}
		c.Webhooks[name] = &w
	}
}

// Webhook returns the [webhook.NAME] called name, or nil.
func (c *Config) Webhook(name string) *Webhook { return c.Webhooks[name] }

// WebhookNames are the configured webhooks' names, sorted.
func (c *Config) WebhookNames() []string {
	names := make([]string, 0, len(c.Webhooks))
	for n := range c.Webhooks {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// validateWrittenActions checks the hook keys a table (a jail or
// [defaults]) writes, enabled or not.
func (c *Config) validateWrittenActions(p *problems, table string, f actionsFile) {
	if t := f.ActionTimeout; t != nil {
		c.validateHookTimeout(p, table+".action_timeout", *t)
	}
}

func (c *Config) validateHookTimeout(p *problems, key string, d Duration) {
	switch {
	case d.err != nil:
		p.add(c.errAt(key, "%v", d.err))
	case d.D <= 0 || d.D > MaxHookTimeout:
		p.add(c.errAt(key, "must be a duration between 1ms and %s, got %s", FormatDuration(MaxHookTimeout), FormatDuration(d.D)))
	}
}

// validateJailActions checks an enabled jail's webhooks and that its
// action_timeout has commands to bound.
func (c *Config) validateJailActions(p *problems, j *Jail) {
	if c.raw[j.Name].ActionTimeout != nil && len(j.BanAction) == 0 && len(j.UnbanAction) == 0 {
		p.add(c.errAt("jail."+j.Name+".action_timeout", "the jail has no ban_action or unban_action: action_timeout would bound nothing"))
	}
	for i, name := range j.Webhooks {
		switch {
		case c.Webhook(name) == nil:
			p.add(c.errAt(c.jkey(j, "webhooks"), "unknown webhook %q: no [webhook.%s] section", name, name))
		case slices.Index(j.Webhooks, name) < i:
			p.add(c.errAt(c.jkey(j, "webhooks"), "webhook %q is listed twice", name))
		}
	}
}

// validateWebhooks checks every [webhook.NAME], and that an enabled jail
// lists it: one that none lists would never be sent.
func (c *Config) validateWebhooks(p *problems) {
	used := map[string]bool{}
	for _, j := range c.Jails {
		if j.Enabled {
			for _, n := range j.Webhooks {
				used[n] = true
			}
		}
	}
	for _, name := range c.WebhookNames() {
		w, k := c.Webhooks[name], "webhook."+name
		if !validName(name) {
			p.add(c.errAt(k, "webhook names are letters, digits, '.', '_' and '-'"))
			continue
		}
		if !used[name] {
			p.add(c.errAt(k, "no enabled jail lists it in webhooks: it would never be sent"))
		}
		c.validateWebhookURL(p, w)
		c.validateHookTimeout(p, k+".timeout", w.Timeout)
		if w.BearerTokenFile != "" && w.HMACSecretFile != "" {
			p.add(c.errAt(k+".hmac_secret_file", "bearer_token_file and hmac_secret_file are both set: keep one"))
		}
		for _, kv := range [][2]string{{"bearer_token_file", w.BearerTokenFile}, {"hmac_secret_file", w.HMACSecretFile}, {"ca_file", w.CAFile}} {
			if kv[1] != "" && !filepath.IsAbs(kv[1]) {
				p.add(c.errAt(k+"."+kv[0], "must be an absolute path, got %q", kv[1]))
			}
		}
		if len(w.Events) == 0 {
			p.add(c.errAt(k+".events", "names no event: the webhook would never be sent"))
		}
		for i, ev := range w.Events {
			switch {
			case !slices.Contains(WebhookEvents, ev):
				p.add(c.errAt(k+".events", "unknown event %q: must be one of %s", ev, strings.Join(WebhookEvents, ", ")))
			case slices.Index(w.Events, ev) < i:
				p.add(c.errAt(k+".events", "event %q is listed twice", ev))
			}
		}
	}
}

// validateWebhookURL checks that the URL is http(s) to a host, and
// https unless the host is this one: an event, its token or its
// signature must not cross a network in clear text.
func (c *Config) validateWebhookURL(p *problems, w *Webhook) {
	k := "webhook." + w.Name + ".url"
	if w.URL == "" {
		p.add(c.errAt(k, "is required"))
		return
	}
	u, err := url.Parse(w.URL)
	if err != nil {
		p.add(c.errAt(k, "%v", err))
		return
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		p.add(c.errAt(k, "must be an http:// or https:// URL, got %q", w.URL))
	case u.Host == "" || u.Hostname() == "":
		p.add(c.errAt(k, "names no host: %q", w.URL))
	case u.User != nil:
		p.add(c.errAt(k, "has credentials in it, which would be logged: use bearer_token_file or hmac_secret_file"))
	case u.Scheme == "http" && !loopbackHost(u.Hostname()):
		p.add(c.errAt(k, "http:// is for a loopback host only (%s is not): use https://", u.Hostname()))
	case u.Scheme == "http" && w.CAFile != "":
		p.add(c.errAt("webhook."+w.Name+".ca_file", "applies to an https:// URL only"))
	}
}

// loopbackHost reports whether host is this machine for certain:
// localhost, or a loopback address. Other names could resolve anywhere.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}
