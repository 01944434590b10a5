package control

import (
	"errors"
	"fmt"
	"net/http"
)

// Version is this binary's version, set by main; the CLI and the daemon
// send it in VersionHeader with every request and response. After an
// upgrade the new CLI may meet the old daemon until it is restarted: the
// wire types may have changed, so instead of misreading each other they
// refuse with both versions named.
var Version = "dev"

// VersionHeader carries Version on the control socket. A request without
// it (curl, a script) is served: the protocol is documented for them.
const VersionHeader = "Mailjail-Version"

// ErrVersion means the CLI and the daemon are of different versions.
var ErrVersion = errors.New("version mismatch")

func versionError(cli, daemon string) error {
	if daemon == "" {
		daemon = "unknown (older than version checks)"
	}
	return fmt.Errorf("%w: this CLI is mailjail %s, the daemon is mailjail %s: restart the daemon (systemctl restart mailjail) or use the CLI of its version", ErrVersion, cli, daemon)
}

// checkVersion wraps the server's handler: a request naming another
// version is refused; every response names the daemon's.
func checkVersion(version string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(VersionHeader, version)
		if v := r.Header.Get(VersionHeader); v != "" && v != version {
			reply(w, Response{Code: ExitUnreachable, Error: versionError(v, version).Error()})
			return
		}
		h.ServeHTTP(w, r)
	})
}
