//go:build unix

package tasks

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// killProcessGroupOnCancel puts the child in a process group of its own and
// makes cancellation kill that whole group. Killing only the child would
// leave what it started (`sleep 30 &` in a shell, a pipeline's other
// members) running after the run has ended and its lock is gone.
func killProcessGroupOnCancel(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// With Setpgid the group id is the child's pid. Cancel can race with
		// the child's exit; the group then either still has members (the
		// ones we want dead) or is gone (ESRCH).
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone
		}
		return err
	}
}
