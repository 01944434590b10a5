package config

import (
	"fmt"
	"time"

	"github.com/mailjail/mailjail/rules"
)

// CompileFilter resolves a jail's filter name: a [filter.NAME] table of the
// configuration first, then a built-in filter. The reserved names of the
// jails on mailjail's own bans have no filter.
func (c *Config) CompileFilter(name string) (*rules.Filter, error) {
	if name == FilterRecidive || name == FilterNetwork {
		return nil, fmt.Errorf("%q is the built-in rule on mailjail's own bans: it reads no log line", name)
	}
	if spec, ok := c.Filters[name]; ok {
		return rules.CompileFilter(name, spec)
	}
	f, err := rules.BuiltinFilter(name)
	if err != nil {
		return nil, fmt.Errorf("no [filter.%s] and %w", name, err)
	}
	return f, nil
}

// EnabledJails returns the jails that run.
func (c *Config) EnabledJails() []*Jail {
	var out []*Jail
	for _, j := range c.Jails {
		if j.Enabled {
			out = append(out, j)
		}
	}
	return out
}

// Jail returns the jail called name, or nil.
func (c *Config) Jail(name string) *Jail {
	for _, j := range c.Jails {
		if j.Name == name {
			return j
		}
	}
	return nil
}

// Location is the time zone for log timestamps that carry none.
func (c *Config) Location() *time.Location {
	if c.Global.Timezone == "" {
		return time.Local
	}
	loc, err := time.LoadLocation(c.Global.Timezone)
	if err != nil {
		return time.Local
	}
	return loc
}
