package scheduler

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/beatlock/beat/lock"
	"github.com/beatlock/beat/schedule"
	"github.com/beatlock/beat/tasks"
)

// handle claims one tick and, if this replica gets it, runs it.
func (s *Scheduler) handle(t *Task, tick time.Time) {
	defer s.runs.Done()
	res, validFrom, ok := s.claim(t, tick)
	if !ok {
		return
	}
	switch res.Outcome {
	case lock.AlreadyClaimed:
		s.emit(Event{Kind: AlreadyClaimed, Task: t.Name, Tick: tick})
		return
	case lock.Busy:
		s.emit(Event{Kind: Busy, Task: t.Name, Tick: tick})
		return
	}
	if !res.Previous.IsZero() {
		// Ticks between the last claimed one and this were claimed by no one.
		if _, n := schedule.Between(t.Schedule, res.Previous, tick, missedLimit); n > 1 {
			s.emit(Event{Kind: Missed, Task: t.Name, Tick: tick, Count: n - 1,
				Reason: fmt.Sprintf("no replica claimed them since %v (all down, store down, or skipped as busy)", res.Previous.UTC())})
		}
	}
	s.emit(Event{Kind: Claimed, Task: t.Name, Tick: tick, Token: res.Lease.Token})
	s.execute(t, tick, res.Lease, validFrom)
}

// claim asks the store for tick, retrying with backoff while the store
// fails and the tick's starting deadline has not passed. It reports when
// the successful attempt was sent (the lease is valid from then) and
// whether there is an outcome to act on.
func (s *Scheduler) claim(t *Task, tick time.Time) (lock.ClaimResult, time.Time, bool) {
	deadline := t.deadline(tick)
	wait := s.backoff[0]
	req := lock.ClaimRequest{Task: t.Name, Tick: tick, Owner: s.id, TTL: s.ttl, Policy: t.Policy, Session: s.session}
	for attempt := 1; ; attempt++ {
		if s.stopping() {
			return lock.ClaimResult{}, time.Time{}, false
		}
		sent := s.clock.Now()
		// A claim in flight is not cancelled by Stop: one that reached the
		// store holds the tick, and must be run, not abandoned.
		ctx, cancel := context.WithTimeout(context.Background(), min(s.ttl, 5*time.Second))
		res, err := s.store.Claim(ctx, req)
		cancel()
		if err == nil {
			return res, sent, true
		}
		if !s.clock.Now().Add(wait).Before(deadline) {
			s.emit(Event{Kind: ClaimFailed, Task: t.Name, Tick: tick, Err: fmt.Errorf("after %d attempts: %w", attempt, err)})
			return lock.ClaimResult{}, time.Time{}, false
		}
		s.log.Warn("claim failed; retrying", "task", t.Name, "tick", tick.UTC(), "attempt", attempt, "retry_in", wait, "err", err)
		timer := s.clock.NewTimer(wait)
		select {
		case <-timer.C():
		case <-s.stopped:
			timer.Stop()
			return lock.ClaimResult{}, time.Time{}, false
		}
		wait = min(2*wait, s.backoff[1])
	}
}

// execute runs a claimed tick under a renewed lease and releases it after.
func (s *Scheduler) execute(t *Task, tick time.Time, lease lock.Lease, validFrom time.Time) {
	ctx, cancel := context.WithCancelCause(s.runCtx)
	defer cancel(nil)
	renewDone := make(chan struct{})
	stopRenew := make(chan struct{})
	go func() {
		defer close(renewDone)
		s.keepLease(lease, validFrom, stopRenew, cancel)
	}()
	if t.Timeout > 0 {
		// On the scheduler's clock rather than context.WithTimeout, so that
		// it moves with the leases and tests can drive it.
		timer := s.clock.NewTimer(t.Timeout)
		go func() {
			select {
			case <-timer.C():
				cancel(ErrTimeout)
			case <-ctx.Done():
				timer.Stop()
			}
		}()
	}

	start := s.clock.Now()
	err := call(ctx, t, tasks.Run{
		Task: t.Name, Type: t.Type, Args: t.Args, ScheduledAt: tick.UTC(),
		InstanceID: s.id, FencingToken: lease.Token,
		Logger: s.log.With("task", t.Name, "tick", tick.UTC(), "token", lease.Token),
	})
	elapsed := s.clock.Now().Sub(start)
	// Judge the run by its context as it returned, before the renewer
	// stops: a renewal failing just after the task returned does not make a
	// finished run a lost one.
	cause := context.Cause(ctx)
	close(stopRenew)
	<-renewDone

	ev := Event{Kind: Succeeded, Task: t.Name, Tick: tick, Token: lease.Token, Duration: elapsed}
	switch {
	case errors.Is(cause, lock.ErrLost):
		ev.Kind, ev.Err = Lost, errors.Join(cause, err)
	case err != nil:
		if cause != nil && !errors.Is(err, cause) {
			err = fmt.Errorf("%w (%w)", err, cause)
		}
		ev.Kind, ev.Err = Failed, err
	}
	// The lock is released before the run's end is reported, so that an
	// observer who sees the end can count on the task being free again. A
	// lease judged lost locally may still be live in the store (renewals
	// failed, not the lock); releasing it is safe, since the store checks
	// the token, and frees the task for the other replicas at once.
	s.release(lease, tick, ev.Kind == Lost)
	s.emit(ev)
}

func (s *Scheduler) release(lease lock.Lease, tick time.Time, lost bool) {
	wait := 5 * time.Second
	if lost {
		wait = time.Second // likely unreachable: don't hold up the run's end
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ok, err := s.store.ReleaseLease(ctx, lease)
	switch {
	case lost:
		// Expected to fail: the store may be unreachable, or the lock gone.
	case err != nil:
		s.log.Warn("release failed; the lock expires on its own", "task", lease.Task, "tick", tick.UTC(), "ttl", s.ttl, "err", err)
	case !ok && !s.stopping(): // at shutdown, ReleaseAll may have come first
		s.log.Warn("lock was no longer ours at release", "task", lease.Task, "tick", tick.UTC())
	}
}

// call runs the task's Func, turning a panic into an error: a task must not
// take the scheduler, and every other task, down with it.
func call(ctx context.Context, t *Task, run tasks.Run) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("task %q panicked: %v\n%s", t.Name, p, debug.Stack())
		}
	}()
	return t.Func(ctx, run)
}

// keepLease renews the lease every renew interval until stop is closed. It
// cancels the run with cause lock.ErrLost as soon as the store says the lease
// is gone, or when the lease's validity runs out on the local monotonic
// clock: then another replica may hold the lock, whatever the store answers
// later. Validity counts from when the last successful claim or renewal was
// sent, which is no later than the store started its ttl, and ends a tenth
// of the ttl early, to leave the run time to notice before the store expires
// the lock (clocks of different machines also tick at slightly different
// rates).
func (s *Scheduler) keepLease(lease lock.Lease, validFrom time.Time, stop <-chan struct{}, cancel context.CancelCauseFunc) {
	trust := lock.TrustedFor(s.ttl)
	validUntil := validFrom.Add(trust)
	next := s.renew
	for {
		now := s.clock.Now()
		left := validUntil.Sub(now)
		if left <= 0 {
			cancel(fmt.Errorf("%w: no renewal succeeded in time (lock ttl %v)", lock.ErrLost, s.ttl))
			return
		}
		timer := s.clock.NewTimer(min(next, left))
		select {
		case <-stop:
			timer.Stop()
			return
		case <-timer.C():
		}
		sent := s.clock.Now()
		if !sent.Before(validUntil) {
			continue // expired while waiting: cancel above
		}
		ctx, c := context.WithTimeout(context.Background(), validUntil.Sub(sent))
		ok, err := s.renewLease(ctx, lease)
		c()
		switch {
		case err != nil:
			// Try again soon: there may be time left before the lease runs out.
			next = min(s.renew, max(validUntil.Sub(s.clock.Now())/4, 10*time.Millisecond))
			s.log.Warn("lease renewal failed; retrying", "task", lease.Task, "token", lease.Token, "valid_for", validUntil.Sub(s.clock.Now()), "err", err)
		case !ok:
			cancel(fmt.Errorf("%w: the store no longer holds this lease (expired, or replaced by a newer claim)", lock.ErrLost))
			return
		default:
			validUntil = sent.Add(trust)
			next = s.renew
			s.emit(Event{Kind: Renewed, Task: lease.Task, Token: lease.Token})
		}
	}
}

// renewLease asks the store to renew the lease, but returns when ctx is done
// even if the store has not answered: a client that ignores deadlines (as
// go-redis does unless told otherwise) or a connection into a network
// partition must not keep a run going past its lease's validity. The
// abandoned call ends on its own; should it still reach the store, it can
// only keep the lock, not the cancelled run, a while longer.
func (s *Scheduler) renewLease(ctx context.Context, lease lock.Lease) (bool, error) {
	type result struct {
		ok  bool
		err error
	}
	done := make(chan result, 1)
	go func() {
		ok, err := s.store.RenewLease(ctx, lease, s.ttl)
		done <- result{ok, err}
	}()
	select {
	case r := <-done:
		return r.ok, r.err
	case <-ctx.Done():
		return false, fmt.Errorf("lease renewal: no answer from the store in time: %w", context.Cause(ctx))
	}
}
