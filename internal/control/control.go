// Package control is the protocol between the mailjail CLI and a running
// daemon: one JSON request and one JSON response per connection on a unix
// socket (mode 0600, or 0660 for a configured group). The daemon applies
// requests in its main loop, between log batches, so CLI changes and bans
// from logs never race.
package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"
)

// Request is one CLI command for the daemon.
type Request struct {
	Op        string   `json:"op"` // "ban", "unban", "status"
	Addrs     []string `json:"addrs,omitempty"`
	All       bool     `json:"all,omitempty"`
	Jail      string   `json:"jail,omitempty"`
	For       string   `json:"for,omitempty"` // duration, "" = jail's bantime
	Permanent bool     `json:"permanent,omitempty"`
	Reason    string   `json:"reason,omitempty"`
}

// Ban is a ban as the CLI shows it (stable JSON schema).
type Ban struct {
	Addr      string     `json:"addr"`
	Jail      string     `json:"jail"`
	Since     time.Time  `json:"since"`
	Until     *time.Time `json:"until"` // null: permanent
	Permanent bool       `json:"permanent"`
	Strikes   int        `json:"strikes"`
	Reason    string     `json:"reason"`
	Lifted    *time.Time `json:"lifted,omitempty"`
	LiftedBy  string     `json:"lifted_by,omitempty"`
}

// FileStatus is one followed file.
type FileStatus struct {
	Path   string `json:"path"`
	Offset int64  `json:"offset"`
	Size   int64  `json:"size"`
	Open   bool   `json:"open"`
}

// JailStatus is one jail in `status`.
type JailStatus struct {
	Name           string         `json:"name"`
	Filter         string         `json:"filter"`
	LogPath        []string       `json:"logpath"`
	Journal        string         `json:"journal"` // journal source key, for journalmatch jails
	Files          []FileStatus   `json:"files"`
	StrikesTracked int            `json:"strikes_tracked"` // addresses holding strikes inside findtime
	StrikesStored  int64          `json:"strikes_stored"`
	ActiveBans     int64          `json:"active_bans"`
	TotalBans      int64          `json:"total_bans"`
	RateEvents     int64          `json:"rate_events"`    // rate jails: limits exceeded
	RateKeys       map[string]int `json:"rate_keys"`      // rate jails: keys tracked per limit
	RateUntracked  uint64         `json:"rate_untracked"` // rate jails: new keys let through or limited because the table was full
}

// Status is the answer to `status`.
type Status struct {
	Running    bool         `json:"running"`
	Version    string       `json:"version"`
	PID        int          `json:"pid"`
	Started    *time.Time   `json:"started"`
	UptimeSec  int64        `json:"uptime_seconds"`
	Database   string       `json:"database"`
	MapFile    string       `json:"map_file"`
	MapEntries int          `json:"map_entries"`
	MapWrites  uint64       `json:"map_writes"`
	MapError   string       `json:"map_error"`
	Lines      uint64       `json:"lines_read"`
	NoTime     uint64       `json:"lines_without_time"`
	Matches    uint64       `json:"matches"`
	Ignored    uint64       `json:"ignored"`
	Jails      []JailStatus `json:"jails"`
}

// Response is the daemon's answer.
type Response struct {
	OK     bool    `json:"ok"`
	Code   int     `json:"code"` // the exit code the CLI should use
	Error  string  `json:"error,omitempty"`
	Bans   []Ban   `json:"bans,omitempty"`
	Status *Status `json:"status,omitempty"`
}

// ErrNoDaemon means nothing listens on the socket.
var ErrNoDaemon = errors.New("daemon not running")

// Call sends req to the daemon at socket and returns its response.
func Call(ctx context.Context, socket string, req Request) (*Response, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (%v)", socket, ErrNoDaemon, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return nil, fmt.Errorf("send to %s: %w", socket, err)
	}
	var resp Response
	if err := json.NewDecoder(conn).Decode(&resp); err != nil {
		return nil, fmt.Errorf("read from %s: %w", socket, err)
	}
	return &resp, nil
}

// Listen creates the socket: its directory, a stale socket removed, mode
// 0600 (0660 and the group when group is set).
func Listen(socket, group string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(socket), 0o755); err != nil {
		return nil, fmt.Errorf("socket %s: %w", socket, err)
	}
	// The daemon lock is held, so a socket file here is a dead daemon's.
	os.Remove(socket)
	ln, err := net.Listen("unix", socket)
	if err != nil {
		return nil, fmt.Errorf("socket %s: %w", socket, err)
	}
	mode := os.FileMode(0o600)
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("socket %s: group %s: %w", socket, group, err)
		}
		gid, _ := strconv.Atoi(g.Gid)
		if err := os.Chown(socket, -1, gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("socket %s: %w", socket, err)
		}
		mode = 0o660
	}
	if err := os.Chmod(socket, mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("socket %s: %w", socket, err)
	}
	return ln, nil
}

// Serve answers requests on ln with handle until ln is closed. Each
// connection carries one request; a malformed one gets a usage error.
func Serve(ln net.Listener, handle func(Request) Response) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(30 * time.Second))
			var req Request
			var resp Response
			if err := json.NewDecoder(conn).Decode(&req); err != nil {
				resp = Response{Code: 2, Error: "bad request: " + err.Error()}
			} else {
				resp = handle(req)
			}
			json.NewEncoder(conn).Encode(resp)
		}()
	}
}
