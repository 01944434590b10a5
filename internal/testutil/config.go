package testutil

import (
	"fmt"
	"strings"
)

// Config builds a mailjail TOML configuration for a test installation, so
// tests state the values they are about and nothing else. Strings are
// written with %q, which TOML reads back for the paths and names tests use.
type Config struct {
	Database string
	MapFile  string
	Socket   string
	Timezone string   // default UTC, so log times and the test's clock agree
	IgnoreIP []string // nil: the key is left out (mailjail's default applies)
	Global   string   // raw TOML lines added to [global]
	Jails    []Jail
}

// Jail is one [jail.NAME] table; empty fields are left out.
type Jail struct {
	Name     string
	Filter   string
	LogPath  []string
	MaxRetry int
	FindTime string
	BanTime  string
	Extra    string // raw TOML lines added to the table (rate_key, messages, ...)
}

// TOML renders the configuration.
func (c Config) TOML() string {
	var b strings.Builder
	b.WriteString("[global]\n")
	kv(&b, "database", c.Database)
	kv(&b, "map_file", c.MapFile)
	kv(&b, "socket", c.Socket)
	kv(&b, "timezone", or(c.Timezone, "UTC"))
	if c.IgnoreIP != nil {
		fmt.Fprintf(&b, "ignoreip = %s\n", list(c.IgnoreIP))
	}
	raw(&b, c.Global)
	for _, j := range c.Jails {
		fmt.Fprintf(&b, "\n[jail.%s]\n", j.Name)
		kv(&b, "filter", j.Filter)
		if j.LogPath != nil {
			fmt.Fprintf(&b, "logpath = %s\n", list(j.LogPath))
		}
		if j.MaxRetry != 0 {
			fmt.Fprintf(&b, "maxretry = %d\n", j.MaxRetry)
		}
		kv(&b, "findtime", j.FindTime)
		kv(&b, "bantime", j.BanTime)
		raw(&b, j.Extra)
	}
	return b.String()
}

func kv(b *strings.Builder, key, value string) {
	if value != "" {
		fmt.Fprintf(b, "%s = %q\n", key, value)
	}
}

func raw(b *strings.Builder, lines string) {
	if lines != "" {
		b.WriteString(strings.TrimRight(lines, "\n") + "\n")
	}
}

func list(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
