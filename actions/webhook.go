package actions

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Version is mailjail's version, for the User-Agent of webhook requests
// (mailjail/VERSION); the command sets it at start.
var Version = "dev"

// Webhook headers. The signature is HMAC-SHA256, keyed with the secret
// file's content, of TIMESTAMP "." BODY, where TIMESTAMP is the
// X-Mailjail-Timestamp header as sent (Unix seconds, decimal) and BODY
// the request body's bytes; the header is "sha256=" and the MAC in
// lower-case hex. A receiver recomputes it, compares in constant time and
// refuses a timestamp far from its clock (say 5 minutes), so that a
// captured request cannot be replayed later. Each attempt is signed anew.
const (
	HeaderTimestamp = "X-Mailjail-Timestamp"
	HeaderSignature = "X-Mailjail-Signature"
)

// Sign is the X-Mailjail-Signature value of body sent at timestamp ts
// (Unix seconds) with secret.
func Sign(secret []byte, ts int64, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// HookEvent is what a webhook reports: a ban, an unban, a suspension or
// a release. Every field is mailjail's own (a parsed address, a jail
// name, mailjail's reason text); the account, which a filter captured,
// only ever travels JSON-encoded in the body.
type HookEvent struct {
	Event   string    `json:"event"` // "ban", "unban", "suspend", "release"
	Jail    string    `json:"jail"`
	Addr    string    `json:"addr,omitempty"`    // bans and unbans: address or prefix
	Account string    `json:"account,omitempty"` // suspensions and releases
	Since   time.Time `json:"since"`
	Until   time.Time `json:"until"` // zero: permanent
	Reason  string    `json:"reason"`
}

// hookBody is the JSON a webhook POSTs. addr or account is set, never
// both; until is null for a permanent ban or suspension.
type hookBody struct {
	Event   string  `json:"event"`
	Jail    string  `json:"jail"`
	Addr    string  `json:"addr,omitempty"`
	Account string  `json:"account,omitempty"`
	Until   *string `json:"until"`
	Since   string  `json:"since"`
	Reason  string  `json:"reason"`
	Host    string  `json:"host"`
}

// Body is the request body of ev sent from host.
func Body(ev HookEvent, host string) ([]byte, error) {
	b := hookBody{Event: ev.Event, Jail: ev.Jail, Addr: ev.Addr, Account: ev.Account,
		Since: ev.Since.UTC().Format(time.RFC3339), Reason: ev.Reason, Host: host}
	if !ev.Until.IsZero() {
		u := ev.Until.UTC().Format(time.RFC3339)
		b.Until = &u
	}
	return json.Marshal(b)
}

// WebhookConfig is one [webhook.NAME], checked by the configuration.
type WebhookConfig struct {
	Name            string
	URL             string // http (loopback only) or https
	Timeout         time.Duration
	BearerTokenFile string // read once, trailing newline trimmed
	HMACSecretFile  string // likewise
	CAFile          string // PEM roots instead of the system's
}

// Webhook POSTs events to one URL.
type Webhook struct {
	name, url string
	timeout   time.Duration
	token     string // Authorization: Bearer, when set
	secret    []byte // signs the body, when set
	client    *http.Client
	host      string
	now       func() time.Time
}

// NewWebhook reads c's secret and CA files (once: a changed file takes a
// restart) and makes its client. host is the "host" the body names; now
// stamps the signature (nil: the wall clock).
func NewWebhook(c WebhookConfig, host string, now func() time.Time) (*Webhook, error) {
	w := &Webhook{name: c.Name, url: c.URL, timeout: c.Timeout, host: host, now: now}
	if w.now == nil {
		w.now = time.Now
	}
	if w.timeout <= 0 {
		w.timeout = 10 * time.Second
	}
	var err error
	if c.BearerTokenFile != "" {
		var b []byte
		if b, err = readSecret(c.BearerTokenFile); err != nil {
			return nil, fmt.Errorf("webhook %s: bearer token: %w", c.Name, err)
		}
		w.token = string(b)
		if strings.ContainsFunc(w.token, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
			return nil, fmt.Errorf("webhook %s: bearer token in %s: has a space or a control character", c.Name, c.BearerTokenFile)
		}
	}
	if c.HMACSecretFile != "" {
		if w.secret, err = readSecret(c.HMACSecretFile); err != nil {
			return nil, fmt.Errorf("webhook %s: HMAC secret: %w", c.Name, err)
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("webhook %s: CA file: %w", c.Name, err)
		}
		tr.TLSClientConfig.RootCAs = x509.NewCertPool()
		if !tr.TLSClientConfig.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("webhook %s: CA file %s: no PEM certificate in it", c.Name, c.CAFile)
		}
	}
	w.client = &http.Client{Transport: tr,
		// A redirect is a failure: following it would send the token and
		// the event somewhere the configuration does not name.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return w, nil
}

// readSecret reads a secret file without its trailing newline.
func readSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b = bytes.TrimRight(b, "\r\n")
	if len(b) == 0 {
		return nil, fmt.Errorf("%s is empty", path)
	}
	return b, nil
}

// Name is the webhook's name, [webhook.NAME].
func (w *Webhook) Name() string { return w.name }

// Send POSTs ev. A 2xx answer is success; any other status, a redirect,
// a network error or the timeout (the webhook's own, or ctx's if
// earlier) is an error, which the outbox retries.
func (w *Webhook) Send(ctx context.Context, ev HookEvent) error {
	body, err := Body(ev, w.host)
	if err != nil {
		return fmt.Errorf("webhook %s: %w", w.name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook %s: %w", w.name, err)
	}
	ts := w.now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "mailjail/"+Version)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	if w.secret != nil {
		req.Header.Set(HeaderSignature, Sign(w.secret, ts, body))
	}
	if w.token != "" {
		req.Header.Set("Authorization", "Bearer "+w.token)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		// url.Error quotes the URL, which is the configuration's, not a
		// log line's.
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("webhook %s: no answer within %s: %w", w.name, w.timeout, err)
		}
		return fmt.Errorf("webhook %s: %w", w.name, err)
	}
	defer resp.Body.Close()
	// What the receiver says, bounded, for the error; the rest is read
	// (bounded too) so that the connection can be reused.
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook %s: %s: %s", w.name, resp.Status, printable(snippet))
	}
	return nil
}

// printable replaces control characters of a receiver's answer, which
// goes into a log line.
func printable(b []byte) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(string(b), "?"))
}

// Hooks are the configured webhooks by name.
type Hooks struct {
	byName map[string]*Webhook
	broken map[string]error // webhooks whose files could not be read
}

// NewHooks makes the webhooks of cfgs. One that cannot be made (a
// secret or CA file unreadable) is kept as broken: its items fail with
// the cause, and are retried, until a restart finds the file; the
// returned error names every broken one, for the start's log.
func NewHooks(cfgs []WebhookConfig, host string, now func() time.Time) (*Hooks, error) {
	h := &Hooks{byName: map[string]*Webhook{}, broken: map[string]error{}}
	var errs []error
	for _, c := range cfgs {
		w, err := NewWebhook(c, host, now)
		if err != nil {
			h.broken[c.Name] = err
			errs = append(errs, err)
			continue
		}
		h.byName[c.Name] = w
	}
	return h, errors.Join(errs...)
}

// Send sends ev through the webhook called name.
func (h *Hooks) Send(ctx context.Context, name string, ev HookEvent) error {
	if w := h.byName[name]; w != nil {
		return w.Send(ctx, ev)
	}
	if err := h.broken[name]; err != nil {
		return err
	}
	return fmt.Errorf("webhook %q is not configured (any more)", name)
}
