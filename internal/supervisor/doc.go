// Package supervisor runs a command under a small supervising process, so
// that nothing the command starts outlives the program that asked for it,
// even when that program is killed with SIGKILL or by the OOM killer.
//
// The supervisor is the program's own binary, re-executed with argv[0] set
// to [Marker]. This package's init function recognises such a process (by
// argv[0], an environment variable and a Unix socket on fd 3, all three set
// only by [Cmd.Start]), runs the supervisor and exits before main runs. Any
// program that imports this package, directly or through package tasks,
// therefore works as its own supervisor, with no change to its main.
//
// # Processes
//
//	beat ── supervisor (argv[0] "beat-exec-supervisor", a process group of its own)
//	         └── command (a process group of its own, led by the command)
//	              └── whatever the command starts
//
// The supervisor starts the command with Setpgid and, on Linux, makes itself
// a child subreaper, so that descendants that leave the group (setsid) and
// lose their parent are re-parented to it rather than to init. It catches
// and ignores SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and SIGPIPE:
// beat decides what happens to the command. It is in a process group of
// its own, so that a signal to beat's whole group (a Ctrl-C, SIGSTOP or
// SIGKILL to the group) leaves it awake to end the command when beat can no
// longer hold its lease. It never writes to the command's stdout or stderr:
// those reach it as fds 4 and 5 and go to the command only.
//
// # Protocol
//
// beat and the supervisor talk over a Unix stream socketpair; the
// supervisor's end is its fd 3. beat holds its end (close-on-exec, so no
// other child of beat inherits it) until the run has ended. beat writes the
// command, one field per line, strings in Go's quoted form:
//
//	path "/bin/sh"
//	arg "sh"
//	arg "-c"
//	arg "sleep 30 & wait"
//	env "HOME=/home/beat"
//	dir "/srv"                 (optional)
//	kill_grace 5000000000      (nanoseconds)
//	start
//
// and later, while the run's lease holds (Cmd.Lease), at each renewal and
// at least every second:
//
//	lease <nanoseconds left>
//
// and, to stop it gracefully:
//
//	stop <grace in nanoseconds>
//
// The supervisor answers
//
//	started <pid>                    the command runs, leading group <pid>
//	error <op> <errno> "<detail>"    it could not (errno 0: not a system error)
//
// and, when everything is over, one of
//
//	exit <code> [stopped]            the command exited with code
//	signal <number> [core] [stopped] a signal ended it
//	error <op> <errno> "<detail>"    its end could not be established
//
// where "stopped" says that a stop request reached the command before it
// ended. Then it exits.
//
// What each side does:
//
//   - stop with grace g: SIGTERM to the command's group, SIGKILL to the group
//     g later unless everything has gone; g = 0 sends SIGKILL at once.
//   - The command exits by itself: whatever is left in its group gets SIGTERM
//     and, kill_grace later, SIGKILL. The supervisor reports only when the
//     group is empty, so a run ends when everything it started is gone.
//   - The lease it last heard of ends without news of a renewal (beat is
//     frozen by SIGSTOP or a paused VM, or hung): SIGKILL to the group at
//     once, since another replica may now run the task.
//   - End of file on fd 3 (beat is gone: crashed, SIGKILLed, OOM-killed):
//     SIGKILL to the group at once (a dead beat can no longer say how long
//     its lease holds), then exit without reporting.
//   - At every end, on Linux, the supervisor also SIGKILLs its remaining
//     children (descendants that escaped the group and were re-parented to
//     it), reaps them, and repeats until it has none, within a bound.
//   - The supervisor dies without reporting (someone SIGKILLed it): beat,
//     having reaped it, SIGKILLs the group of the pid it was told in
//     "started".
package supervisor

// Marker is the supervisor's argv[0], which is also what ps shows for it.
const Marker = "beat-exec-supervisor"
