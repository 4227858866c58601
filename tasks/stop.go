package tasks

import (
	"context"
	"time"
)

type stopGraceKey struct{}

// WithStopGrace returns a copy of ctx that tells a run how long it may still
// take to stop once ctx is done: grace is asked at that moment, and answers
// what is left of the run's lease (a lease already lost leaves nothing).
// The scheduler sets it for every run; a task that cleans up after
// cancellation (exec sends SIGTERM, then SIGKILL) bounds its cleanup by it.
func WithStopGrace(ctx context.Context, grace func() time.Duration) context.Context {
	return context.WithValue(ctx, stopGraceKey{}, grace)
}

// StopGrace reports how long a run whose ctx is done may still take to
// return before another replica may take its task; never negative. ok is
// false when ctx carries no such bound (a run started outside a scheduler).
func StopGrace(ctx context.Context) (grace time.Duration, ok bool) {
	f, ok := ctx.Value(stopGraceKey{}).(func() time.Duration)
	if !ok || f == nil {
		return 0, false
	}
	return max(f(), 0), true
}
