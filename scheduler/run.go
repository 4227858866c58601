package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/beatlock/beat/lock"
	"github.com/beatlock/beat/schedule"
	"github.com/beatlock/beat/tasks"
)

// pending is a tick of a task that has come due on this replica.
type pending struct {
	task *job
	tick time.Time
}

// maxBatch is the most ticks claimed in one call to the store: a batch's
// call is one script or transaction, which should stay short (a few
// milliseconds) so that it does not hold up the store's other clients.
const maxBatch = 500

// dispatch claims ticks that came due together, each tick counted in
// s.runs until it is settled: in one call to the store (lock.BatchClaimer)
// when there are several and the store can, else one by one. A replica
// with peers in sight spreads them over a few milliseconds at random (see
// spreadSlots), each slot after the load's delay as it is then.
func (s *Scheduler) dispatch(ps []pending) {
	if len(ps) == 0 {
		return
	}
	s.runs.Add(len(ps))
	if !s.contended() {
		s.send(ps, delay{})
		return
	}
	var slots [spreadSlots][]pending
	for _, p := range ps {
		k := s.randN(spreadSlots)
		slots[k] = append(slots[k], p)
	}
	for k, group := range slots {
		if len(group) > 0 {
			s.send(group, delay{slot: time.Duration(k) * spreadSlot, loaded: true})
		}
	}
}

// delay is how long a claim waits before it is sent: its slot, then, if
// loaded, the delay of the replica's load as it is at the slot's end, so
// that the runs a replica won in an instant's first slots make it yield
// the later ones to its peers. The zero delay sends at once.
type delay struct {
	slot   time.Duration
	loaded bool
}

// wait waits d, and reports false if the scheduler stopped meanwhile.
func (s *Scheduler) wait(d delay) bool {
	if !s.sleep(d.slot) {
		return false
	}
	return !d.loaded || s.sleep(s.loadDelay())
}

// send claims ps after d.
func (s *Scheduler) send(ps []pending, d delay) {
	if s.batcher == nil || len(ps) == 1 {
		for _, p := range ps {
			go s.handle(p.task, p.tick, d)
		}
		return
	}
	go s.handleBatch(ps, d)
}

// handle claims one tick after d and, if this replica gets it, runs it.
func (s *Scheduler) handle(t *job, tick time.Time, d delay) {
	if !s.wait(d) || !s.acquireSlot(t, tick) {
		s.runs.Done()
		return
	}
	s.settle(t, tick, nil)
}

// attempt is a claim sent, and its answer.
type attempt struct {
	sent time.Time
	res  lock.ClaimResult
	err  error
}

// handleBatch claims ticks in one call to the store, as the first attempt
// of each: a tick whose attempt failed, or came before the store's clock
// reached it, goes on alone, retrying as a lone claim does. A tick that
// finds the replica at max_concurrent_runs waits alone for a slot.
func (s *Scheduler) handleBatch(ps []pending, d delay) {
	if !s.wait(d) {
		s.runs.Add(-len(ps))
		return
	}
	batch := make([]pending, 0, len(ps))
	reqs := make([]lock.ClaimRequest, 0, len(ps))
	epoch := s.knownEpoch()
	for _, p := range ps {
		if !s.trySlot() {
			go s.handle(p.task, p.tick, delay{})
			continue
		}
		if s.stopping() || s.abandoned(p.task, p.tick, p.task.deadline(p.tick)) {
			s.releaseSlot()
			s.runs.Done()
			continue
		}
		req := s.request(p.task, p.tick)
		req.KnownEpoch = epoch
		batch, reqs = append(batch, p), append(reqs, req)
	}
	if len(reqs) == 0 {
		return
	}
	s.claimers <- struct{}{}
	first := attempt{sent: s.clock.Now()}
	ctx, cancel := context.WithTimeout(context.Background(), min(s.ttl, 5*time.Second))
	results, err := s.batcher.ClaimBatch(ctx, reqs)
	cancel()
	<-s.claimers
	if err == nil {
		s.noteStoreClock(s.clock.Now(), results[0].StoreTime)
	} else {
		s.log.Log(context.Background(), s.storeErrorLevel(err, slog.LevelWarn), "claim of ticks due together failed; each retries on its own",
			"ticks", len(reqs), "err", err)
	}
	for i, p := range batch {
		a := first
		if err != nil {
			a.err = err
		} else {
			a.res = results[i]
		}
		if err == nil && a.res.Outcome != lock.Claimed && a.res.Outcome != lock.NotYet {
			s.settle(p.task, p.tick, &a) // decided: reported at once, nothing to wait for
			continue
		}
		go s.settle(p.task, p.tick, &a)
	}
}

// settle claims a tick for which this replica holds a slot (see
// acquireSlot), starting from the answer to a first attempt sent for it
// when there was one, and runs it if this replica gets it; then it gives
// the slot back and counts the tick as settled.
func (s *Scheduler) settle(t *job, tick time.Time, first *attempt) {
	defer s.runs.Done()
	defer s.releaseSlot()
	res, validFrom, ok := s.claim(t, tick, first)
	if !ok {
		return
	}
	s.reportUndecided(t, tick, res)
	switch res.Outcome {
	case lock.AlreadyClaimed:
		s.lostRace()
		s.emit(Event{Kind: AlreadyClaimed, Task: t.Name, Tick: tick})
		return
	case lock.Busy:
		ev := Event{Kind: Busy, Task: t.Name, Tick: tick}
		if res.Guarded {
			ev.Reason = "the lock store lost its records less than a lock ttl ago, and a run claimed before may still hold the task"
		}
		s.emit(ev)
		return
	case lock.ClockAhead:
		s.emit(Event{Kind: ClockAhead, Task: t.Name, Tick: tick, Err: fmt.Errorf(
			"this replica's clock is wrong: the tick is %v ahead of the lock store's clock (%v), more than max_clock_skew (%v); fix the clock (NTP)",
			tick.Sub(res.StoreTime), stamp(res.StoreTime), s.maxSkew)})
		return
	case lock.StoreLost:
		s.emit(Event{Kind: StoreLost, Task: t.Name, Tick: tick, Reason: fmt.Sprintf(
			"the lock store holds no claim record from before %v (it is new, or it restarted or failed over and may have lost the last ones), so it cannot tell whether this tick already ran; skipped so that it never runs twice",
			stamp(res.Epoch))})
		return
	case lock.TooLate:
		s.emit(Event{Kind: Missed, Task: t.Name, Tick: tick, Count: 1, Reason: s.lateReason(t, tick, res)})
		return
	}
	s.claimed.Store(true)
	if res.Contested {
		s.lostRace()
	}
	s.emit(Event{Kind: Claimed, Task: t.Name, Tick: tick, Token: res.Lease.Token, Delay: s.clock.Now().Add(s.storeAhead()).Sub(tick)})
	s.execute(t, tick, res.Lease, validFrom)
}

// acquireSlot waits, when the replica runs max_concurrent_runs already,
// until a run ends, and reports whether it got a slot: not when the tick's
// window closed first (or the scheduler stopped), in which case the tick is
// left to the replicas with room, and reported as AtCapacity here.
func (s *Scheduler) acquireSlot(t *job, tick time.Time) bool {
	if s.trySlot() {
		return true
	}
	timer := s.clock.NewTimer(max(t.deadline(tick).Sub(s.clock.Now()), 0))
	defer timer.Stop()
	select {
	case s.slots <- struct{}{}:
		return true
	case <-timer.C():
		s.emit(Event{Kind: AtCapacity, Task: t.Name, Tick: tick})
	case <-s.stopped:
	}
	return false
}

// sleep waits d on the scheduler's clock; it reports false if the
// scheduler stopped meanwhile.
func (s *Scheduler) sleep(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	timer := s.clock.NewTimer(d)
	select {
	case <-timer.C():
		return true
	case <-s.stopped:
		timer.Stop()
		return false
	}
}

// trySlot takes a slot if one is free, without waiting.
func (s *Scheduler) trySlot() bool {
	if s.slots == nil {
		return true
	}
	select {
	case s.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

func (s *Scheduler) releaseSlot() {
	if s.slots != nil {
		<-s.slots
	}
}

// reportUndecided reports, at the store's first answer about the task, the
// ticks before this process started that no replica decided (claimed, or
// skipped as busy): every replica was down, or the store. Later ticks are
// this process's to report, when it skips them.
func (s *Scheduler) reportUndecided(t *job, tick time.Time, res lock.ClaimResult) {
	switch res.Outcome {
	case lock.Claimed, lock.AlreadyClaimed, lock.Busy:
	default:
		return
	}
	if !t.answered.CompareAndSwap(false, true) || res.Outcome != lock.Claimed || res.Previous.IsZero() {
		return
	}
	upTo := tick.Add(-time.Nanosecond)
	if before := s.startedAt.Add(-time.Nanosecond); before.Before(upTo) {
		upTo = before
	}
	if latest, n := schedule.Between(t.Schedule, res.Previous, upTo, missedLimit); n > 0 {
		s.emit(Event{Kind: Missed, Task: t.Name, Tick: latest, Count: n,
			Reason: fmt.Sprintf("no replica claimed them between %v and this replica's start (every replica down, or the lock store)", stamp(res.Previous))})
	}
}

// claim asks the store for tick until it has an answer to act on: it
// retries with backoff while the store fails, waits while the store's clock
// has not reached the tick, and gives up (reporting why) when the tick's
// starting deadline passes, when a newer tick of the task comes due, or when
// the scheduler stops. It returns when the successful attempt was sent (the
// lease is valid from then). No attempt is sent after the deadline, and no
// lease is handed on that is no longer trusted.
func (s *Scheduler) claim(t *job, tick time.Time, first *attempt) (lock.ClaimResult, time.Time, bool) {
	deadline := t.deadline(tick)
	backoff := s.backoff[0]
	req := s.request(t, tick)
	var notReplicated error // the last attempt's, when the store granted it unconfirmed
	for attempt := 1; ; attempt++ {
		var sent time.Time
		var res lock.ClaimResult
		var err error
		if attempt == 1 && first != nil {
			sent, res, err = first.sent, first.res, first.err
		} else {
			if s.stopping() || s.abandoned(t, tick, deadline) {
				return lock.ClaimResult{}, time.Time{}, false
			}
			req.KnownEpoch = s.knownEpoch()
			sent = s.clock.Now()
			// A claim in flight is not cancelled by Stop: one that reached the
			// store holds the tick, and must be run, not abandoned.
			ctx, cancel := context.WithTimeout(context.Background(), min(s.ttl, 5*time.Second))
			res, err = s.store.Claim(ctx, req)
			cancel()
			if err == nil {
				s.noteStoreClock(s.clock.Now(), res.StoreTime)
			}
		}
		var wait time.Duration
		switch {
		case err == nil && res.Outcome == lock.NotYet:
			// The store's clock is behind this replica's: the tick comes
			// when the store says so.
			wait = max(tick.Sub(res.StoreTime), time.Millisecond)
			s.log.Debug("tick not yet due by the lock store's clock; waiting for it", "task", t.Name, "tick", tick.UTC(), "wait", wait)
		case err == nil && res.Outcome == lock.AlreadyClaimed && notReplicated != nil:
			// The tick is "claimed" by this replica's own claim, which the
			// replicas never confirmed (a later tick's claim since made it
			// history): it ran nowhere.
			s.emit(Event{Kind: ClaimFailed, Task: t.Name, Tick: tick, Err: fmt.Errorf("after %d attempts: %w", attempt, notReplicated)})
			return lock.ClaimResult{}, time.Time{}, false
		case err == nil:
			s.noteAnswer(t.Name, res)
			if res.Outcome == lock.Claimed && !s.trusted(t, tick, res.Lease, sent) {
				return lock.ClaimResult{}, time.Time{}, false
			}
			return res, sent, true
		case !s.clock.Now().Add(backoff).Before(deadline.Add(s.maxSkew)):
			s.emit(Event{Kind: ClaimFailed, Task: t.Name, Tick: tick, Err: fmt.Errorf("after %d attempts: %w", attempt, err)})
			return lock.ClaimResult{}, time.Time{}, false
		default:
			if errors.Is(err, lock.ErrNotReplicated) {
				notReplicated = err
			}
			s.log.Log(context.Background(), s.storeErrorLevel(err, slog.LevelWarn), "claim failed; retrying",
				"task", t.Name, "tick", tick.UTC(), "attempt", attempt, "retry_in", backoff, "err", err)
			wait = backoff
			backoff = min(2*backoff, s.backoff[1])
		}
		if !s.sleep(wait) {
			return lock.ClaimResult{}, time.Time{}, false
		}
	}
}

// request is the claim of tick for t, but for KnownEpoch.
func (s *Scheduler) request(t *job, tick time.Time) lock.ClaimRequest {
	return lock.ClaimRequest{Task: t.Name, Tick: tick, Owner: s.owner, TTL: s.ttl, Policy: t.Policy,
		Session: s.session, MaxSkew: s.maxSkew, NotAfter: t.deadline(tick)}
}

// knownEpoch is the store's epoch as this process last saw it, for
// lock.ClaimRequest.KnownEpoch.
func (s *Scheduler) knownEpoch() time.Time {
	if e := s.epoch.Load(); e != 0 {
		return time.UnixMilli(e)
	}
	return time.Time{}
}

// abandoned reports, as missed, a tick whose claim would come too late
// even by a store's clock up to the max skew behind this replica's: the
// process was paused, its clock stepped, or the store was unreachable. The
// store itself refuses claims after the tick's window (TooLate), judged by
// its clock.
func (s *Scheduler) abandoned(t *job, tick, deadline time.Time) bool {
	if s.clock.Now().Before(deadline.Add(s.maxSkew)) {
		return false
	}
	s.emit(Event{Kind: Missed, Task: t.Name, Tick: tick, Count: 1,
		Reason: windowClosed(t, tick, deadline) + " before it could be claimed: the process was paused, its clock stepped, or the lock store was unreachable"})
	return true
}

// lateReason says why the store found a claim too late.
func (s *Scheduler) lateReason(t *job, tick time.Time, res lock.ClaimResult) string {
	reason := windowClosed(t, tick, t.deadline(tick)) + " by the lock store's clock before the claim reached it"
	if behind := res.StoreTime.Sub(s.clock.Now()); behind > time.Second {
		reason += fmt.Sprintf(" (this replica's clock is about %v behind the store's)", behind.Round(100*time.Millisecond))
	}
	return reason
}

// windowClosed names what closed the tick's window.
func windowClosed(t *job, tick, deadline time.Time) string {
	if next := t.Schedule.Next(tick); deadline.Equal(next) {
		return "the next tick of the task came due (only the most recent due tick is run)"
	}
	return fmt.Sprintf("its starting deadline (%v) passed", deadline.Sub(tick))
}

// trusted reports whether a claimed lease may be run: not when its answer
// came so late that the lease may already have expired. A lease not trusted
// is released (the tick stays claimed, so it runs nowhere) and the tick
// reported.
func (s *Scheduler) trusted(t *job, tick time.Time, lease lock.Lease, sent time.Time) bool {
	took := s.clock.Now().Sub(sent)
	if took < lock.TrustedFor(s.ttl) {
		return true
	}
	// Released before it is reported, as a run's end is.
	s.release(lease, tick, nil)
	s.emit(Event{Kind: ClaimFailed, Task: t.Name, Tick: tick, Token: lease.Token, Err: fmt.Errorf(
		"the claim's answer took %v, past 9/10 of the lock ttl (%v): its lease may already have expired, so the run was not started", took, s.ttl)})
	return false
}

// noteAnswer logs what an answer says about the store itself: a new epoch
// (it lost its records) or a claim record ahead of its clock.
func (s *Scheduler) noteAnswer(task string, res lock.ClaimResult) {
	s.noteEpoch(res.Epoch)
	if !res.FutureRecord.IsZero() {
		s.log.Error("the lock store's claim record of this task lies ahead of the store's clock (a store clock stepped back, a restored backup, or an older beat with a wrong clock wrote it); disregarded, the ticks up to it run when they come",
			"task", task, "record", res.FutureRecord, "store_time", res.StoreTime)
	}
}

// noteEpoch remembers the store's epoch, and says so once when it changes:
// the store lost its records.
func (s *Scheduler) noteEpoch(epoch time.Time) {
	if epoch.IsZero() {
		return
	}
	e := epoch.UnixMilli()
	old := s.epoch.Load()
	// Epochs only rise; an answer sent before the store lost its records
	// may arrive after one sent later.
	for e > old && !s.epoch.CompareAndSwap(old, e) {
		old = s.epoch.Load()
	}
	if old != 0 && e > old {
		s.log.Warn("the lock store lost its claim records, or may have (it restarted, from nothing or from older data, or failed over); ticks before its new epoch are skipped, never run twice",
			"epoch", epoch.UTC(), "previous_epoch", time.UnixMilli(old).UTC())
	}
}

// execute runs a claimed tick under a renewed lease and releases it after.
func (s *Scheduler) execute(t *job, tick time.Time, lease lock.Lease, validFrom time.Time) {
	ctx, cancel := context.WithCancelCause(s.runCtx)
	defer cancel(nil)
	held := s.newRunLease(validFrom.Add(lock.TrustedFor(s.ttl)))
	ctx = tasks.WithLease(ctx, held)
	renewDone := make(chan struct{})
	stopRenew := make(chan struct{})
	go func() {
		defer close(renewDone)
		s.keepLease(lease, held, stopRenew, cancel)
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

	s.running.Add(1)
	defer s.running.Add(-1)
	start := s.clock.Now()
	err := call(ctx, t, tasks.Run{
		Task: t.Name, Type: t.Type, Args: t.Args, ScheduledAt: tick.UTC(),
		InstanceID: s.id, FencingToken: lease.Token,
		Logger: s.log.With("task", t.Name, "tick", tick.UTC(), "token", lease.Token),
	})
	returned := s.clock.Now()
	elapsed := returned.Sub(start)
	// Judge the run by its context as it returned, before the renewer
	// stops: a renewal failing just after the task returned does not make a
	// finished run a lost one. A run that returned after its lease's
	// validity is lost all the same, though the renewer had no time to say
	// so (the process was paused, and the task woke first).
	cause := context.Cause(ctx)
	if !errors.Is(cause, lock.ErrLost) && !returned.Before(held.validUntil()) {
		cause = fmt.Errorf("%w: the run returned after its lease's validity ran out (was the process paused or starved?); no renewal succeeded in time (lock ttl %v)", lock.ErrLost, s.ttl)
	}
	close(stopRenew)
	<-renewDone

	ev := Event{Kind: Succeeded, Task: t.Name, Tick: tick, Token: lease.Token, Duration: elapsed}
	switch {
	case errors.Is(cause, lock.ErrLost):
		ev.Kind, ev.Err = Lost, errors.Join(cause, err)
		if t.Policy == lock.Replace {
			ev.Reason = "concurrency_policy Replace: a newer tick takes the lock of a run still going (or the lease ran out)"
		}
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
	run := &lock.RunRecord{Tick: tick, Token: lease.Token, Owner: lease.Owner, Result: ev.RunResult(), Duration: elapsed}
	if ev.Err != nil {
		run.Error = ev.Err.Error()
	}
	s.release(lease, tick, run)
	s.emit(ev)
}

// release releases a lease and records how its run ended (nil: not run).
func (s *Scheduler) release(lease lock.Lease, tick time.Time, run *lock.RunRecord) {
	lost := run != nil && run.Result == lock.RunLost
	wait := 5 * time.Second
	if lost {
		wait = time.Second // likely unreachable: don't hold up the run's end
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ok, err := s.releaseLease(ctx, lease, run)
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
func call(ctx context.Context, t *job, run tasks.Run) (err error) {
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
// rates). held keeps it, for the run to see.
func (s *Scheduler) keepLease(lease lock.Lease, held *runLease, stop <-chan struct{}, cancel context.CancelCauseFunc) {
	trust := lock.TrustedFor(s.ttl)
	lost := func(err error) {
		held.set(time.Time{})
		cancel(err)
	}
	next := s.renew
	for {
		until := held.validUntil()
		left := until.Sub(s.clock.Now())
		if left <= 0 {
			lost(fmt.Errorf("%w: no renewal succeeded in time (lock ttl %v)", lock.ErrLost, s.ttl))
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
		if !sent.Before(until) {
			continue // expired while waiting: cancel above
		}
		ctx, c := context.WithTimeout(context.Background(), until.Sub(sent))
		ok, err := s.renewLease(ctx, lease)
		c()
		switch {
		case err != nil:
			// Try again soon: there may be time left before the lease runs out.
			next = min(s.renew, max(until.Sub(s.clock.Now())/4, 10*time.Millisecond))
			s.log.Log(context.Background(), s.storeErrorLevel(err, slog.LevelWarn), "lease renewal failed; retrying",
				"task", lease.Task, "token", lease.Token, "valid_for", until.Sub(s.clock.Now()), "err", err)
		case !ok:
			lost(fmt.Errorf("%w: the store no longer holds this lease (expired, or replaced by a newer claim)", lock.ErrLost))
			return
		default:
			held.set(sent.Add(trust))
			next = s.renew
			s.emit(Event{Kind: Renewed, Task: lease.Task, Token: lease.Token})
		}
	}
}

// renewLease asks the store to renew the lease, in a batch with the other
// renewals of the moment when the store can, but returns when ctx is done
// even if the store has not answered: a client that ignores deadlines (as
// go-redis does unless told otherwise) or a connection into a network
// partition must not keep a run going past its lease's validity. The
// abandoned call ends on its own; should it still reach the store, it can
// only keep the lock, not the cancelled run, a while longer.
func (s *Scheduler) renewLease(ctx context.Context, lease lock.Lease) (bool, error) {
	if s.renewals != nil {
		c := s.renewals.add(ctx, lease)
		select {
		case <-c.done:
			return c.out, c.err
		case <-ctx.Done():
			return false, s.renewals.late(ctx)
		}
	}
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

// stamp formats an instant for a message, as the logs format times.
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// storeErrorLevel is the level to log a store error at: level, but for an
// error that says the store refuses this replica (lock.ErrRefused), which
// is said at ERROR once every sayEvery, and otherwise at debug.
func (s *Scheduler) storeErrorLevel(err error, level slog.Level) slog.Level {
	if !errors.Is(err, lock.ErrRefused) {
		return level
	}
	if sayNow(&s.refusedAt, time.Now()) {
		s.log.Error("the lock store refuses this replica: every claim fails until its setting is fixed (said once a minute)", "err", err)
	}
	return slog.LevelDebug
}
