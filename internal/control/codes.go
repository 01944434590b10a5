package control

import (
	"errors"

	"github.com/mailjail/mailjail/internal/core"
	"github.com/mailjail/mailjail/internal/enforce"
)

// Exit codes of the CLI, carried in every response.
const (
	ExitOK          = 0
	ExitNotFound    = 1 // not found / nothing to do
	ExitUsage       = 2 // usage or configuration error
	ExitUnreachable = 3 // daemon or state unreachable, or not saved
)

// CodeOf is the exit code for err: usage for a request that can never
// succeed, not-found for an address or ban that does not exist,
// unreachable for everything else (the state could not be read or
// saved).
func CodeOf(err error) int {
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, core.ErrInvalid):
		return ExitUsage
	case errors.Is(err, enforce.ErrNotEnforced):
		// Worse than an address that was not banned: what was done is
		// not in force yet.
		return ExitUnreachable
	case errors.Is(err, core.ErrNotFound):
		return ExitNotFound
	}
	return ExitUnreachable
}
