//go:build unix

package tasks

import (
	"context"
	"io"
	"os/exec"
	"time"

	"github.com/beatlock/beat/internal/supervisor"
)

// startExec runs the command under a supervisor process (package
// internal/supervisor): it gives the command a process group of its own,
// stops it with SIGTERM and then SIGKILL when ctx is done, ends what it
// leaves behind when it exits, and kills it all if beat dies, even by
// SIGKILL, or if the run's lease ends while beat is frozen. Killing only the child would leave what it started (`sleep 30 &`
// in a shell, a pipeline's other members) running after the run has ended
// and its lock is gone.
func startExec(ctx context.Context, run Run, a execArgs, stdout, stderr io.Writer) (execProcess, error) {
	// Resolved here, as exec.Command resolves it, so that a missing program
	// reads exactly as it always has.
	probe := exec.Command(a.command[0])
	if probe.Err != nil {
		return nil, probe.Err
	}
	cmd := &supervisor.Cmd{
		Path:      probe.Path,
		Args:      a.command,
		Env:       execEnv(run, a.env),
		Dir:       a.dir,
		Stdout:    stdout,
		Stderr:    stderr,
		KillGrace: a.killGrace,
		StopGrace: func() time.Duration { return stopGrace(ctx, a.killGrace) },
		WaitDelay: execWaitDelay,
	}
	if l, ok := LeaseOf(ctx); ok {
		// The supervisor kills the command by itself when the lease ends
		// without news of a renewal: beat may be frozen.
		cmd.Lease = l
	}
	if err := cmd.Start(ctx); err != nil {
		return nil, err
	}
	return cmd, nil
}
