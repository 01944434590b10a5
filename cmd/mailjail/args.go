package main

import (
	"strings"

	"github.com/mailjail/mailjail/internal/control"
	"github.com/urfave/cli/v2"
)

// permuteArgs moves a command's flags in front of its arguments, so that
// `mailjail test-filter FILTER FILE --json` works as the help shows it:
// urfave/cli stops reading flags at the first argument. Global flags given
// after the command (`mailjail run --config FILE`) move in front of it.
// Flags that take a value keep it; "--" ends flag handling as usual. The
// flags of a subcommand (`allow add ENTRY --reason T`) are its own.
func permuteArgs(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	i := 1
	for i < len(args) && strings.HasPrefix(args[i], "-") {
		if takesValue(app.Flags, args[i]) {
			i++
		}
		i++
	}
	if i >= len(args) {
		return args
	}
	cmd := app.Command(args[i])
	if cmd == nil {
		return args
	}
	global := append([]string{}, args[1:i]...)
	// A command's subcommand (allow add) comes first, its flags after it.
	names := []string{args[i]}
	for i+1 < len(args) {
		sub := subcommand(cmd, args[i+1])
		if sub == nil {
			break
		}
		cmd, i = sub, i+1
		names = append(names, args[i])
	}
	var flags, rest []string
	for k := i + 1; k < len(args); k++ {
		a := args[k]
		switch {
		case a == "--":
			rest = append(rest, args[k:]...)
			k = len(args)
		case strings.HasPrefix(a, "-") && len(a) > 1:
			dst, from := &flags, cmd.Flags
			if !isFlag(cmd.Flags, a) && isFlag(app.Flags, a) {
				dst, from = &global, app.Flags
			}
			*dst = append(*dst, a)
			if takesValue(from, a) && k+1 < len(args) {
				k++
				*dst = append(*dst, args[k])
			}
		default:
			rest = append(rest, a)
		}
	}
	out := append([]string{args[0]}, global...)
	out = append(out, names...)
	return append(append(out, flags...), rest...)
}

// subcommand is cmd's subcommand called name, or nil.
func subcommand(cmd *cli.Command, name string) *cli.Command {
	for _, s := range cmd.Subcommands {
		if s.HasName(name) {
			return s
		}
	}
	return nil
}

// isFlag reports whether arg names one of flags.
func isFlag(flags []cli.Flag, arg string) bool {
	name, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return true
			}
		}
	}
	return false
}

// takesValue reports whether arg names a flag that needs a separate value.
func takesValue(flags []cli.Flag, arg string) bool {
	name := strings.TrimLeft(arg, "-")
	if strings.Contains(name, "=") {
		return false
	}
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				_, isBool := f.(*cli.BoolFlag)
				return !isBool
			}
		}
	}
	return false
}

// noArgs rejects arguments given to a command that takes none: a word
// after `list` (a jail name without --jail, say) was accepted and did
// nothing, so the operator saw every ban and believed it a filtered list.
func noArgs(c *cli.Context) error {
	if c.NArg() > 0 {
		return exitf(control.ExitUsage, "%s takes no arguments, got %q", c.Command.Name, c.Args().Slice())
	}
	return nil
}
