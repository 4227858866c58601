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
	"strings"
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
	Name     string // unique, without '@' (see lock.CheckTask); the lock key derives from it
	Schedule schedule.Schedule
	Func     tasks.Func
	Type     string         // the registered type name, passed on in tasks.Run
	Args     map[string]any // passed on in tasks.Run
	// Timeout bounds a run; 0 means none.
	Timeout time.Duration
	Policy  lock.Policy
	// StartingDeadline is how late a tick may still be claimed, whatever
	// made it late: a start after it, a store outage, a paused process, a
	// stepped clock; 0 means DefaultStartingDeadline. The tick's window
	// closes at it or at the next tick, whichever comes first (only the
	// most recent due tick is ever run), judged by the store's clock; ticks
	// whose window closed are counted as missed.
	StartingDeadline time.Duration
	// Suspend keeps the task from being scheduled.
	Suspend bool
	// Jitter delays each claim by a random amount in [0, Jitter), drawn per
	// replica and tick; the tick's identity stays the nominal instant. It
	// may not exceed the starting deadline nor the shortest time between
	// two ticks (see CheckTiming).
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

// deadline closes the tick's window: its starting deadline or its next
// tick, whichever comes first (only the most recent due tick is ever run).
// No claim of the tick may be made from then on.
func (t *Task) deadline(tick time.Time) time.Time {
	d := t.lateness()
	if next := t.Schedule.Next(tick); !next.IsZero() {
		d = min(d, next.Sub(tick))
	}
	return tick.Add(d)
}

// intervalSample is how many ticks CheckTiming looks at to find the
// shortest time between two of them.
const intervalSample = 400

// CheckTiming checks that a jitter cannot push a claim past its tick's
// starting deadline (startingDeadline, 0 for the default) or past the next
// tick of sched. The schedule file's validation and New both apply it.
func CheckTiming(sched schedule.Schedule, startingDeadline, jitter time.Duration) error {
	if jitter <= 0 || sched == nil {
		return nil
	}
	t := Task{Schedule: sched, StartingDeadline: startingDeadline}
	if jitter > t.lateness() {
		what := fmt.Sprintf("the starting deadline (%v)", t.lateness())
		if startingDeadline == 0 {
			what = fmt.Sprintf("the default starting deadline (%v)", DefaultStartingDeadline)
		}
		return fmt.Errorf("jitter %v could delay a claim past %s, and the tick would be skipped: use a jitter of at most %v, or a longer starting_deadline", jitter, what, t.lateness())
	}
	if gap := schedule.MinInterval(sched, time.Now(), intervalSample); gap > 0 && jitter > gap {
		return fmt.Errorf("jitter %v could delay a claim past the next tick (ticks can be %v apart): use a jitter of at most %v", jitter, gap, gap)
	}
	return nil
}

// job is a task and what the scheduler keeps about it while it runs.
type job struct {
	Task
	// answered is set at the first answer of the store about the task; the
	// ticks that nobody decided before this process started are reported
	// then, once.
	answered atomic.Bool
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
	jobs     []*job // replaced by Update, under mu; the loop's own once started
	id       string
	clock    clock.Clock
	log      *slog.Logger
	ttl      time.Duration
	renew    time.Duration
	maxSkew  time.Duration
	observe  func(Event)
	backoff  [2]time.Duration  // claim retry backoff: first, most
	maxRuns  int               // WithMaxConcurrentRuns
	slots    chan struct{}     // one per claim or run in flight, when maxRuns > 0
	batcher  lock.BatchClaimer // the store's, when it claims in batches
	claimers chan struct{}     // one per batch being claimed: bounds the calls in flight
	// releases and renewals batch the store's calls, when it can.
	releases *group[lock.LeaseEnd, bool]
	renewals *group[lock.Lease, bool]
	jitterMu sync.Mutex
	rand     *rand.Rand

	stats counters

	// session tells this process's claims from those of an earlier process
	// with the same instance id (see lock.ClaimRequest.Session), and owner,
	// "<instance id>/<session>", owns its locks: two processes wrongly given
	// one instance id never release each other's locks.
	session, owner string

	// epoch is the store's epoch (Unix ms) as this process last saw it.
	epoch atomic.Int64
	// offset is how far the store's clock runs ahead of this replica's
	// (ns), at least: the highest of storeClock's bounds, kept here so that
	// every tick reads it without a lock; see noteStoreClock.
	offset     atomic.Int64
	storeClock storeClock
	// contendedAt is when a peer last claimed a tick first (Unix ns on
	// clock), running how many runs are going: see loadDelay.
	contendedAt atomic.Int64
	running     atomic.Int64
	// beat is when the loop last went round (Unix ns on clock).
	beat atomic.Int64
	// updates carries Update's new tasks to the loop.
	updates chan update
	// refusedAt is when a store refusing this replica was last said (Unix
	// ns; see storeErrorLevel).
	refusedAt atomic.Int64
	// busyTasks holds, for each task whose tick this replica found Busy,
	// when that was last said at WARN (*atomic.Int64, Unix ns; see
	// sayBusy).
	busyTasks sync.Map
	// claimed is set once this process has claimed a tick: a stop that
	// never claimed anything has no locks to release.
	claimed atomic.Bool
	// releaseAt is when a stop releases the locks of runs that have not
	// returned; zero until a stop cancels them.
	releaseAt instant

	// Set by Start, under mu; read-only afterwards.
	mu        sync.Mutex
	started   bool
	startedAt time.Time
	stopLoop  context.CancelFunc
	stopped   <-chan struct{} // closed when claiming stops: Stop, or Start's ctx done
	loopDone  chan struct{}
	runCtx    context.Context
	cancelRun context.CancelCauseFunc

	runs     sync.WaitGroup // claims and runs in flight
	finished sync.Once      // the final ReleaseAll
	finalErr error
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

// WithMaxClockSkew sets how far ahead of the lock store's clock a tick may
// be and still be claimed once the store's clock reaches it (default 2s);
// a tick further ahead means this replica's clock is wrong, and is refused.
func WithMaxClockSkew(d time.Duration) Option { return func(s *Scheduler) { s.maxSkew = d } }

// WithObserver calls f for every Event, synchronously: f must be quick.
func WithObserver(f func(Event)) Option { return func(s *Scheduler) { s.observe = f } }

// WithMaxConcurrentRuns bounds the runs this replica holds at once
// (default 0: no bound). A replica at its bound does not claim: the
// replicas with room take the tick; a tick whose window closes while the
// replica is still full is reported as AtCapacity.
func WithMaxConcurrentRuns(n int) Option {
	return func(s *Scheduler) { s.maxRuns = n }
}

// WithRand sets the source of jitter delays (default: randomly seeded).
func WithRand(r *rand.Rand) Option { return func(s *Scheduler) { s.rand = r } }

// WithClaimBackoff sets how long a failed claim waits before it is tried
// again, doubling from first up to most (defaults 100ms and 2s).
func WithClaimBackoff(first, most time.Duration) Option {
	return func(s *Scheduler) { s.backoff = [2]time.Duration{first, most} }
}

// DefaultMaxClockSkew is the default of WithMaxClockSkew.
const DefaultMaxClockSkew = 2 * time.Second

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
		maxSkew: DefaultMaxClockSkew,
		backoff: [2]time.Duration{100 * time.Millisecond, 2 * time.Second},
		rand:    rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		session: strings.ReplaceAll(uuid.NewString(), "-", "")[:12],
		updates: make(chan update),
		// A few batches in flight keep the store busy; more would only wait
		// for a connection, their time running out.
		claimers: make(chan struct{}, 4),
	}
	s.batcher, _ = store.(lock.BatchClaimer)
	if r, ok := store.(lock.BatchReleaser); ok {
		s.releases = newGroup("release", r.ReleaseBatch)
	}
	if r, ok := store.(lock.BatchRenewer); ok {
		s.renewals = newGroup("lease renewal", func(ctx context.Context, leases []lock.Lease) ([]bool, error) {
			return r.RenewBatch(ctx, leases, s.ttl)
		})
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
	if err := lock.CheckRenewal(s.ttl, s.renew); err != nil {
		errs = append(errs, err)
	}
	if s.maxSkew < 0 {
		errs = append(errs, fmt.Errorf("max clock skew %v: must not be negative", s.maxSkew))
	}
	switch {
	case s.maxRuns < 0:
		errs = append(errs, fmt.Errorf("max concurrent runs %d: must not be negative", s.maxRuns))
	case s.maxRuns > 0:
		s.slots = make(chan struct{}, s.maxRuns)
	}
	if s.backoff[0] <= 0 || s.backoff[1] < s.backoff[0] {
		errs = append(errs, fmt.Errorf("claim backoff %v..%v: need 0 < first <= most", s.backoff[0], s.backoff[1]))
	}
	jobs, err := newJobs(ts)
	if err != nil {
		errs = append(errs, err)
	}
	s.jobs = jobs
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("scheduler: %w", err)
	}
	s.owner = s.id + "/" + s.session
	s.log = s.log.With("instance", s.id)
	return s, nil
}

// newJobs checks tasks and makes their jobs.
func newJobs(ts []Task) ([]*job, error) {
	var errs []error
	names := make(map[string]bool)
	jobs := make([]*job, 0, len(ts))
	for i := range ts {
		t := ts[i]
		switch {
		case t.Name == "":
			errs = append(errs, fmt.Errorf("task %d: empty name", i))
		case names[t.Name]:
			errs = append(errs, fmt.Errorf("task %q: defined twice", t.Name))
		case t.Schedule == nil || t.Func == nil:
			errs = append(errs, fmt.Errorf("task %q: needs a Schedule and a Func", t.Name))
		default:
			if err := errors.Join(lock.CheckTask(t.Name), CheckTiming(t.Schedule, t.StartingDeadline, t.Jitter)); err != nil {
				errs = append(errs, fmt.Errorf("task %q: %w", t.Name, err))
			}
		}
		names[t.Name] = true
		jobs = append(jobs, &job{Task: t})
	}
	return jobs, errors.Join(errs...)
}

// ErrStopped is returned by Update once the scheduler has stopped.
var ErrStopped = errors.New("scheduler: stopped")

// update is a new set of tasks for the loop; done is closed once applied.
type update struct {
	jobs []*job
	done chan struct{}
}

// Update replaces the scheduler's tasks, checked as New checks them; on an
// error nothing changes. A new task starts with its first tick after the
// update; a removed task is no longer scheduled, and its claims and runs in
// flight finish; a task that keeps its name takes its new settings from its
// next tick, and its new schedule from the first tick after the update
// unless its next tick is also one of the new schedule's. It returns once
// the loop runs on the new tasks.
func (s *Scheduler) Update(ctx context.Context, ts []Task) error {
	jobs, err := newJobs(ts)
	if err != nil {
		return fmt.Errorf("scheduler: %w", err)
	}
	s.mu.Lock()
	if !s.started {
		s.jobs = jobs
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	u := update{jobs: jobs, done: make(chan struct{})}
	select {
	case s.updates <- u:
	case <-s.loopDone:
		return ErrStopped
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	select {
	case <-u.done:
		return nil
	case <-s.loopDone:
		return ErrStopped
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// LoopLag is how long ago the loop that fires ticks last went round; it
// goes round at least once a second while it runs, so a lag of many seconds
// means it is stuck. Zero before Start and once stopping: a loop that was
// told to stop is not stuck.
func (s *Scheduler) LoopLag() time.Duration {
	beat := s.beat.Load()
	if beat == 0 || s.stopping() {
		return 0
	}
	return max(s.clock.Now().Sub(time.Unix(0, beat)), 0)
}

// InstanceID returns the replica's id, as its runs and log lines see it.
func (s *Scheduler) InstanceID() string { return s.id }

// Owner returns the owner of this process's locks in the store:
// "<instance id>/<session>", new at every process start.
func (s *Scheduler) Owner() string { return s.owner }

// ErrRunsStillRunning is returned by Stop and StopAndCancel when runs had
// not returned a moment after they were cancelled: their locks were released
// all the same, so another replica may start the task while they go on.
var ErrRunsStillRunning = errors.New("scheduler: runs still running after cancellation")

// cancelGrace is how long runs get to return once a stop cancelled them
// (tasks.LeaseLeft tells them); their locks are released after it and a
// moment more, whether they returned or not.
const cancelGrace = 3 * time.Second

// Start begins firing ticks. Cancelling ctx stops the claiming of new ticks;
// runs started from here use ctx for its values only: they are cancelled by
// StopAndCancel or by Stop's deadline, not by ctx.
func (s *Scheduler) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("scheduler: already started")
	}
	s.started = true
	s.startedAt = s.clock.Now()
	s.runCtx, s.cancelRun = context.WithCancelCause(context.WithoutCancel(ctx))
	loopCtx, stop := context.WithCancel(ctx)
	s.stopLoop, s.stopped = stop, loopCtx.Done()
	s.loopDone = make(chan struct{})
	s.log.Info("scheduler started", "tasks", len(s.jobs), "lock_owner", s.owner, "lease_ttl", s.ttl, "renew_interval", s.renew, "max_clock_skew", s.maxSkew)
	for _, t := range s.jobs {
		if t.Suspend {
			s.log.Info("task suspended; not scheduling it", "task", t.Name)
		}
	}
	go s.loop(loopCtx)
	return nil
}

// halt stops claiming and waits for the loop to exit; after it no claim or
// run begins. Safe to call more than once.
func (s *Scheduler) halt() error {
	s.mu.Lock()
	started := s.started
	s.mu.Unlock()
	if !started {
		return errors.New("scheduler: not started")
	}
	s.stopLoop()
	<-s.loopDone
	return nil
}

// stopping reports whether claiming has stopped.
func (s *Scheduler) stopping() bool {
	select {
	case <-s.stopped:
		return true
	default:
		return false
	}
}

// waitRuns waits for the runs in flight, or for ctx; it reports whether they
// all returned.
func (s *Scheduler) waitRuns(ctx context.Context) bool {
	done := make(chan struct{})
	go func() { s.runs.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}

// Stop stops claiming ticks and waits for the runs in flight to finish.
// When ctx is done first it cancels them with cause ErrShutdown and gives
// them a moment more. Then it releases every lock this instance holds.
func (s *Scheduler) Stop(ctx context.Context) error {
	if err := s.halt(); err != nil {
		return err
	}
	if s.waitRuns(ctx) {
		return s.finish(true)
	}
	s.log.Warn("shutdown timeout: cancelling the runs still going")
	return s.cancelAndFinish()
}

// StopAndCancel stops claiming, cancels the runs in flight with cause
// ErrShutdown, gives them a moment to return, and releases every lock this
// instance holds. It may be called while a Stop waits (a second signal).
func (s *Scheduler) StopAndCancel(ctx context.Context) error {
	if err := s.halt(); err != nil {
		return err
	}
	return s.cancelAndFinish()
}

func (s *Scheduler) cancelAndFinish() error {
	// Runs learn through tasks.LeaseLeft how long they have to stop; an
	// exec run's processes get SIGTERM, then SIGKILL by then.
	if s.releaseAt.get().IsZero() {
		s.releaseAt.set(s.clock.Now().Add(cancelGrace))
	}
	s.cancelRun(ErrShutdown)
	wait := cancelGrace + time.Second
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	returned := s.waitRuns(ctx)
	if !returned {
		s.log.Error("runs did not return after being cancelled; releasing their locks anyway", "waited", wait)
	}
	return s.finish(returned)
}

// finish releases every lock of this instance, once, however many stops
// call it.
func (s *Scheduler) finish(runsReturned bool) error {
	s.finished.Do(func() {
		s.cancelRun(ErrShutdown)
		s.finalErr = s.releaseAll()
		if !runsReturned {
			s.finalErr = errors.Join(ErrRunsStillRunning, s.finalErr)
		}
		s.log.Info("scheduler stopped", "stats", s.Stats())
	})
	return s.finalErr
}

func (s *Scheduler) releaseAll() error {
	if !s.claimed.Load() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	n, err := s.store.ReleaseAll(ctx, s.owner)
	if err != nil {
		s.log.Error("releasing this instance's locks failed; they expire on their own within the lock ttl", "err", err, "ttl", s.ttl)
		return fmt.Errorf("scheduler: release-all: %w", err)
	}
	s.log.Info("released this instance's locks", "count", n)
	return nil
}

// jitter draws the delay before a claim.
func (s *Scheduler) jitter(t *job) time.Duration {
	if t.Jitter <= 0 {
		return 0
	}
	s.jitterMu.Lock()
	defer s.jitterMu.Unlock()
	return time.Duration(s.rand.Int64N(int64(t.Jitter)))
}
