package watcher

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal has the kernel stop journalctl when the daemon dies
// without cancelling (kill -9): an orphaned journalctl --follow would
// otherwise live on until it next writes to the closed pipe. The signal is
// tied to the thread that started the child; should the Go runtime retire
// that thread, journalctl stops early and is restarted from the last cursor,
// which costs a restart, not a line.
func setParentDeathSignal(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGTERM
}
