// Command mailjail is a log-watching enforcement daemon for mail hosts in
// the spirit of fail2ban: it follows rspamd and Postfix logs, counts
// strikes per client address or account and bans offenders through
// rspamd's IP map (accounts through its user map). The same binary is the
// operator's CLI (list, show, ban, unban, suspend, release, allow,
// status, check, test-filter, test-alert, replay).
package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/urfave/cli/v2"

	"github.com/mailjail/mailjail/actions"
	"github.com/mailjail/mailjail/internal/config"
	"github.com/mailjail/mailjail/internal/control"
)

// version is set at build time with -ldflags "-X main.version=..."; a
// plain `go build` falls back to the module's VCS information.
var version = ""

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		rev, dirty := "", false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" {
			if dirty {
				rev += "-dirty"
			}
			return "dev-" + rev
		}
	}
	return "dev"
}

// exitError carries an exit code out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitf(code int, format string, args ...any) error {
	return &exitError{code: code, err: fmt.Errorf(format, args...)}
}

var configFlag = &cli.StringFlag{
	Name:    "config",
	Aliases: []string{"c"},
	Usage:   "configuration `FILE` (default: " + config.DefaultPath + " if it exists, else the embedded default)",
	EnvVars: []string{config.EnvPath},
}

var jsonFlag = &cli.BoolFlag{Name: "json", Usage: "print JSON (stable schema, see README) instead of text"}

func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:    "mailjail",
		Usage:   "ban abusive mail clients through rspamd's IP map, from rspamd and Postfix logs",
		Version: versionString(),
		Description: `mailjail follows rspamd and Postfix logs, counts events such as
'Ratelimit "ip" exceeded' per client address inside findtime, and past
maxretry bans the address for bantime by rewriting rspamd's multimap IP
file atomically. State lives in SQLite; the map is always rebuilt from it.

Accounts (SASL logins) are suspended through rspamd's multimap "user"
file (global.account_map_file): suspend, release, list --accounts,
show ACCOUNT, allow.

Exit codes: 0 ok (an empty list too), 1 not found / nothing to do, 2
usage, configuration or input error (an unreadable log file for
test-filter), 3 daemon or state unreachable.

Text output escapes control characters from log lines; --json output
is exact and keeps every key of its schema (see the README).`,
		Writer:               stdout,
		ErrWriter:            stderr,
		EnableBashCompletion: true,
		Flags:                []cli.Flag{configFlag},
		Commands: []*cli.Command{
			runCommand(), listCommand(), showCommand(), banCommand(), unbanCommand(), suspendCommand(), releaseCommand(), allowCommand(), outboxCommand(), statusCommand(), reloadCommand(), resumeCommand(),
			checkCommand(), testFilterCommand(), testAlertCommand(), replayCommand(), versionCommand(), completionCommand(), manCommand(), cleanupCommand(),
		},
		ExitErrHandler: func(*cli.Context, error) {},
	}
}

func main() {
	actions.Version = versionString() // webhooks' User-Agent
	control.Version = versionString() // checked against the daemon's on the socket
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

// run runs the CLI and maps errors to the documented exit codes.
func run(args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	err := app.Run(permuteArgs(app, args))
	if err == nil {
		return control.ExitOK
	}
	// Errors quote what they reject (an address, a file's line), which
	// may hold control characters.
	fmt.Fprintf(stderr, "mailjail: %s\n", safeLines(err.Error()))
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	// urfave/cli's own errors (unknown command or flag, bad flag value)
	// are usage errors.
	return control.ExitUsage
}

// loadConfig loads and validates the configuration named by --config.
func loadConfig(c *cli.Context) (*config.Config, error) {
	// c.String looks through the parent contexts for the global --config;
	// empty means $MAILJAIL_CONFIG, the default file or the embedded one.
	cfg, err := config.Load(c.String("config"))
	if err != nil {
		return nil, &exitError{code: control.ExitUsage, err: err}
	}
	return cfg, nil
}

// newLogger logs to w at level, in logfmt or (format "json") one JSON
// object a line. Under systemd (JOURNAL_STREAM set) it leaves out the
// time, which journald records itself.
func newLogger(w io.Writer, level, format string) *slog.Logger {
	var lv slog.Level
	lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv}
	if os.Getenv("JOURNAL_STREAM") != "" {
		opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}
	}
	if format == config.LogJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
