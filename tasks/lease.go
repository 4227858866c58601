package tasks

import (
	"context"
	"time"
)

// Lease is what a run can know of the lock it runs under. The scheduler
// gives every run one (see LeaseOf).
//
// Left reports how long the lease still holds: what is left of it as
// renewed so far, nothing once it is lost, and once a stop has cancelled
// the run, no more than until the stop releases its lock. A run that goes
// on past it may overlap the next run of its task on another replica.
//
// Changed returns a channel that is closed the next time Left's answer
// jumps: a renewal, or the loss of the lease. Call it before Left, so that
// no change between the two goes unseen.
type Lease interface {
	Left() time.Duration
	Changed() <-chan struct{}
}

type leaseKey struct{}

// WithLease returns a copy of ctx that carries the run's lease.
func WithLease(ctx context.Context, l Lease) context.Context {
	return context.WithValue(ctx, leaseKey{}, l)
}

// LeaseOf returns the lease of the run of ctx; ok is false for a run
// started outside a scheduler.
func LeaseOf(ctx context.Context) (l Lease, ok bool) {
	l, ok = ctx.Value(leaseKey{}).(Lease)
	return l, ok && l != nil
}

// LeaseLeft reports how long the run of ctx may still go on before another
// replica may take its task (Lease.Left); never negative. A task that
// cleans up after cancellation bounds its cleanup by it (exec sends
// SIGTERM, then SIGKILL by then). ok is false when ctx carries no lease.
func LeaseLeft(ctx context.Context) (left time.Duration, ok bool) {
	l, ok := LeaseOf(ctx)
	if !ok {
		return 0, false
	}
	return max(l.Left(), 0), true
}
