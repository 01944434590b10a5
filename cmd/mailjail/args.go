package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// permuteArgs moves a command's flags in front of its arguments, so that
// `mailjail test-filter FILTER FILE --json` works as the help shows it:
// urfave/cli stops reading flags at the first argument. Flags that take a
// value keep it; "--" ends flag handling as usual.
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
	head := append([]string{}, args[:i+1]...)
	var flags, rest []string
	for k := i + 1; k < len(args); k++ {
		a := args[k]
		switch {
		case a == "--":
			rest = append(rest, args[k:]...)
			k = len(args)
		case strings.HasPrefix(a, "-") && len(a) > 1:
			flags = append(flags, a)
			if takesValue(cmd.Flags, a) && k+1 < len(args) {
				k++
				flags = append(flags, args[k])
			}
		default:
			rest = append(rest, a)
		}
	}
	return append(append(head, flags...), rest...)
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
