package tasks

import (
	"context"
	"time"
)

type leaseLeftKey struct{}

// WithLeaseLeft returns a copy of ctx through which a run can ask how long
// its lease still holds: left is asked each time, and answers what is left
// of the lease as renewed so far (nothing once it is lost), and once a stop
// has cancelled the run, no more than until the stop releases its lock. The
// scheduler sets it for every run.
func WithLeaseLeft(ctx context.Context, left func() time.Duration) context.Context {
	return context.WithValue(ctx, leaseLeftKey{}, left)
}

// LeaseLeft reports how long the run of ctx may still go on before another
// replica may take its task; never negative. A task that cleans up after
// cancellation bounds its cleanup by it (exec sends SIGTERM, then SIGKILL
// by then), and one whose work outlives a frozen beat is stopped by it (an
// exec run's supervisor kills the command when it is not told of a renewal
// in time). ok is false when ctx carries no lease (a run started outside a
// scheduler).
func LeaseLeft(ctx context.Context) (left time.Duration, ok bool) {
	f, ok := ctx.Value(leaseLeftKey{}).(func() time.Duration)
	if !ok || f == nil {
		return 0, false
	}
	return max(f(), 0), true
}
