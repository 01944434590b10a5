package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"

	"github.com/mailjail/mailjail/internal/enforce"
	"github.com/mailjail/mailjail/internal/store"
)

// Handler is what the daemon offers on the socket, in domain values.
type Handler interface {
	Changer
	Status(ctx context.Context) (*Status, error)
	// Outbox is the daemon's outbox worker.
	Outbox() Outbox
}

// Outbox lists, retries and drops outbox items (OutboxOps): the
// daemon's worker, or the CLI's own when no daemon runs.
type Outbox interface {
	List(ctx context.Context, all bool) ([]store.OutboxItem, error)
	// Retry and Drop return the item retried or dropped;
	// core.ErrNotFound for an unknown id (or, for Retry, one delivered).
	Retry(ctx context.Context, id int64) (store.OutboxItem, error)
	Drop(ctx context.Context, id int64) (store.OutboxItem, error)
}

// OutboxOps are the outbox's operations: POST requests, each carried
// out by DoOutbox.
var OutboxOps = []string{OpOutboxList, OpOutboxRetry, OpOutboxDrop}

// Reloader is a Handler that can reread its configuration: the daemon.
// Refused, the Reload says why (Applied false) and the error is
// core.ErrInvalid's.
type Reloader interface {
	Reload(ctx context.Context) (*Reload, error)
}

// Changer carries out the requests that change state (ChangeOps): the
// daemon's handler, or the CLI's own when no daemon runs.
type Changer interface {
	Ban(ctx context.Context, r enforce.BanRequest) ([]store.Ban, error)
	Unban(ctx context.Context, r enforce.UnbanRequest) ([]store.Ban, error)
	Suspend(ctx context.Context, r enforce.SuspendRequest) ([]store.Suspension, error)
	// Release returns the suspensions it lifted.
	Release(ctx context.Context, accounts []string) ([]store.Suspension, error)
	// AllowAdd and AllowDel return the entries they added or removed.
	AllowAdd(ctx context.Context, r AllowRequest) ([]store.Allowed, error)
	AllowDel(ctx context.Context, r AllowRequest) ([]store.Allowed, error)
	// Resume releases a tripped circuit breaker (by: who asks) and
	// returns the held bans it gave the targets; core.ErrNotFound when
	// it is not tripped.
	Resume(ctx context.Context, by string) ([]store.Ban, error)
}

// ChangeOps are the operations that change state: POST requests, each
// carried out by Do.
var ChangeOps = []string{OpBan, OpUnban, OpSuspend, OpRelease, OpAllowAdd, OpAllowDel, OpResume}

// Limits of the server: a request is small (MaxAddrs addresses fit in
// well under a megabyte), and a stuck client must not hold a connection.
const (
	maxBody      = 1 << 20
	readTimeout  = 10 * time.Second
	writeTimeout = 60 * time.Second
)

// Server answers the CLI on the control socket.
type Server struct {
	srv *http.Server
	ln  net.Listener
}

// NewServer serves h on ln once Serve is called.
func NewServer(ln net.Listener, h Handler) *Server {
	mux := http.NewServeMux()
	for _, op := range ChangeOps {
		mux.HandleFunc("POST /v1/"+op, func(w http.ResponseWriter, r *http.Request) {
			if req, ok := decode(w, r); ok {
				reply(w, Do(r.Context(), h, op, req))
			}
		})
	}
	for _, op := range OutboxOps {
		mux.HandleFunc("POST /v1/"+op, func(w http.ResponseWriter, r *http.Request) {
			if req, ok := decode(w, r); ok {
				reply(w, DoOutbox(r.Context(), h.Outbox(), op, req))
			}
		})
	}
	mux.HandleFunc("GET /v1/"+OpStatus, func(w http.ResponseWriter, r *http.Request) {
		s, err := h.Status(r.Context())
		if err != nil {
			reply(w, Response{Code: CodeOf(err), Error: err.Error()})
			return
		}
		reply(w, Response{OK: true, Status: s})
	})
	if rl, ok := h.(Reloader); ok {
		mux.HandleFunc("POST /v1/"+OpReload, func(w http.ResponseWriter, r *http.Request) {
			res, err := rl.Reload(r.Context())
			resp := Response{OK: err == nil, Code: CodeOf(err), Reload: res}
			if err != nil {
				resp.Error = err.Error()
			}
			reply(w, resp)
		})
	}
	return &Server{ln: ln, srv: &http.Server{Handler: checkVersion(Version, mux), ReadTimeout: readTimeout, ReadHeaderTimeout: readTimeout, WriteTimeout: writeTimeout}}
}

// Serve answers requests until Shutdown.
func (s *Server) Serve() error {
	if err := s.srv.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops accepting (closing the listener removes the socket) and
// lets requests under way finish until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }

// Do carries out the change op asks for through h: req parsed into the
// domain's request, carried out, answered. The server calls it for the
// socket's requests, the CLI without a daemon for its own, so both parse
// and answer alike.
func Do(ctx context.Context, h Changer, op string, req Request) Response {
	switch op {
	case OpBan:
		return do(ctx, req, ParseBan, h.Ban, func(r *Response, bans []store.Ban) { r.Bans = BanViews(bans) })
	case OpUnban:
		return do(ctx, req, ParseUnban, h.Unban, func(r *Response, bans []store.Ban) { r.Bans = BanViews(bans) })
	case OpSuspend:
		return do(ctx, req, ParseSuspend, h.Suspend, setSuspensions)
	case OpRelease:
		return do(ctx, req, ParseRelease, h.Release, setSuspensions)
	case OpAllowAdd:
		return do(ctx, req, ParseAllow, h.AllowAdd, setAllow)
	case OpAllowDel:
		return do(ctx, req, ParseAllow, h.AllowDel, setAllow)
	case OpResume:
		return do(ctx, req, ParseResume, h.Resume, func(r *Response, bans []store.Ban) { r.Bans = BanViews(bans) })
	}
	return Response{Code: ExitUsage, Error: fmt.Sprintf("unknown operation %q", op)}
}

// DoOutbox carries out the outbox operation op through ob, for the
// socket and for the CLI without a daemon alike.
func DoOutbox(ctx context.Context, ob Outbox, op string, req Request) Response {
	one := func(r *Response, it store.OutboxItem) {
		if it.ID != 0 { // not an item that was not found
			r.Outbox = []OutboxItem{OutboxItemView(it)}
		}
	}
	switch op {
	case OpOutboxList:
		return do(ctx, req, func(r Request) (bool, error) { return r.All, nil }, ob.List,
			func(r *Response, items []store.OutboxItem) { r.Outbox = OutboxItemViews(items) })
	case OpOutboxRetry:
		return do(ctx, req, ParseOutboxID, ob.Retry, one)
	case OpOutboxDrop:
		return do(ctx, req, ParseOutboxID, ob.Drop, one)
	}
	return Response{Code: ExitUsage, Error: fmt.Sprintf("unknown operation %q", op)}
}

func setSuspensions(r *Response, ss []store.Suspension) { r.Suspensions = SuspensionViews(ss) }
func setAllow(r *Response, as []store.Allowed)          { r.Allow = AllowViews(as) }

// do parses req into the domain's request R, carries it out with run and
// puts what it changed (D, also after a partial failure) into the answer
// with view.
func do[R, D any](ctx context.Context, req Request, parse func(Request) (R, error), run func(context.Context, R) (D, error), view func(*Response, D)) Response {
	dr, err := parse(req)
	if err != nil {
		return Response{Code: CodeOf(err), Error: err.Error()}
	}
	d, err := run(ctx, dr)
	resp := Response{OK: err == nil, Code: CodeOf(err)}
	if err != nil {
		resp.Error = err.Error()
	}
	view(&resp, d)
	return resp
}

func decode(w http.ResponseWriter, r *http.Request) (Request, bool) {
	var req Request
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		msg := "bad request: " + err.Error()
		if errors.As(err, &tooBig) {
			msg = fmt.Sprintf("request larger than %d bytes (at most %d addresses per request)", maxBody, MaxAddrs)
		}
		reply(w, Response{Code: ExitUsage, Error: msg})
		return req, false
	}
	return req, true
}

func reply(w http.ResponseWriter, resp Response) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(resp)
}

// Listen creates the socket: its directory, mode 0600 (0660 and the group
// when group is set). A socket left by a dead daemon is replaced; a path
// that is not a socket, or a socket a live daemon answers on, is an error:
// the caller must not take over another daemon's socket.
func Listen(socket, group string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(socket), 0o755); err != nil {
		return nil, fmt.Errorf("socket %s: %w", socket, err)
	}
	if err := removeStale(socket); err != nil {
		return nil, err
	}
	ln, err := net.Listen("unix", socket)
	if err != nil {
		return nil, fmt.Errorf("socket %s: %w", socket, err)
	}
	if err := setAccess(socket, group); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

func removeStale(socket string) error {
	fi, err := os.Lstat(socket)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("socket %s: %w", socket, err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("socket %s: exists and is not a socket; move it away", socket)
	}
	if c, err := net.DialTimeout("unix", socket, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("socket %s: another mailjail daemon answers on it (another database?); give this one its own socket", socket)
	}
	if err := os.Remove(socket); err != nil {
		return fmt.Errorf("socket %s: remove stale socket: %w", socket, err)
	}
	return nil
}

func setAccess(socket, group string) error {
	mode := os.FileMode(0o600)
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			return fmt.Errorf("socket %s: group %s: %w", socket, group, err)
		}
		gid, _ := strconv.Atoi(g.Gid)
		if err := os.Chown(socket, -1, gid); err != nil {
			return fmt.Errorf("socket %s: %w", socket, err)
		}
		mode = 0o660
	}
	if err := os.Chmod(socket, mode); err != nil {
		return fmt.Errorf("socket %s: %w", socket, err)
	}
	return nil
}
