//go:build !linux

package watcher

import "os/exec"

// setParentDeathSignal does nothing where the kernel has no parent-death
// signal; an orphaned journalctl ends when it next writes to the closed
// pipe.
func setParentDeathSignal(*exec.Cmd) {}
