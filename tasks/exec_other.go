//go:build !unix

package tasks

import (
	"context"
	"io"
	"os/exec"
	"time"
)

// startExec runs the command as a direct child and, when ctx is done, kills
// that child only: there is no portable process group here, nor SIGTERM,
// so args.kill_grace does not apply, and what the command starts can
// outlive the run, and beat.
func startExec(ctx context.Context, run Run, a execArgs, stdout, stderr io.Writer) (execProcess, error) {
	cmd := exec.CommandContext(ctx, a.command[0], a.command[1:]...)
	cmd.Dir = a.dir
	cmd.Env = execEnv(run, a.env)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.WaitDelay = execWaitDelay
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return directChild{cmd}, nil
}

type directChild struct{ cmd *exec.Cmd }

func (d directChild) Wait() error { return d.cmd.Wait() }

func (directChild) Stopped() (time.Duration, string, bool) { return 0, "", false }

func (d directChild) Pids() (command, supervisor int) { return d.cmd.Process.Pid, 0 }
