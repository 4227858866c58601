package scheduler

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/beatlock/beat/tasks"
)

var _ tasks.Lease = (*runLease)(nil)

// runLease is a run's lease as the renewer keeps it and the run sees it
// (tasks.Lease): trusted until an instant on the scheduler's clock, the zero
// time once lost.
type runLease struct {
	s       *Scheduler
	mu      sync.Mutex
	until   time.Time
	changed chan struct{} // closed at the next set
}

func (s *Scheduler) newRunLease(until time.Time) *runLease {
	return &runLease{s: s, until: until, changed: make(chan struct{})}
}

func (l *runLease) validUntil() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.until
}

// set records a renewal (or, with the zero time, the loss) and tells those
// waiting on Changed.
func (l *runLease) set(until time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.until = until
	close(l.changed)
	l.changed = make(chan struct{})
}

// Left is what is left of the lease, and once a stop has cancelled the run,
// no more than until the stop releases the locks.
func (l *runLease) Left() time.Duration {
	until := l.validUntil()
	if r := l.s.releaseAt.get(); !r.IsZero() && r.Before(until) {
		until = r
	}
	if until.IsZero() {
		return 0
	}
	return until.Sub(l.s.clock.Now())
}

func (l *runLease) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed
}

// instant is a time shared between goroutines. It keeps the monotonic
// reading of the time it was set from, so durations to it ignore steps of
// the wall clock.
type instant struct{ p atomic.Pointer[time.Time] }

func (i *instant) set(t time.Time) { i.p.Store(&t) }

func (i *instant) get() time.Time {
	if p := i.p.Load(); p != nil {
		return *p
	}
	return time.Time{}
}
