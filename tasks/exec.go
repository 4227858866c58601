package tasks

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	// execOutputLimit bounds what is kept of each of stdout and stderr.
	execOutputLimit = 64 << 10
	// execWaitDelay bounds how long a run waits for output pipes held open
	// by processes beyond reach (on Unix: that escaped the command's process
	// group where no subreaper catches them, or got the pipe by other
	// means). Without it such a process would hold the run, and its lock,
	// forever. On Unix it starts only once the supervisor has ended, which
	// is after the kill grace, so it never cuts the grace short.
	execWaitDelay = 5 * time.Second
	// defaultKillGrace is args.kill_grace when omitted: enough for most
	// programs to flush and exit on SIGTERM, yet short next to a lease
	// (Docker's 10s or systemd's 90s would often outlast one).
	defaultKillGrace = 5 * time.Second
	// stderrLines and stderrBytes bound the stderr quoted in a failed run's
	// error, which ends up in one log line.
	stderrLines = 10
	stderrBytes = 1 << 10
)

const commandExample = `command: [sh, -c, "echo hi"]`

type execArgs struct {
	command   []string
	env       map[string]string
	dir       string
	killGrace time.Duration
}

func parseExecArgs(args map[string]any) (execArgs, error) {
	var a execArgs
	errs := checkKnown(args, "command", "env", "dir", "kill_grace")

	command, cerrs := commandArg(args)
	a.command = command
	errs = append(errs, cerrs...)

	env, eerrs := stringMap(args, "env")
	errs = append(errs, eerrs...)
	for _, k := range sortedKeys(env) {
		switch {
		case k == "" || strings.ContainsAny(k, "=\x00"):
			errs = append(errs, fmt.Errorf("args.env: %q is not a variable name; names must be non-empty and contain no '=' or NUL", k))
		case slices.Contains(envNames, k):
			errs = append(errs, fmt.Errorf("args.env.%s: beat sets this variable for every run; choose another name", k))
		case strings.ContainsRune(env[k], 0):
			errs = append(errs, fmt.Errorf("args.env.%s: contains a NUL byte, which no environment variable can hold", k))
		}
	}
	a.env = env

	dir, ok, err := optString(args, "dir")
	switch {
	case err != nil:
		errs = append(errs, err)
	case ok && dir == "":
		errs = append(errs, errors.New("args.dir: empty; omit it to run in beat's own working directory"))
	case strings.ContainsRune(dir, 0):
		errs = append(errs, errors.New("args.dir: contains a NUL byte, which no path can hold"))
	}
	a.dir = dir

	grace, err := killGraceArg(args)
	if err != nil {
		errs = append(errs, err)
	}
	a.killGrace = grace
	return a, errors.Join(errs...)
}

// killGraceArg reads args.kill_grace: how long the command's processes get
// between SIGTERM and SIGKILL.
func killGraceArg(args map[string]any) (time.Duration, error) {
	v, ok := args["kill_grace"]
	if !ok {
		return defaultKillGrace, nil
	}
	const form = `write a duration with a unit, e.g. kill_grace: 10s, or 0 for SIGKILL at once`
	switch v := v.(type) {
	case string:
		d, err := time.ParseDuration(v)
		switch {
		case err != nil:
			return 0, fmt.Errorf("args.kill_grace: %q is not a duration; %s", v, form)
		case d < 0:
			return 0, fmt.Errorf("args.kill_grace: %q is negative; %s", v, form)
		}
		return d, nil
	case time.Duration:
		// A Go caller's natural type.
		if v < 0 {
			return 0, fmt.Errorf("args.kill_grace: %v is negative; %s", v, form)
		}
		return v, nil
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		// YAML reads `kill_grace: 0` as a number; zero needs no unit.
		if f, err := strconv.ParseFloat(fmt.Sprint(v), 64); err == nil && f == 0 {
			return 0, nil
		}
		return 0, fmt.Errorf("args.kill_grace: got %s, which has no unit; %s", describe(v), form)
	case nil:
		return 0, fmt.Errorf("args.kill_grace: null; omit it for the default %v, or %s", defaultKillGrace, form)
	}
	return 0, fmt.Errorf("args.kill_grace: got %s; %s", describe(v), form)
}

func commandArg(args map[string]any) ([]string, []error) {
	v, ok := args["command"]
	var list []any
	switch v := v.(type) {
	case nil:
		if ok {
			return nil, []error{errors.New("args.command: null; write a list, e.g. " + commandExample)}
		}
		return nil, []error{errors.New("args.command: required; write a list, e.g. " + commandExample)}
	case string:
		// The commonest mistake: a shell line. Splitting it ourselves would
		// invent a quoting language; running a shell would surprise anyone
		// who passes untrusted text. Show the explicit form with their text.
		return nil, []error{fmt.Errorf("args.command: got the string %q; write a list (argv; no shell runs unless you ask for one), e.g. command: [sh, -c, %q]", v, v)}
	case []any:
		list = v
	case []string:
		// A Go caller's natural type; YAML gives []any.
		for _, s := range v {
			list = append(list, s)
		}
	default:
		return nil, []error{fmt.Errorf("args.command: got %s; write a list, e.g. %s", describe(v), commandExample)}
	}
	if len(list) == 0 {
		return nil, []error{errors.New("args.command: empty list; write the program and its arguments, e.g. " + commandExample)}
	}
	var errs []error
	argv := make([]string, 0, len(list))
	for i, e := range list {
		s, ok := e.(string)
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("args.command[%d]: got %s, want a string%s", i, describe(e), scalarHint(e)))
		case i == 0 && s == "":
			errs = append(errs, errors.New("args.command[0]: empty; it names the program to run, e.g. "+commandExample))
		case strings.ContainsRune(s, 0):
			errs = append(errs, fmt.Errorf("args.command[%d]: contains a NUL byte, which no process argument can hold", i))
		}
		argv = append(argv, s)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return argv, nil
}

func validateExecArgs(args map[string]any) error {
	_, err := parseExecArgs(args)
	return err
}

// runExec is the built-in "exec" task: it runs args.command as a child
// process and fails the run if it exits non-zero.
func runExec(ctx context.Context, run Run) error {
	a, err := parseExecArgs(run.Args)
	if err != nil {
		return fmt.Errorf("exec task %q: %w", run.Task, err)
	}
	stdout, stderr := newTailBuffer(execOutputLimit), newTailBuffer(execOutputLimit)
	proc, err := startExec(ctx, run, a, stdout, stderr)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("exec task %q: not started: %w", run.Task, context.Cause(ctx))
		}
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
			return fmt.Errorf("exec task %q: start %q: %w; check that args.command[0] names an installed program (or give its full path) and that args.dir exists", run.Task, a.command[0], err)
		}
		return fmt.Errorf("exec task %q: start %q: %w", run.Task, a.command[0], err)
	}
	if run.Log().Enabled(ctx, slog.LevelDebug) {
		pid, supervisor := proc.Pids()
		attrs := []slog.Attr{slog.Int("pid", pid)}
		if supervisor > 0 {
			attrs = append(attrs, slog.Int("supervisor_pid", supervisor))
		}
		run.Log().LogAttrs(ctx, slog.LevelDebug, "exec started", attrs...)
	}
	err = proc.Wait()
	if grace, ended, ok := proc.Stopped(); ok {
		run.Log().LogAttrs(ctx, slog.LevelInfo, "exec cancelled",
			slog.Duration("grace", grace),
			slog.String("ended", ended),
		)
	}
	res := execResult(ctx, run, a.command[0], err, stderr)
	logOutput(ctx, run, "stdout", stdout)
	// A failed run's error holds the end of stderr: logged there, not
	// twice, unless the error holds only part of it.
	var exit *exitError
	if !errors.As(res, &exit) || !exit.allStderr {
		logOutput(ctx, run, "stderr", stderr)
	}
	return res
}

// exitError is the error of a command that exited with a failure: its
// message says how, and holds the last lines of stderr.
type exitError struct {
	msg       string
	err       error // the exit's own error, for errors.As
	allStderr bool  // msg holds all that was written to stderr
}

func (e *exitError) Error() string { return e.msg }
func (e *exitError) Unwrap() error { return e.err }

// execProcess is a started exec command.
type execProcess interface {
	// Wait waits for the command; its error is nil on exit status 0, and
	// has an ExitCode method when the command failed or was killed.
	Wait() error
	// Stopped reports whether cancellation reached the command, with the
	// grace it gave between SIGTERM and SIGKILL and how the command ended.
	Stopped() (grace time.Duration, ended string, ok bool)
	// Pids returns the command's pid and its supervisor's (0: none).
	Pids() (command, supervisor int)
}

// stopGrace is how long a cancelled command gets between SIGTERM and
// SIGKILL: its kill_grace, but no longer than the run may still take
// before another replica may take its task.
func stopGrace(ctx context.Context, killGrace time.Duration) time.Duration {
	if left, ok := LeaseLeft(ctx); ok && left < killGrace {
		return left
	}
	return killGrace
}

// execEnv gives the child beat's own environment, then args.env, then the
// run's identity, so that neither an inherited nor a configured variable
// can shadow BEAT_* (exec.Cmd keeps the last of duplicate names).
func execEnv(run Run, extra map[string]string) []string {
	env := os.Environ()
	for _, k := range sortedKeys(extra) {
		env = append(env, k+"="+extra[k])
	}
	return append(env, run.Env()...)
}

func execResult(ctx context.Context, run Run, program string, err error, stderr *tailBuffer) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("exec task %q: %q cancelled, its process group killed: %w", run.Task, program, context.Cause(ctx))
	}
	if errors.Is(err, exec.ErrWaitDelay) {
		// The command itself succeeded; only output written after it exited
		// was lost, which is not worth failing the run over.
		run.Log().LogAttrs(ctx, slog.LevelWarn, "exec: command exited but a background process kept its output open; output after exit discarded",
			slog.Duration("wait_delay", execWaitDelay))
		return nil
	}
	// *exec.ExitError, or the supervisor's ExitError on Unix.
	var exitErr interface {
		error
		ExitCode() int
	}
	if !errors.As(err, &exitErr) {
		return fmt.Errorf("exec task %q: %q: %w", run.Task, program, err)
	}
	var msg string
	if code := exitErr.ExitCode(); code >= 0 {
		msg = fmt.Sprintf("exec task %q: %q exited with code %d", run.Task, program, code)
	} else {
		msg = fmt.Sprintf("exec task %q: %q was terminated (%s)", run.Task, program, exitErr)
	}
	kept, dropped := stderr.tail()
	last := lastLines(kept, stderrLines, stderrBytes)
	all := dropped == 0 && last == strings.TrimRight(string(kept), "\n")
	switch {
	case last == "":
		msg += "; it wrote nothing to stderr"
	case all:
		msg += "; stderr:\n" + last
	default:
		msg += "; last lines of stderr:\n" + last
	}
	return &exitError{msg: msg, err: err, allStderr: all}
}

// logOutput logs what the child wrote to one stream, as one record, after it
// exits: per-line records would interleave with other tasks' logs.
func logOutput(ctx context.Context, run Run, stream string, buf *tailBuffer) {
	kept, dropped := buf.tail()
	if len(kept) == 0 && dropped == 0 {
		return
	}
	run.Log().LogAttrs(ctx, slog.LevelInfo, "exec output",
		slog.String("stream", stream),
		slog.String("output", string(kept)),
		slog.Int64("dropped_bytes", dropped),
	)
}
