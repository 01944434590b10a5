// Package redisconn opens the one Redis client a mailjail daemon uses, from
// the [redis] section of its configuration: a single server (TCP or a unix
// socket) or a Sentinel-managed master, with an ACL user and password (or a
// password file), TLS with a private CA, and one timeout for dialling,
// reading and writing.
//
// Open makes no connection: the daemon must start, read logs and ban while
// Redis is down, and the targets that use the client catch up (they are
// retried) once it is back.
package redisconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// DefaultTimeout bounds dialling and each read and write when
// Config.Timeout is zero: long enough for a loaded server across a LAN,
// short enough that a dead one fails a sync (which is then retried) well
// within the daemon's stop timeout.
const DefaultTimeout = 3 * time.Second

// Config is where Redis is and how to log in. It mirrors the [redis]
// section of the configuration without its key prefix, which belongs to
// the users of the client.
type Config struct {
	// Address is host:port, or the absolute path of a unix socket. It is
	// ignored when Sentinels are set.
	Address string
	// Sentinels are the host:port of the Sentinels that know MasterName;
	// the client follows the master they name across failovers.
	Sentinels  []string
	MasterName string
	// Username is the ACL user (empty: the default user). Password is its
	// password; PasswordFile, when set, is read instead (a trailing
	// newline is dropped), so that the secret need not sit in the
	// configuration file.
	Username, Password, PasswordFile string
	// DB is the logical database (SELECT) on a server.
	DB int
	// TLS turns on TLS to the server (and the Sentinels); CAFile, when
	// set, is the PEM bundle of the CAs to trust instead of the system's.
	TLS    bool
	CAFile string
	// Timeout bounds dialling and each read and write; zero is
	// DefaultTimeout.
	Timeout time.Duration
}

// Open returns a client for c without connecting. Errors are about c
// itself: a missing address, an unreadable password or CA file.
func Open(c Config) (redis.UniversalClient, error) {
	quietOnce.Do(func() { redis.SetLogger(debugLogger{}) })
	opts := &redis.UniversalOptions{
		DB:       c.DB,
		Username: c.Username,
		Password: c.Password,
		// Sync and Drifted pass contexts with deadlines; honour them.
		ContextTimeoutEnabled: true,
		// One dial per attempt: the targets that use the client retry with
		// their own backoff, and a dead server should fail a sync at once.
		DialerRetries: 1,
		// Neither is of use here, and on Debian 12's Redis 7.0 the
		// handshake commands they send only fail.
		DisableIdentity:          true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = c.timeout(), c.timeout(), c.timeout()
	switch {
	case len(c.Sentinels) > 0:
		if c.MasterName == "" {
			return nil, errors.New("redis: sentinels need a master name")
		}
		opts.Addrs = c.Sentinels
		opts.MasterName = c.MasterName
	case c.MasterName != "":
		return nil, fmt.Errorf("redis: master name %q needs sentinels", c.MasterName)
	case c.Address == "":
		return nil, errors.New("redis: no address")
	case strings.HasPrefix(c.Address, "/"):
		if c.TLS {
			return nil, fmt.Errorf("redis: TLS over the unix socket %s", c.Address)
		}
		path := c.Address
		opts.Addrs = []string{path}
		opts.Dialer = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}
	default:
		if _, _, err := net.SplitHostPort(c.Address); err != nil {
			return nil, fmt.Errorf("redis: address %q: %w", c.Address, err)
		}
		opts.Addrs = []string{c.Address}
	}
	if c.PasswordFile != "" {
		b, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("redis: password file: %w", err)
		}
		opts.Password = strings.TrimRight(string(b), "\r\n")
	}
	if c.TLS {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if c.CAFile != "" {
			pem, err := os.ReadFile(c.CAFile)
			if err != nil {
				return nil, fmt.Errorf("redis: CA file: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("redis: CA file %s: no PEM certificate in it", c.CAFile)
			}
		}
		opts.TLSConfig = tc
	} else if c.CAFile != "" {
		return nil, fmt.Errorf("redis: CA file %s given without TLS", c.CAFile)
	}
	return redis.NewUniversalClient(opts), nil
}

// quietOnce routes go-redis's own messages (each failed dial, each
// Sentinel switch), which it prints to stderr by default, to slog's debug
// level once per process: the errors reach the callers, which log them.
var quietOnce sync.Once

type debugLogger struct{}

func (debugLogger) Printf(ctx context.Context, format string, v ...any) {
	slog.DebugContext(ctx, "redis client: "+fmt.Sprintf(format, v...))
}

func (c Config) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}
