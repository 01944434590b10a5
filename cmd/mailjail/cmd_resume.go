package main

import (
	"fmt"
	"io"
	"os"
	"os/user"

	"github.com/urfave/cli/v2"

	"github.com/mailjail/mailjail/internal/control"
)

func resumeCommand() *cli.Command {
	return &cli.Command{
		Name:  "resume",
		Usage: "release the bans a tripped circuit breaker holds",
		Description: `The circuit breaker ([global] breaker_bans in breaker_window,
breaker_max_entries) trips when bans arrive far faster than usual, or
the targets would hold too many: typically a filter that matches every
client after an upgrade. Tripped, mailjail keeps recording bans but
gives the targets no new ones (nor runs their ban actions and webhooks)
and says so in status, systemd's status line and an urgent alert.
Check what it banned first (mailjail list, mailjail status); lift what
is wrong (mailjail unban --all --jail JAIL) and fix the filter; then
resume: the held bans that are still active are in every target when
the command returns, their actions are run, and counting starts afresh.
Who resumed (the user running the command) is logged and recorded.
A breaker that is not tripped is reported and the exit code is 1.
Works through the daemon's socket, or directly when no daemon runs.

JSON: {"ok", "error"?, "bans": [ban]}: the bans released.

Examples:
   mailjail status
   mailjail resume
   mailjail resume --json | jq '.bans | length'`,
		Flags: []cli.Flag{jsonFlag},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			return doChange(c, control.OpResume, control.Request{By: whoAmI()}, banChangeJSON, func(w io.Writer, resp *control.Response) {
				if !resp.OK {
					return
				}
				word := "bans"
				if len(resp.Bans) == 1 {
					word = "ban"
				}
				textf(w, "circuit breaker resumed: %d held %s given to the targets\n", len(resp.Bans), word)
			})
		},
	}
}

// whoAmI names the user running the command, for the record of a resume.
func whoAmI() string {
	uid := os.Getuid()
	if u, err := user.Current(); err == nil {
		return fmt.Sprintf("%s (uid %d)", u.Username, uid)
	}
	return fmt.Sprintf("uid %d", uid)
}
