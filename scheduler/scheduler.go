// Package scheduler fires the ticks of a schedule and, on each replica, turns
// each tick into at most one run across the deployment.
//
// For every tick of every task, each replica calls the lock store's atomic
// claim for (task, tick). The one replica that claims it runs the task with a
// context carrying its fencing token, renews the lease in the background, and
// releases the lock when the run ends; the others are told the tick is taken
// (or, under Forbid, that the previous run is still going) and do nothing.
// The claim record outlives the run, so a replica whose timer fires late
// cannot run the tick again.
//
// Tick instants are pure functions of the schedule and the wall clock, so
// every replica computes the same ones; clock skew between replicas only
// changes which of them claims first.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/beatlock/beat/clock"
	"github.com/beatlock/beat/lock"
	"github.com/beatlock/beat/schedule"
	"github.com/beatlock/beat/tasks"
)

// Task is one scheduled task.
type Task struct {
	Name     string // unique; the lock key derives from it
	Schedule schedule.Schedule
	Func     tasks.Func
	Type     string         // the registered type name, passed on in tasks.Run
	Args     map[string]any // passed on in tasks.Run
	// Timeout bounds a run; 0 means none.
	Timeout time.Duration
	Policy  lock.Policy
	// StartingDeadline is how late a tick may still be claimed, on start,
	// after a store outage or when the process fell behind. 0 means until
	// the next tick is due, but at most DefaultStartingDeadline. Only the
	// most recent due tick is ever run; older ones are counted as missed.
	StartingDeadline time.Duration
	// Suspend keeps the task from being scheduled.
	Suspend bool
	// Jitter delays each claim by a random amount in [0, Jitter), drawn per
	// replica and tick; the tick's identity stays the nominal instant.
	Jitter time.Duration
}

// DefaultStartingDeadline caps how late a tick may be claimed when the task
// sets no StartingDeadline: a replica starting a few seconds after a daily
// tick still runs it, one starting hours later does not.
const DefaultStartingDeadline = time.Minute

// lateness is the most a claim may start after its tick.
func (t *Task) lateness() time.Duration {
	if t.StartingDeadline > 0 {
		return t.StartingDeadline
	}
	return DefaultStartingDeadline
}

// deadline is the last instant at which a claim of tick may start.
func (t *Task) deadline(tick time.Time) time.Time {
	d := t.lateness()
	if next := t.Schedule.Next(tick); t.StartingDeadline == 0 && !next.IsZero() {
		d = min(d, next.Sub(tick))
	}
	return tick.Add(d)
}

// ErrShutdown is the cause given to runs cancelled because the scheduler
// stopped before they finished.
var ErrShutdown = errors.New("scheduler: shutting down")

// ErrTimeout is the cause given to runs that outlived their task's Timeout.
var ErrTimeout = errors.New("scheduler: task timeout")

// Scheduler runs tasks on their schedules. Create it with New, then Start
// it; Stop or StopAndCancel it to shut down.
type Scheduler struct {
	store    lock.Store
	tasks    []*Task
	id       string
	clock    clock.Clock
	log      *slog.Logger
	ttl      time.Duration
	renew    time.Duration
	observe  func(Event)
	backoff  [2]time.Duration // claim retry backoff: first, most
	jitterMu sync.Mutex
	rand     *rand.Rand

	stats counters

	started   atomic.Bool
	stopping  atomic.Bool
	stopLoop  context.CancelFunc
	stopped   <-chan struct{} // closed when claiming stops
	loopDone  chan struct{}
	runs      sync.WaitGroup // claims and runs in flight
	runCtx    context.Context
	cancelRun context.CancelCauseFunc
}

// Option configures a Scheduler.
type Option func(*Scheduler)

// WithInstanceID sets the id that owns this replica's locks and tags its
// log lines. The default is a random UUID, new at every start.
func WithInstanceID(id string) Option { return func(s *Scheduler) { s.id = id } }

// WithClock sets the clock ticks and leases are judged by (default: the
// system clock).
func WithClock(c clock.Clock) Option { return func(s *Scheduler) { s.clock = c } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(s *Scheduler) { s.log = l } }

// WithLease sets the lock's time to live and how often a running task's
// lease is renewed (defaults 30s and 10s).
func WithLease(ttl, renewInterval time.Duration) Option {
	return func(s *Scheduler) { s.ttl, s.renew = ttl, renewInterval }
}

// WithObserver calls f for every Event, synchronously: f must be quick.
func WithObserver(f func(Event)) Option { return func(s *Scheduler) { s.observe = f } }

// WithRand sets the source of jitter delays (default: randomly seeded).
func WithRand(r *rand.Rand) Option { return func(s *Scheduler) { s.rand = r } }

// WithClaimBackoff sets how long a failed claim waits before it is tried
// again, doubling from first up to most (defaults 100ms and 2s).
func WithClaimBackoff(first, most time.Duration) Option {
	return func(s *Scheduler) { s.backoff = [2]time.Duration{first, most} }
}

// New returns a Scheduler for tasks on store. It checks what a schedule
// file's validation cannot: that the options fit together.
func New(store lock.Store, ts []Task, opts ...Option) (*Scheduler, error) {
	s := &Scheduler{
		store:   store,
		id:      uuid.NewString(),
		clock:   clock.Real{},
		log:     slog.Default(),
		ttl:     30 * time.Second,
		renew:   10 * time.Second,
		backoff: [2]time.Duration{100 * time.Millisecond, 2 * time.Second},
		rand:    rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
	}
	for _, o := range opts {
		o(s)
	}
	var errs []error
	if store == nil {
		errs = append(errs, errors.New("no lock store"))
	}
	if s.id == "" {
		errs = append(errs, errors.New("empty instance id"))
	}
	// A run stops trusting its lease at 9/10 of the ttl (see keepLease), so
	// a renewal must come before that.
	if s.ttl < 10*lock.MinTTL || s.renew <= 0 || s.renew >= s.ttl-s.ttl/10 {
		errs = append(errs, fmt.Errorf("lock ttl %v and renew interval %v: the renew interval must be above 0 and below 9/10 of the ttl (default ttl/3)", s.ttl, s.renew))
	}
	if s.backoff[0] <= 0 || s.backoff[1] < s.backoff[0] {
		errs = append(errs, fmt.Errorf("claim backoff %v..%v: need 0 < first <= most", s.backoff[0], s.backoff[1]))
	}
	names := make(map[string]bool)
	for i := range ts {
		t := ts[i]
		switch {
		case t.Name == "":
			errs = append(errs, fmt.Errorf("task %d: empty name", i))
		case names[t.Name]:
			errs = append(errs, fmt.Errorf("task %q: defined twice", t.Name))
		case t.Schedule == nil || t.Func == nil:
			errs = append(errs, fmt.Errorf("task %q: needs a Schedule and a Func", t.Name))
		}
		names[t.Name] = true
		s.tasks = append(s.tasks, &t)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("scheduler: %w", err)
	}
	s.log = s.log.With("instance", s.id)
	return s, nil
}

// InstanceID returns the id that owns this replica's locks.
func (s *Scheduler) InstanceID() string { return s.id }

// Start begins firing ticks. Runs started from here use ctx for their
// values only: they are cancelled by StopAndCancel or by Stop's deadline,
// not by ctx.
func (s *Scheduler) Start(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("scheduler: already started")
	}
	s.runCtx, s.cancelRun = context.WithCancelCause(context.WithoutCancel(ctx))
	loopCtx, stop := context.WithCancel(ctx)
	s.stopLoop, s.stopped = stop, loopCtx.Done()
	s.loopDone = make(chan struct{})
	s.log.Info("scheduler started", "tasks", len(s.tasks), "lease_ttl", s.ttl, "renew_interval", s.renew)
	for _, t := range s.tasks {
		if t.Suspend {
			s.log.Info("task suspended; not scheduling it", "task", t.Name)
		}
	}
	go s.loop(loopCtx)
	return nil
}

// Stop stops claiming ticks and waits for the runs in flight to finish.
// When ctx is done first it cancels them with cause ErrShutdown and waits a
// moment more. Either way it then releases every lock this instance holds.
func (s *Scheduler) Stop(ctx context.Context) error {
	if !s.started.Load() {
		return errors.New("scheduler: not started")
	}
	if !s.stopping.CompareAndSwap(false, true) {
		return errors.New("scheduler: already stopping")
	}
	s.stopLoop()
	<-s.loopDone
	done := make(chan struct{})
	go func() { s.runs.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.log.Warn("shutdown timeout: cancelling the runs still going")
		s.cancelRun(ErrShutdown)
		select {
		case <-done:
		case <-time.After(time.Second):
			s.log.Error("runs did not return within 1s of being cancelled; releasing their locks anyway")
		}
	}
	s.cancelRun(ErrShutdown)
	err := s.releaseAll()
	s.log.Info("scheduler stopped", "stats", s.Stats())
	return err
}

// StopAndCancel stops claiming, cancels the runs in flight with cause
// ErrShutdown, waits for them until ctx is done, and releases every lock
// this instance holds. Called while a Stop is under way (a second signal),
// it cancels the runs and releases the locks at once, without waiting.
func (s *Scheduler) StopAndCancel(ctx context.Context) error {
	if !s.started.Load() {
		return errors.New("scheduler: not started")
	}
	s.cancelRun(ErrShutdown)
	if s.stopping.Load() {
		return s.releaseAll()
	}
	return s.Stop(ctx)
}

func (s *Scheduler) releaseAll() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	n, err := s.store.ReleaseAll(ctx, s.id)
	if err != nil {
		s.log.Error("releasing this instance's locks failed; they expire on their own within the lock ttl", "err", err, "ttl", s.ttl)
		return fmt.Errorf("scheduler: release-all: %w", err)
	}
	s.log.Info("released this instance's locks", "count", n)
	return nil
}

// jitter draws the delay before a claim.
func (s *Scheduler) jitter(t *Task) time.Duration {
	if t.Jitter <= 0 {
		return 0
	}
	s.jitterMu.Lock()
	defer s.jitterMu.Unlock()
	return time.Duration(s.rand.Int64N(int64(t.Jitter)))
}
