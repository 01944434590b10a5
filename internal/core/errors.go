package core

import "errors"

// Errors every layer may return and the control protocol turns into exit
// codes; wrap them with context (fmt.Errorf("... %w", ErrNotFound)).
var (
	// ErrNotFound: the address, account or ban asked about does not exist.
	ErrNotFound = errors.New("not found")
	// ErrInvalid: the request itself is wrong (a bad address, an unknown
	// jail, a ban the policy refuses); retrying it cannot succeed.
	ErrInvalid = errors.New("invalid request")
)
