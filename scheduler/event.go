package scheduler

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/beatlock/beat/lock"
)

// EventKind says what happened to a tick.
type EventKind uint8

const (
	// Claimed: this replica claimed the tick and starts the run.
	Claimed EventKind = iota + 1
	// AlreadyClaimed: another replica (or an earlier attempt) has the tick.
	AlreadyClaimed
	// Busy: the policy is Forbid and the previous run still held the lock
	// when the tick came; the tick is skipped.
	Busy
	// Missed: Count ticks up to Tick were not run (Reason says why): this
	// replica fell behind, a tick's starting deadline passed before it could
	// be claimed, a newer tick came due first, or (reported once per task by
	// a starting replica) no replica was up for them.
	Missed
	// ClaimFailed: the store could not be asked in time, or its answer came
	// too late to trust the lease; the tick is skipped (Err says why).
	ClaimFailed
	// ClockAhead: the tick lies further ahead of the lock store's clock than
	// the max clock skew: this replica's clock is wrong. Skipped here; the
	// replicas with right clocks claim it.
	ClockAhead
	// StoreLost: the lock store holds no record from before its epoch (new,
	// or it lost its records), so it cannot tell whether the tick already
	// ran; it is skipped so that it never runs twice.
	StoreLost
	// Succeeded and Failed: a run ended, without or with Err (RunResult
	// tells a timeout and a shutdown from other failures).
	Succeeded
	Failed
	// Lost: the run's lease could not be renewed in time; its context was
	// cancelled with cause lock.ErrLost.
	Lost
	// Renewed: a running task's lease was extended (Tick is not set).
	Renewed
	// AtCapacity: this replica held max_concurrent_runs until the tick's
	// window closed, so it did not claim it; a replica with room may have.
	AtCapacity
)

var eventNames = [...]string{Claimed: "claimed", AlreadyClaimed: "already-claimed", Busy: "busy",
	Missed: "missed", ClaimFailed: "claim-failed", ClockAhead: "clock-ahead", StoreLost: "store-lost",
	Succeeded: "succeeded", Failed: "failed", Lost: "lost", Renewed: "renewed", AtCapacity: "at-capacity"}

func (k EventKind) String() string {
	if int(k) < len(eventNames) && eventNames[k] != "" {
		return eventNames[k]
	}
	return "unknown"
}

// Event reports one step of one tick, for logs, metrics and tests.
type Event struct {
	Kind   EventKind
	Task   string
	Tick   time.Time // the tick's nominal instant
	Token  uint64    // fencing token, once claimed
	Count  int       // Missed: how many ticks (missedLimit means that many or more)
	Reason string    // Missed, StoreLost, and Busy when the store lost its records: why
	Err    error     // Failed, ClaimFailed, ClockAhead, Lost
	// Duration is how long the run took (Succeeded, Failed, Lost); Delay
	// how long after its tick it started (Claimed).
	Duration, Delay time.Duration
}

// RunResult names how a run ended (a lock.Run* result), for an event that
// ends one (Succeeded, Failed, Lost); "" for the others.
func (e Event) RunResult() string {
	switch e.Kind {
	case Succeeded:
		return lock.RunSucceeded
	case Lost:
		return lock.RunLost
	case Failed:
		switch {
		case errors.Is(e.Err, ErrTimeout):
			return lock.RunTimeout
		case errors.Is(e.Err, ErrShutdown):
			return lock.RunCancelled
		}
		return lock.RunFailed
	}
	return ""
}

// Stats counts events by kind since the scheduler was made; Missed counts
// ticks, not events.
type Stats struct {
	Claimed, AlreadyClaimed, Busy, Missed, ClaimFailed, ClockAhead, StoreLost, Succeeded, Failed, Lost, Renewed, AtCapacity uint64
}

// LogValue logs the counts as fields of their own.
func (st Stats) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Uint64("claimed", st.Claimed), slog.Uint64("already_claimed", st.AlreadyClaimed),
		slog.Uint64("busy", st.Busy), slog.Uint64("missed", st.Missed), slog.Uint64("claim_failed", st.ClaimFailed),
		slog.Uint64("clock_ahead", st.ClockAhead), slog.Uint64("store_lost", st.StoreLost),
		slog.Uint64("succeeded", st.Succeeded), slog.Uint64("failed", st.Failed), slog.Uint64("lost", st.Lost),
		slog.Uint64("renewed", st.Renewed), slog.Uint64("at_capacity", st.AtCapacity))
}

type counters [len(eventNames)]atomic.Uint64

// Stats returns the counts so far.
func (s *Scheduler) Stats() Stats {
	c := &s.stats
	return Stats{
		Claimed: c[Claimed].Load(), AlreadyClaimed: c[AlreadyClaimed].Load(), Busy: c[Busy].Load(),
		Missed: c[Missed].Load(), ClaimFailed: c[ClaimFailed].Load(), ClockAhead: c[ClockAhead].Load(),
		StoreLost: c[StoreLost].Load(), Succeeded: c[Succeeded].Load(),
		Failed: c[Failed].Load(), Lost: c[Lost].Load(), Renewed: c[Renewed].Load(), AtCapacity: c[AtCapacity].Load(),
	}
}

// emit counts, logs and reports ev.
func (s *Scheduler) emit(ev Event) {
	n := uint64(1)
	if ev.Kind == Missed {
		n = uint64(ev.Count)
	}
	s.stats[ev.Kind].Add(n)
	attrs := []any{"task", ev.Task}
	if !ev.Tick.IsZero() {
		attrs = append(attrs, "tick", ev.Tick.UTC())
	}
	if ev.Token != 0 {
		attrs = append(attrs, "token", ev.Token)
	}
	level := slog.LevelDebug
	msg := "tick " + ev.Kind.String()
	switch ev.Kind {
	case Claimed:
		level, msg = slog.LevelInfo, "run started"
		attrs = append(attrs, "late", ev.Delay)
	case Succeeded:
		level, msg = slog.LevelInfo, "run succeeded"
		attrs = append(attrs, "duration", ev.Duration)
	case Failed:
		level, msg = slog.LevelError, "run failed"
		if r := ev.RunResult(); r != lock.RunFailed {
			msg = "run failed: " + r
		}
		attrs = append(attrs, "duration", ev.Duration, "err", ev.Err)
	case Busy:
		level, msg = slog.LevelWarn, "tick skipped: the previous run still holds the lock (concurrency_policy Forbid)"
		if ev.Reason != "" {
			msg = "tick skipped: a run from before the lock store lost its records may still be going (concurrency_policy Forbid)"
			attrs = append(attrs, "reason", ev.Reason)
		}
		// Every tick is counted; runs that outlast their interval are said
		// once a minute per task (per replica), not once a tick.
		if s.sayBusy(ev.Task) {
			msg += "; this task's ticks skipped so in the next minute are logged at debug"
		} else {
			level = slog.LevelDebug
		}
	case Missed:
		level, msg = slog.LevelWarn, "ticks missed"
		attrs = append(attrs, "count", ev.Count, "reason", ev.Reason)
	case ClaimFailed:
		level, msg = s.storeErrorLevel(ev.Err, slog.LevelError), "tick skipped: the claim failed"
		attrs = append(attrs, "err", ev.Err)
	case ClockAhead:
		level, msg = slog.LevelError, "tick skipped: this replica's clock is ahead of the lock store's"
		attrs = append(attrs, "err", ev.Err)
	case StoreLost:
		level, msg = slog.LevelWarn, "tick skipped: the lock store lost its records"
		if ev.Tick.Before(s.startedAt) {
			// A tick before this start, not caught up: what a single
			// replica on the in-memory store sees at every start.
			level, msg = slog.LevelInfo, "tick from before this start not caught up: the lock store has no record of it"
		}
		attrs = append(attrs, "reason", ev.Reason)
	case AtCapacity:
		level, msg = slog.LevelWarn, "tick not claimed here: this replica ran max_concurrent_runs until its window closed"
	case Lost:
		level, msg = slog.LevelError, "lease lost: run cancelled, another replica may take the task"
		if ev.Reason != "" {
			level, msg = slog.LevelWarn, "run cancelled: it lost its lock"
			attrs = append(attrs, "reason", ev.Reason)
		}
		attrs = append(attrs, "duration", ev.Duration, "err", ev.Err)
	}
	s.log.Log(context.Background(), level, msg, attrs...)
	if s.observe != nil {
		s.observe(ev)
	}
}

// sayEvery is how often a condition that comes back at every claim is said
// at its level (a store that refuses this replica, a run that outlasts its
// interval): one line a minute tells as much as one per claim. In between it
// is logged at debug, and counted all the same.
const sayEvery = time.Minute

// sayNow reports whether a condition last said at *last (Unix ns; 0: never)
// is to be said at now, and if so records now.
func sayNow(last *atomic.Int64, now time.Time) bool {
	n, l := now.UnixNano(), last.Load()
	return (l == 0 || n-l >= int64(sayEvery)) && last.CompareAndSwap(l, n)
}

// sayBusy reports whether a Busy tick of task is to be said at WARN: the
// first of the task's, and then one every sayEvery.
func (s *Scheduler) sayBusy(task string) bool {
	last, ok := s.busyTasks.Load(task)
	if !ok {
		last, _ = s.busyTasks.LoadOrStore(task, new(atomic.Int64))
	}
	return sayNow(last.(*atomic.Int64), s.clock.Now())
}
