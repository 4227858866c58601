package scheduler

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/beatlock/beat/lock"
)

// releases gathers the releases of runs that end together into batches
// (lock.BatchReleaser): while one batch is in flight the next one
// gathers, so that a burst of ends costs a few calls to the store, and a
// lone end one call, sent at once.
type releases struct {
	mu       sync.Mutex
	queue    []*releaseCall
	flushing bool // a goroutine is sending the queue
}

type releaseCall struct {
	end  lock.LeaseEnd
	ok   bool
	err  error
	done chan struct{}
}

// releaseLease releases l and records run (see lock.Claimer), in a batch
// with the other releases of the moment when the store can.
func (s *Scheduler) releaseLease(ctx context.Context, l lock.Lease, run *lock.RunRecord) (bool, error) {
	if s.releaser == nil {
		return s.store.ReleaseLease(ctx, l, run)
	}
	c := &releaseCall{end: lock.LeaseEnd{Lease: l, Run: run}, done: make(chan struct{})}
	s.rel.mu.Lock()
	s.rel.queue = append(s.rel.queue, c)
	start := !s.rel.flushing
	s.rel.flushing = true
	s.rel.mu.Unlock()
	if start {
		go s.flushReleases()
	}
	select {
	case <-c.done:
		return c.ok, c.err
	case <-ctx.Done():
		return false, fmt.Errorf("release: no answer from the store in time: %w", context.Cause(ctx))
	}
}

// flushReleases sends the queued releases, maxBatch at a time, until the
// queue is empty.
func (s *Scheduler) flushReleases() {
	for {
		s.rel.mu.Lock()
		n := min(len(s.rel.queue), maxBatch)
		if n == 0 {
			s.rel.queue, s.rel.flushing = nil, false
			s.rel.mu.Unlock()
			return
		}
		calls := s.rel.queue[:n:n]
		s.rel.queue = s.rel.queue[n:]
		s.rel.mu.Unlock()
		ends := make([]lock.LeaseEnd, n)
		for i, c := range calls {
			ends[i] = c.end
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		released, err := s.releaser.ReleaseBatch(ctx, ends)
		cancel()
		for i, c := range calls {
			if err != nil {
				c.err = err
			} else {
				c.ok = released[i]
			}
			close(c.done)
		}
	}
}
