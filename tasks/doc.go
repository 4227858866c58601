// Package tasks holds the registry of task types that a schedule refers to
// by name, and the built-in types log, exec and http.
//
// A task type is a [Func]. A program registers its own types before it hands
// control to the beat CLI:
//
//	tasks.Register("report", func(ctx context.Context, run tasks.Run) error {
//		var args struct{ Recipients []string `json:"recipients"` }
//		if err := run.DecodeArgs(&args); err != nil {
//			return err
//		}
//		...
//	}, tasks.WithArgs(validateReportArgs))
//
// Args come from users' YAML, so a Func must treat them as untrusted input:
// check them, and return an error that says how to fix them instead of
// panicking. A validator registered with [WithArgs] runs when the schedule is
// loaded, so a typo is reported at start-up rather than at the first tick,
// which may be days away.
//
// # Built-in task types
//
// log writes args.message (required) at args.level (debug, info, warn or
// error; default info) through the run's logger, with the task, tick,
// instance and fencing token as attributes.
//
// exec runs args.command, an argv list such as [sh, -c, "echo hi"] (no shell
// unless you write one), optionally in args.dir and with args.env added to
// beat's own environment and the variables of [Run.Env]. A non-zero exit fails
// the run. On Unix the command runs in a process group of its own under a
// supervising process (the program's own binary, re-executed; see package
// internal/supervisor). When the run's context ends, the group gets SIGTERM,
// then SIGKILL after args.kill_grace (default 5s, 0 for at once) or
// [LeaseLeft], whichever is sooner. When the command exits, what it left in
// its group is ended the same way before the run returns. If the program
// dies, even by SIGKILL, the supervisor kills the group at once, and on
// Linux also descendants that left it. The last 64 KiB of stdout and of
// stderr are logged when it exits.
//
// http sends one request to args.url (http or https) with args.method
// (default GET), args.headers and args.body, plus Idempotency-Key
// (<task>@<tick in RFC 3339, UTC>), Beat-Fencing-Token and User-Agent: beat.
// A status outside args.expect_status (default: any 2xx) fails the run.
//
// The scheduler may run one Func concurrently for different tasks and, under
// the Allow concurrency policy, for overlapping ticks of one task.
package tasks
