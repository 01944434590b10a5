// Package allowlist keeps the ignoreip entries that are not addresses
// current: list files named by file:PATH (reread within a second of a
// change), host names (resolved at start and every dns_refresh) and, with
// ignoreself, the host's own addresses. It is an edge of the daemon (DNS,
// files, fsnotify); the engine is handed what they stand for as a
// rules.Resolved.
//
// It never forgets an address because of a failure: a name that does not
// resolve keeps its last addresses (saved in the database by the caller,
// so that a restart while DNS is down keeps them too), and a list file
// that becomes unreadable or invalid keeps its last good content. An
// address wrongly kept in ignoreip costs a ban; one wrongly dropped can
// ban a gateway.
package allowlist

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/core"
	"github.com/mailjail/mailjail/rules"
)

// Options are the edges the list uses; the zero value uses the system
// resolver, the host's interfaces and the wall clock.
type Options struct {
	// Lookup resolves a host name (default net.DefaultResolver).
	Lookup func(ctx context.Context, host string) ([]netip.Addr, error)
	// Self lists the host's own addresses (default its interfaces).
	Self    func() ([]netip.Addr, error)
	Clock   core.Clock
	Log     *slog.Logger
	Timeout time.Duration // per lookup; default 5s
}

// Name is what a host name resolved to.
type Name struct {
	Addrs []netip.Addr `json:"addrs"`
	// Resolved is the last successful lookup; zero: never resolved.
	Resolved time.Time `json:"resolved"`
	// Err is why the last lookup failed ("" when it did not); the
	// addresses are then those of the last success.
	Err string `json:"-"`
}

// File is a list file's last good content.
type File struct {
	Entries []rules.IgnoreEntry
	Loaded  time.Time // when Entries were read; zero: never
	Err     string    // why the last read failed ("" when it did not)
}

// State is everything the entries stand for, at one time.
type State struct {
	Names   map[string]Name
	Files   map[string]File
	Self    []netip.Addr // with ignoreself; nil otherwise
	SelfErr string
}

// Resolved is the state as the engine takes it.
func (s State) Resolved() rules.Resolved {
	res := rules.Resolved{}
	for host, n := range s.Names {
		res[host] = hostPrefixes(n.Addrs)
	}
	for path, f := range s.Files {
		var ps []netip.Prefix
		for _, e := range f.Entries {
			if e.Prefix.IsValid() {
				ps = append(ps, e.Prefix)
			} else {
				ps = append(ps, res[e.Host]...)
			}
		}
		res[rules.FilePrefix+path] = ps
	}
	if s.Self != nil {
		res[rules.SelfKey] = hostPrefixes(s.Self)
	}
	return res
}

func hostPrefixes(addrs []netip.Addr) []netip.Prefix {
	out := make([]netip.Prefix, len(addrs))
	for i, a := range addrs {
		out[i] = rules.HostPrefix(a)
	}
	return out
}

func (s State) clone() State {
	out := State{Names: maps.Clone(s.Names), Files: maps.Clone(s.Files), Self: slices.Clone(s.Self), SelfErr: s.SelfErr}
	if out.Names == nil {
		out.Names = map[string]Name{}
	}
	if out.Files == nil {
		out.Files = map[string]File{}
	}
	return out
}

// List reads and resolves one configuration's ignoreip entries.
type List struct {
	opt     Options
	files   []string // paths of file: entries
	hosts   []string // host names written in the configuration
	self    bool
	refresh time.Duration
	state   State
}

// New is the list of cfg's entries (its [global] and enabled jails').
func New(cfg *config.Config, opt Options) *List {
	if opt.Lookup == nil {
		opt.Lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	if opt.Self == nil {
		opt.Self = interfaceAddrs
	}
	opt.Clock = core.OrReal(opt.Clock)
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 5 * time.Second
	}
	l := &List{opt: opt, self: cfg.Global.IgnoreSelf, refresh: cfg.Global.DNSRefresh}
	for _, raw := range cfg.IgnoreEntries() {
		e, err := rules.ParseIgnoreEntry(raw)
		switch {
		case err != nil, e.Prefix.IsValid():
			// Validation refused the former; the engine takes the latter.
		case e.File != "":
			l.files = append(l.files, e.File)
		default:
			l.hosts = append(l.hosts, e.Host)
		}
	}
	return l
}

// Empty reports whether there is nothing to read or resolve.
func (l *List) Empty() bool { return len(l.files) == 0 && len(l.hosts) == 0 && !l.self }

// Load reads the files and resolves the names and the host's addresses
// once, starting from saved (the names' last addresses, from the
// database, or the running state at a reload): a name that fails to
// resolve keeps them.
func (l *List) Load(ctx context.Context, saved map[string]Name) State {
	l.state = State{Names: map[string]Name{}, Files: map[string]File{}}
	maps.Copy(l.state.Names, saved)
	for _, path := range l.files {
		l.readFile(path)
	}
	l.resolveAll(ctx)
	return l.state.clone()
}

// readFile rereads one list file; a failure keeps its last content.
func (l *List) readFile(path string) {
	f := l.state.Files[path]
	entries, err := config.ReadIgnoreFile(path)
	if err != nil {
		f.Err = err.Error()
		l.opt.Log.Error("ignoreip file not read; its last content stays in force", "file", path, "err", err)
	} else {
		f = File{Entries: entries, Loaded: l.opt.Clock.Now()}
	}
	l.state.Files[path] = f
}

// hostsNow are the names of the configuration and of the list files.
func (l *List) hostsNow() []string {
	hosts := slices.Clone(l.hosts)
	for _, path := range l.files {
		for _, e := range l.state.Files[path].Entries {
			if e.Host != "" {
				hosts = append(hosts, e.Host)
			}
		}
	}
	slices.Sort(hosts)
	return slices.Compact(hosts)
}

// resolveAll looks every name up again, and the host's addresses. Names
// no longer written anywhere are dropped.
func (l *List) resolveAll(ctx context.Context) {
	names := map[string]Name{}
	for _, host := range l.hostsNow() {
		names[host] = l.resolve(ctx, host, l.state.Names[host])
	}
	l.state.Names = names
	l.resolveSelf()
}

// resolveMissing looks up the names not looked up yet (a list file
// gained one).
func (l *List) resolveMissing(ctx context.Context) {
	names := map[string]Name{}
	for _, host := range l.hostsNow() {
		n, ok := l.state.Names[host]
		if !ok {
			n = l.resolve(ctx, host, n)
		}
		names[host] = n
	}
	l.state.Names = names
}

func (l *List) resolve(ctx context.Context, host string, last Name) Name {
	ctx, cancel := context.WithTimeout(ctx, l.opt.Timeout)
	defer cancel()
	addrs, err := l.opt.Lookup(ctx, host)
	if err == nil && len(addrs) == 0 {
		err = errors.New("no address")
	}
	if err != nil {
		last.Err = err.Error()
		if last.Resolved.IsZero() {
			l.opt.Log.Error("ignoreip host name does not resolve: it ignores no address until it does", "host", host, "err", err)
		} else {
			l.opt.Log.Warn("ignoreip host name does not resolve; its last addresses stay in force", "host", host, "addrs", last.Addrs, "resolved", last.Resolved, "err", err)
		}
		return last
	}
	for i, a := range addrs {
		addrs[i] = a.WithZone("").Unmap()
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	return Name{Addrs: slices.Compact(addrs), Resolved: l.opt.Clock.Now()}
}

func (l *List) resolveSelf() {
	if !l.self {
		return
	}
	addrs, err := l.opt.Self()
	if err != nil {
		// Keep the last addresses, as for a name.
		l.state.SelfErr = err.Error()
		l.opt.Log.Warn("the host's own addresses not read; the last ones stay ignored", "err", err)
		return
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	l.state.Self, l.state.SelfErr = slices.Compact(addrs), ""
	if l.state.Self == nil {
		l.state.Self = []netip.Addr{}
	}
}

// interfaceAddrs are the addresses of the host's interfaces.
func interfaceAddrs() ([]netip.Addr, error) {
	ifs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("list interface addresses: %w", err)
	}
	var out []netip.Addr
	for _, a := range ifs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out, nil
}
