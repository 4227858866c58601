package tasks

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"
)

// Func runs one tick of a task. ctx is cancelled when the run's timeout
// passes, on shutdown, or with cause lock.ErrLost when the lock is lost
// (context.Cause tells which). Return an error to fail the run.
//
// A Func must return soon after ctx is done: once the lock is lost another
// replica may already be running the next tick.
type Func func(ctx context.Context, run Run) error

// Run describes one scheduled execution.
type Run struct {
	Task         string         // the task's name in the schedule
	Type         string         // the registered type name
	Args         map[string]any // decoded YAML args (nested maps map[string]any, lists []any); never nil
	ScheduledAt  time.Time      // the tick's nominal instant, UTC (never includes jitter)
	InstanceID   string         // the replica running this tick
	FencingToken uint64         // strictly increasing per task; hand it to downstream writes
	// Logger, when set, already carries the run's task, tick, instance and
	// token (the scheduler sets it so). May be nil: use run.Log().
	Logger *slog.Logger
}

// Log returns the run's logger; when none was set, slog.Default() with the
// run's task, tick, instance and token, so that a Func never has to check
// for nil and every line names its run either way.
func (r Run) Log() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default().With("task", r.Task, "tick", r.ScheduledAt.UTC(), "instance", r.InstanceID, "token", r.FencingToken)
}

// Env returns the variables that identify the run to a child process:
// BEAT_TASK, BEAT_SCHEDULED_AT (RFC 3339, UTC), BEAT_INSTANCE_ID and
// BEAT_FENCING_TOKEN (decimal), each as "KEY=value".
func (r Run) Env() []string {
	return []string{
		"BEAT_TASK=" + r.Task,
		"BEAT_SCHEDULED_AT=" + formatTick(r.ScheduledAt),
		"BEAT_INSTANCE_ID=" + r.InstanceID,
		"BEAT_FENCING_TOKEN=" + strconv.FormatUint(r.FencingToken, 10),
	}
}

// envNames are the variables Env sets; exec refuses to let args.env shadow
// them, since downstream systems trust them to fence stale runs.
var envNames = []string{"BEAT_TASK", "BEAT_SCHEDULED_AT", "BEAT_INSTANCE_ID", "BEAT_FENCING_TOKEN"}

// formatTick renders a tick the same way everywhere it leaves the process
// (environment, Idempotency-Key), because receivers compare these strings to
// deduplicate. Whole seconds, the common case, stay short and readable; a
// sub-second tick keeps its precision so that distinct ticks never collide.
func formatTick(t time.Time) string {
	t = t.UTC()
	if t.Nanosecond() == 0 {
		return t.Format(time.RFC3339)
	}
	return t.Format(time.RFC3339Nano)
}

// DecodeArgs decodes r.Args into v (a pointer to a struct or map) like the
// package-level [DecodeArgs]; errors also name the task.
func (r Run) DecodeArgs(v any) error {
	if err := DecodeArgs(r.Args, v); err != nil {
		return fmt.Errorf("task %q: %w", r.Task, err)
	}
	return nil
}
