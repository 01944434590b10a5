package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"syscall"

	"github.com/mailjail/mailjail/mapfile"
)

// ErrNoDaemon means nothing listens on the socket.
var ErrNoDaemon = errors.New("daemon not running")

// ErrPermission means a daemon may run but this user may not use its
// socket.
var ErrPermission = errors.New("permission denied")

// Call sends req for op to the daemon at socket and returns its response.
func Call(ctx context.Context, socket, op string, req Request) (*Response, error) {
	method, body := http.MethodPost, []byte(nil)
	if op == OpStatus {
		method = http.MethodGet
	} else {
		var err error
		if body, err = json.Marshal(req); err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
	}
	hr, err := http.NewRequestWithContext(ctx, method, "http://mailjail/v1/"+op, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set(VersionHeader, Version)
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}}
	defer client.CloseIdleConnections()
	res, err := client.Do(hr)
	if err != nil {
		return nil, dialError(socket, err)
	}
	defer res.Body.Close()
	if v := res.Header.Get(VersionHeader); v != Version {
		return nil, versionError(Version, v)
	}
	var resp Response
	if err := json.NewDecoder(res.Body).Decode(&resp); err != nil {
		return nil, fmt.Errorf("read from %s (%s): %w", socket, res.Status, err)
	}
	return &resp, nil
}

// dialError tells an absent daemon from one this user may not reach.
func dialError(socket string, err error) error {
	switch {
	case errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EACCES):
		group := "root"
		if fi, serr := os.Stat(socket); serr == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				group = mapfile.GroupName(st.Gid)
			}
		}
		return fmt.Errorf("%s: %w: run as root or as a member of group %s (global.socket_group)", socket, ErrPermission, group)
	case errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("%s: %w (%v)", socket, ErrNoDaemon, err)
	}
	return fmt.Errorf("%s: %w", socket, err)
}
