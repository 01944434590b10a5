package actions_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailjail/mailjail/actions"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// request is what a test server received.
type request struct {
	method, path string
	header       http.Header
	body         []byte
}

// receiver records requests and answers status.
type receiver struct {
	mu     sync.Mutex
	got    []request
	status int
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.got = append(r.got, request{req.Method, req.URL.Path, req.Header.Clone(), body})
	status := r.status
	r.mu.Unlock()
	if status == 0 {
		status = http.StatusNoContent
	}
	w.WriteHeader(status)
	io.WriteString(w, "answer\r\nwith\x1b[31m control\n")
}

func (r *receiver) requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.got...)
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

var (
	at    = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	fixed = func() time.Time { return at }
	ban   = actions.HookEvent{Event: "ban", Jail: "rspamd-ratelimit", Addr: "2001:db8::/64", Since: at.Add(-time.Minute),
		Until: at.Add(59 * time.Minute), Reason: "10 strikes in 10m (ip exceeded)"}
	suspension = actions.HookEvent{Event: "suspend", Jail: "stolen", Account: "user@example.org", Since: at,
		Reason: "500 recipients in 1h"}
)

// verify checks a request's signature as the README tells a receiver to:
// HMAC-SHA256 over TIMESTAMP "." BODY, hex, after "sha256=", and a
// timestamp within 5 minutes. It is written from the documentation, not
// from Sign.
func verify(secret []byte, h http.Header, body []byte, now time.Time) bool {
	ts := h.Get("X-Mailjail-Timestamp")
	sent, ok := strings.CutPrefix(h.Get("X-Mailjail-Signature"), "sha256=")
	if !ok {
		return false
	}
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return false
	}
	if d := now.Sub(time.Unix(secs, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return false
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts + "." + string(body)))
	want := hex.EncodeToString(m.Sum(nil))
	return hmac.Equal([]byte(sent), []byte(want))
}

// An https webhook with ca_file and an HMAC secret: the POST's body is
// the documented JSON, its headers are set, its signature verifies with
// the documented scheme and fails for another body or timestamp.
func TestWebhookHTTPSSignedBodyAndHeaders(t *testing.T) {
	rec := &receiver{}
	srv := httptest.NewTLSServer(rec)
	defer srv.Close()
	ca := writeFile(t, "ca.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})))
	secret := writeFile(t, "secret", "s3cret-key\n")
	defer func(v string) { actions.Version = v }(actions.Version)
	actions.Version = "1.2.3"
	w, err := actions.NewWebhook(actions.WebhookConfig{Name: "soc", URL: srv.URL + "/hook?x=1", CAFile: ca, HMACSecretFile: secret, Timeout: 5 * time.Second}, "mx1.example.org", fixed)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, ev := range []actions.HookEvent{ban, suspension} {
		if err := w.Send(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	got := rec.requests()
	if len(got) != 2 {
		t.Fatalf("%d requests", len(got))
	}
	for i, name := range []string{"webhook-ban.json", "webhook-suspend.json"} {
		r := got[i]
		if r.method != http.MethodPost || r.path != "/hook" {
			t.Errorf("%s %s", r.method, r.path)
		}
		for k, v := range map[string]string{"Content-Type": "application/json", "User-Agent": "mailjail/1.2.3",
			"X-Mailjail-Timestamp": "1796126400", "Authorization": ""} {
			if r.header.Get(k) != v {
				t.Errorf("%s = %q, want %q", k, r.header.Get(k), v)
			}
		}
		if !verify([]byte("s3cret-key"), r.header, r.body, at) {
			t.Errorf("signature %q does not verify", r.header.Get("X-Mailjail-Signature"))
		}
		if verify([]byte("s3cret-key"), r.header, append(r.body, ' '), at) || verify([]byte("s3cret-key"), r.header, r.body, at.Add(time.Hour)) {
			t.Error("a changed body or a replay an hour later verifies")
		}
		golden(t, name, r.body)
	}
	if s := actions.Sign([]byte("s3cret-key"), 1796126400, got[0].body); s != got[0].header.Get("X-Mailjail-Signature") {
		t.Errorf("Sign = %s, sent %s", s, got[0].header.Get("X-Mailjail-Signature"))
	}
	// The system's roots do not know the test server's certificate: the
	// CA file is what made the request succeed.
	w2, err := actions.NewWebhook(actions.WebhookConfig{Name: "soc", URL: srv.URL}, "h", fixed)
	if err != nil {
		t.Fatal(err)
	}
	if err := w2.Send(ctx, ban); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("without ca_file: %v", err)
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, append(got, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(append(got, '\n'), want) {
		t.Errorf("%s:\ngot  %s\nwant %s", name, got, want)
	}
}

// A loopback http webhook with a bearer token, read without its trailing
// newline.
func TestWebhookBearerToken(t *testing.T) {
	rec := &receiver{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	w, err := actions.NewWebhook(actions.WebhookConfig{Name: "local", URL: srv.URL, BearerTokenFile: writeFile(t, "token", "tok-123\r\n")}, "h", fixed)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Send(context.Background(), ban); err != nil {
		t.Fatal(err)
	}
	r := rec.requests()[0]
	if got := r.header.Get("Authorization"); got != "Bearer tok-123" {
		t.Errorf("Authorization = %q", got)
	}
	if r.header.Get("X-Mailjail-Signature") != "" {
		t.Error("signed without a secret")
	}
	for _, content := range []string{"\n", "two words\n"} {
		if _, err := actions.NewWebhook(actions.WebhookConfig{Name: "local", URL: srv.URL, BearerTokenFile: writeFile(t, "token", content)}, "h", fixed); err == nil {
			t.Errorf("token %q accepted", content)
		}
	}
}

// Anything but a 2xx is a failure, with the status and the receiver's
// answer cut and cleaned in the error; a redirect is not followed.
func TestWebhookNon2xxFails(t *testing.T) {
	for _, status := range []int{http.StatusInternalServerError, http.StatusUnauthorized, http.StatusFound, http.StatusTooManyRequests} {
		rec := &receiver{status: status}
		srv := httptest.NewServer(rec)
		w, err := actions.NewWebhook(actions.WebhookConfig{Name: "local", URL: srv.URL}, "h", fixed)
		if err != nil {
			t.Fatal(err)
		}
		err = w.Send(context.Background(), ban)
		if err == nil || !strings.Contains(err.Error(), http.StatusText(status)) || strings.ContainsAny(err.Error(), "\r\n\x1b") {
			t.Errorf("status %d: err = %q", status, err)
		}
		srv.Close()
	}
	rec := &receiver{status: http.StatusOK}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	w, _ := actions.NewWebhook(actions.WebhookConfig{Name: "local", URL: srv.URL}, "h", fixed)
	if err := w.Send(context.Background(), ban); err != nil {
		t.Errorf("200: %v", err)
	}
}

// A receiver that does not answer within the timeout fails the attempt.
func TestWebhookTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	w, err := actions.NewWebhook(actions.WebhookConfig{Name: "slow", URL: srv.URL, Timeout: 200 * time.Millisecond}, "h", fixed)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = w.Send(context.Background(), ban)
	if err == nil || !strings.Contains(err.Error(), "no answer within 200ms") {
		t.Errorf("err = %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("returned after %s", d)
	}
}

// A webhook whose files cannot be read is reported at start and fails
// its items with the cause; an unknown name fails too.
func TestHooksBrokenAndUnknown(t *testing.T) {
	h, err := actions.NewHooks([]actions.WebhookConfig{
		{Name: "ok", URL: "http://127.0.0.1:1/"},
		{Name: "nosecret", URL: "http://127.0.0.1:1/", HMACSecretFile: "/nonexistent/secret"},
		{Name: "badca", URL: "https://127.0.0.1:1/", CAFile: writeFile(t, "ca", "not a pem")},
	}, "h", fixed)
	if err == nil || !strings.Contains(err.Error(), "webhook nosecret: HMAC secret") || !strings.Contains(err.Error(), "webhook badca: CA file") {
		t.Fatalf("NewHooks: %v", err)
	}
	ctx := context.Background()
	if err := h.Send(ctx, "nosecret", ban); err == nil || !strings.Contains(err.Error(), "/nonexistent/secret") {
		t.Errorf("broken: %v", err)
	}
	if err := h.Send(ctx, "gone", ban); err == nil || !strings.Contains(err.Error(), `"gone" is not configured`) {
		t.Errorf("unknown: %v", err)
	}
	if err := h.Send(ctx, "ok", ban); err == nil || !strings.Contains(err.Error(), "webhook ok:") {
		t.Errorf("refused connection: %v", err)
	}
}

// The body: addr or account, until null when permanent, times in UTC.
func TestBody(t *testing.T) {
	b, err := actions.Body(actions.HookEvent{Event: "unban", Jail: "j", Addr: "192.0.2.1", Since: at.In(time.FixedZone("x", 3600)), Reason: "lifted: cli"}, "mx")
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"event":"unban","jail":"j","addr":"192.0.2.1","until":null,"since":"2026-12-01T12:00:00Z","reason":"lifted: cli","host":"mx"}`; string(b) != want {
		t.Errorf("body = %s", b)
	}
}
