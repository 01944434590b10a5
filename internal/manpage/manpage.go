// Package manpage renders mailjail's man pages from the definitions they
// describe: mailjail(1) from the CLI's urfave/cli App, mailjail.toml(5)
// from config.Reference, the key table the config package tests against
// its decoder. Nothing is written by hand, so the pages cannot drift.
package manpage

import (
	"fmt"
	"strings"

	"github.com/cpuguy83/go-md2man/v2/md2man"
	"github.com/urfave/cli/v2"

	"github.com/mailjail/mailjail/internal/config"
)

// Command renders mailjail(1) from the CLI's App.
func Command(app *cli.App) (string, error) {
	s, err := app.ToManWithSection(1)
	if err != nil {
		return "", fmt.Errorf("render mailjail(1): %w", err)
	}
	return s, nil
}

// Config renders mailjail.toml(5) from config.Reference.
func Config() string {
	var b strings.Builder
	b.WriteString("% mailjail.toml 5\n\n# NAME\n\nmailjail.toml - configuration of mailjail\n\n")
	b.WriteString("# SYNOPSIS\n\n" + md(config.DefaultPath) + "\n\n")
	b.WriteString("# DESCRIPTION\n\n")
	b.WriteString("mailjail reads TOML from " + md(config.DefaultPath) + ", from **--config** *FILE*, or from the file named by **$" +
		config.EnvPath + "**; without any it uses its embedded default. Every problem (syntax, unknown key, bad value) is reported as " +
		"*file:line: key: problem* by **mailjail check** and at start, all of them at once.\n\n")
	b.WriteString("Durations are written 30s, 10m, 1h, 1d, 1w or 1h30m, at most 100 years; a ban length may be \"permanent\". " +
		"Jail, filter and webhook names (NAME below) are letters, digits, '.', '_' and '-'.\n\n")
	for _, s := range config.Reference {
		b.WriteString("# [" + strings.ToUpper(s.Name) + "]\n\n" + md(s.Intro) + "\n\n")
		for _, k := range s.Keys {
			fmt.Fprintf(&b, "**%s** = *%s*\n", md(k.Key), md(k.Type))
			def := ""
			if k.Default != "" {
				def = " Default: " + md(k.Default) + "."
			}
			fmt.Fprintf(&b, ": %s%s\n\n", md(k.Doc), def)
		}
	}
	b.WriteString("# SEE ALSO\n\n**mailjail**(1), **rspamd**(8), **postfix**(1)\n")
	return string(md2man.Render([]byte(b.String())))
}

// md escapes the characters markdown would read as markup.
var md = strings.NewReplacer(`\`, `\\`, `*`, `\*`, `_`, `\_`, "`", "\\`", `<`, `\<`, `[`, `\[`, `]`, `\]`, `#`, `\#`).Replace
