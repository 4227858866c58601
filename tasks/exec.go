package tasks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"
)

const (
	// execOutputLimit bounds what is kept of each of stdout and stderr.
	execOutputLimit = 64 << 10
	// execWaitDelay bounds how long a run waits, after its command exits or
	// is killed, for output pipes held open by processes that escaped its
	// process group (e.g. with setsid). Without it such a process would
	// hold the run, and its lock, forever.
	execWaitDelay = 5 * time.Second
	// stderrLines and stderrBytes bound the stderr quoted in a failed run's
	// error, which ends up in one log line.
	stderrLines = 10
	stderrBytes = 1 << 10
)

const commandExample = `command: [sh, -c, "echo hi"]`

type execArgs struct {
	command []string
	env     map[string]string
	dir     string
}

func parseExecArgs(args map[string]any) (execArgs, error) {
	var a execArgs
	errs := checkKnown(args, "command", "env", "dir")

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
	return a, errors.Join(errs...)
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
	cmd := exec.CommandContext(ctx, a.command[0], a.command[1:]...)
	cmd.Dir = a.dir
	cmd.Env = execEnv(run, a.env)
	stdout, stderr := newTailBuffer(execOutputLimit), newTailBuffer(execOutputLimit)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.WaitDelay = execWaitDelay
	killProcessGroupOnCancel(cmd)

	if err := cmd.Start(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("exec task %q: not started: %w", run.Task, context.Cause(ctx))
		}
		return fmt.Errorf("exec task %q: start %q: %w; check that args.command[0] names an installed program (or give its full path) and that args.dir exists", run.Task, a.command[0], err)
	}
	err = cmd.Wait()
	logOutput(ctx, run, "stdout", stdout)
	logOutput(ctx, run, "stderr", stderr)
	return execResult(ctx, run, a.command[0], err, stderr)
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
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		return fmt.Errorf("exec task %q: %q: %w", run.Task, program, err)
	}
	var msg string
	if code := exitErr.ExitCode(); code >= 0 {
		msg = fmt.Sprintf("exec task %q: %q exited with code %d", run.Task, program, code)
	} else {
		msg = fmt.Sprintf("exec task %q: %q was terminated (%s)", run.Task, program, exitErr)
	}
	kept, _ := stderr.tail()
	if last := lastLines(kept, stderrLines, stderrBytes); last != "" {
		msg += "; last lines of stderr:\n" + last
	} else {
		msg += "; it wrote nothing to stderr"
	}
	return fmt.Errorf("%s: %w", msg, err)
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
