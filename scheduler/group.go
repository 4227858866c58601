package scheduler

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/beatlock/beat/lock"
)

// groupWait is the longest a batch's call to the store may take when none
// of its callers has a deadline.
const groupWait = 5 * time.Second

// group gathers calls of one kind (releases, renewals) into batches for the
// store: while one batch is in flight the next one gathers, so that a burst
// costs a few calls to the store, and a lone call one call, sent at once.
// A batch's call ends at the earliest deadline of its callers, so that a
// call that hangs holds up the next batch no longer than its most pressed
// caller would have waited for it alone.
type group[In, Out any] struct {
	what string // the call, for errors
	send func(ctx context.Context, in []In) ([]Out, error)

	mu       sync.Mutex
	queue    []*groupCall[In, Out]
	flushing bool // a goroutine is sending the queue
}

type groupCall[In, Out any] struct {
	ctx  context.Context
	in   In
	out  Out
	err  error
	done chan struct{}
}

// newGroup returns the group that sends batches of what through send.
func newGroup[In, Out any](what string, send func(ctx context.Context, in []In) ([]Out, error)) *group[In, Out] {
	return &group[In, Out]{what: what, send: send}
}

// add queues in for the next batch; the call's done is closed once it is
// answered. The caller waits for it (or for its ctx, see late) itself: on
// the run's goroutine, a wait one call deeper made the stacks of a burst's
// runs grow once more, a fifth of a burst's CPU.
func (g *group[In, Out]) add(ctx context.Context, in In) *groupCall[In, Out] {
	c := &groupCall[In, Out]{ctx: ctx, in: in, done: make(chan struct{})}
	g.mu.Lock()
	g.queue = append(g.queue, c)
	start := !g.flushing
	g.flushing = true
	g.mu.Unlock()
	if start {
		go g.flush()
	}
	return c
}

// late is the error of a call whose ctx ended before its answer came (the
// batch goes on without it).
func (g *group[In, Out]) late(ctx context.Context) error {
	return fmt.Errorf("%s: no answer from the store in time: %w", g.what, context.Cause(ctx))
}

// flush sends the queued calls, maxBatch at a time, until the queue is
// empty; calls whose callers gave up are left out.
func (g *group[In, Out]) flush() {
	for {
		g.mu.Lock()
		n := min(len(g.queue), maxBatch)
		if n == 0 {
			g.queue, g.flushing = nil, false
			g.mu.Unlock()
			return
		}
		queued := g.queue[:n:n]
		g.queue = g.queue[n:]
		g.mu.Unlock()
		calls := make([]*groupCall[In, Out], 0, n)
		in := make([]In, 0, n)
		deadline := time.Now().Add(groupWait)
		for _, c := range queued {
			if c.ctx.Err() != nil {
				continue
			}
			if d, ok := c.ctx.Deadline(); ok && d.Before(deadline) {
				deadline = d
			}
			calls, in = append(calls, c), append(in, c.in)
		}
		if len(calls) == 0 {
			continue
		}
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		out, err := g.send(ctx, in)
		cancel()
		if err == nil && len(out) != len(in) {
			err = fmt.Errorf("the store answered %d of %d in a batch", len(out), len(in))
		}
		for i, c := range calls {
			if err != nil {
				c.err = err
			} else {
				c.out = out[i]
			}
			close(c.done)
		}
	}
}

// releaseLease releases l and records run (see lock.Claimer), in a batch
// with the other releases of the moment when the store can.
func (s *Scheduler) releaseLease(ctx context.Context, l lock.Lease, run *lock.RunRecord) (bool, error) {
	if s.releases == nil {
		return s.store.ReleaseLease(ctx, l, run)
	}
	c := s.releases.add(ctx, lock.LeaseEnd{Lease: l, Run: run})
	select {
	case <-c.done:
		return c.out, c.err
	case <-ctx.Done():
		return false, s.releases.late(ctx)
	}
}
