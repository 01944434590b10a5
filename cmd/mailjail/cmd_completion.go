package main

import (
	"fmt"

	"github.com/mailjail/mailjail/internal/control"
	"github.com/urfave/cli/v2"
)

// The scripts ask mailjail itself for completions (urfave/cli's
// --generate-bash-completion), so they follow the commands and flags of
// the installed binary.
const bashCompletion = `# bash completion for mailjail
_mailjail() {
    local cur opts
    COMPREPLY=()
    cur="${COMP_WORDS[COMP_CWORD]}"
    if [[ "$cur" == "-"* ]]; then
        opts=$("${COMP_WORDS[@]:0:$COMP_CWORD}" "$cur" --generate-bash-completion 2>/dev/null)
    else
        opts=$("${COMP_WORDS[@]:0:$COMP_CWORD}" --generate-bash-completion 2>/dev/null)
    fi
    COMPREPLY=($(compgen -W "${opts}" -- "${cur}"))
    return 0
}
complete -o bashdefault -o default -F _mailjail mailjail
`

const zshCompletion = `#compdef mailjail
_mailjail() {
    local -a opts
    local cur=${words[-1]}
    if [[ "$cur" == "-"* ]]; then
        opts=("${(@f)$(${words[@]:0:#words[@]-1} ${cur} --generate-bash-completion 2>/dev/null)}")
    else
        opts=("${(@f)$(${words[@]:0:#words[@]-1} --generate-bash-completion 2>/dev/null)}")
    fi
    if [[ "${opts[1]}" != "" ]]; then
        _describe 'values' opts
    else
        _files
    fi
}
compdef _mailjail mailjail
`

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script",
		ArgsUsage: "bash|zsh|fish",
		Description: `Examples:
   mailjail completion bash > /etc/bash_completion.d/mailjail
   mailjail completion zsh > "${fpath[1]}/_mailjail"
   mailjail completion fish > ~/.config/fish/completions/mailjail.fish`,
		Action: func(c *cli.Context) error {
			switch c.Args().First() {
			case "bash":
				fmt.Fprint(c.App.Writer, bashCompletion)
			case "zsh":
				fmt.Fprint(c.App.Writer, zshCompletion)
			case "fish":
				// fish's is static, written by urfave/cli from the
				// command and flag definitions of this binary.
				s, err := c.App.ToFishCompletion()
				if err != nil {
					return fmt.Errorf("fish completion: %w", err)
				}
				fmt.Fprint(c.App.Writer, s)
			default:
				return exitf(control.ExitUsage, "completion takes bash, zsh or fish")
			}
			return nil
		},
	}
}
