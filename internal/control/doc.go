// Package control is the protocol between the mailjail CLI and a running
// daemon: HTTP over a unix socket (mode 0600, or 0660 for a configured
// group), one JSON request and one JSON response per call. It owns the
// wire types, the operation names and the exit codes; the daemon answers
// with domain values (store.Ban) through Handler, and this package alone
// turns them into what travels, so nothing is parsed back.
package control
