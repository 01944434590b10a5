package control

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
)

// A CLI and a daemon of different versions refuse each other with both
// versions named, in either direction; a client sending no version (curl)
// is served.
func TestVersionMismatch(t *testing.T) {
	old := Version
	t.Cleanup(func() { Version = old })
	Version = "1.0"
	socket := socketPath(t)
	serve(t, socket, fakeHandler{status: func(context.Context) (*Status, error) { return &Status{}, nil }})

	if _, err := Call(context.Background(), socket, OpStatus, Request{}); err != nil {
		t.Fatalf("same version: %v", err)
	}

	Version = "2.0" // the CLI after an upgrade, the daemon not restarted
	_, err := Call(context.Background(), socket, OpStatus, Request{})
	if !errors.Is(err, ErrVersion) || !strings.Contains(err.Error(), "CLI is mailjail 2.0, the daemon is mailjail 1.0") {
		t.Fatalf("CLI 2.0, daemon 1.0: %v", err)
	}

	// The daemon's side: a request naming another version is refused with
	// a Response an older CLI can show.
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}}
	defer client.CloseIdleConnections()
	for _, tt := range []struct {
		header  string
		wantErr string
	}{
		{"0.9", "CLI is mailjail 0.9, the daemon is mailjail 1.0"},
		{"", ""},
	} {
		req, _ := http.NewRequest(http.MethodGet, "http://mailjail/v1/status", nil)
		if tt.header != "" {
			req.Header.Set(VersionHeader, tt.header)
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var resp Response
		err = json.NewDecoder(res.Body).Decode(&resp)
		res.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got := res.Header.Get(VersionHeader); got != "1.0" {
			t.Errorf("%q: response version %q", tt.header, got)
		}
		if tt.wantErr == "" && !resp.OK || tt.wantErr != "" && (resp.OK || resp.Code != ExitUnreachable || !strings.Contains(resp.Error, tt.wantErr)) {
			t.Errorf("request version %q: %+v", tt.header, resp)
		}
	}
}

// A daemon that sends no version (older than the check) is not misread.
func TestVersionOfOldDaemon(t *testing.T) {
	socket := socketPath(t)
	ln, err := Listen(socket, "")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"ok":true,"code":0,"status":{"jails":"not what this CLI expects"}}`))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	_, err = Call(context.Background(), socket, OpStatus, Request{})
	if !errors.Is(err, ErrVersion) || !strings.Contains(err.Error(), "the daemon is mailjail unknown") {
		t.Fatalf("old daemon: %v", err)
	}
}
