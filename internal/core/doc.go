// Package core holds the few types that several of mailjail's packages
// share and that belong to none of them: a log line with the exact
// position after it, the journal selection a jail reads, and the clock.
// It imports nothing of mailjail, so the watcher, the configuration, the
// engine and the store can all speak of a line or a position without
// importing each other.
package core
