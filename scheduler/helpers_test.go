package scheduler_test

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beatlock/beat/clock/clocktest"
	"github.com/beatlock/beat/lock"
	"github.com/beatlock/beat/lock/memlock"
	"github.com/beatlock/beat/schedule"
	"github.com/beatlock/beat/scheduler"
	"github.com/beatlock/beat/tasks"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// hang bounds every wait for an event, so a broken scheduler fails the test
// instead of hanging it. It asserts nothing about speed.
const hang = 10 * time.Second

type testBundle struct {
	clock  *clocktest.Fake
	store  lock.Store
	events chan scheduler.Event
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	clk := clocktest.New(t0)
	return &testBundle{clock: clk, store: memlock.New(memlock.WithClock(clk.Now)), events: make(chan scheduler.Event, 1000)}
}

// start makes and starts a scheduler on the bundle's clock and store, and
// stops it when the test ends.
func (b *testBundle) start(t *testing.T, ts []scheduler.Task, opts ...scheduler.Option) *scheduler.Scheduler {
	t.Helper()
	opts = append([]scheduler.Option{
		scheduler.WithClock(b.clock),
		scheduler.WithLease(3*time.Second, time.Second),
		scheduler.WithObserver(func(ev scheduler.Event) { b.events <- ev }),
		scheduler.WithLogger(slog.New(slog.DiscardHandler)),
		scheduler.WithRand(rand.New(rand.NewPCG(1, 2))),
	}, opts...)
	s, err := scheduler.New(b.store, ts, opts...)
	if err != nil {
		t.Fatal(err)
	}
	created := b.clock.TimerCreated()
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-created // the loop is waiting for its first tick
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = s.StopAndCancel(ctx)
	})
	return s
}

// step waits until timers timers are pending (the loop's, each run's lease
// renewer, each run's timeout), then moves the clock by d.
func (b *testBundle) step(t *testing.T, d time.Duration, timers int) {
	t.Helper()
	if !b.clock.BlockUntil(timers, hang) {
		t.Fatalf("%d timers pending; want %d", b.clock.Timers(), timers)
	}
	b.clock.Advance(d)
}

// runClock moves the clock on by step every millisecond of real time,
// while more returns true, until the test ends: for scenarios that wait on
// many timers (claim retries, a tick's window).
func (b *testBundle) runClock(t *testing.T, step time.Duration, more func() bool) {
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
			}
			if more() {
				b.clock.Advance(step)
			}
		}
	}()
}

// next waits for the next event that is not a renewal.
func (b *testBundle) next(t *testing.T) scheduler.Event {
	t.Helper()
	for {
		select {
		case ev := <-b.events:
			if ev.Kind != scheduler.Renewed {
				return ev
			}
		case <-time.After(hang):
			t.Fatal("no event came")
		}
	}
}

// expect waits for the next event and checks its kind and tick.
func (b *testBundle) expect(t *testing.T, kind scheduler.EventKind, tick time.Time) scheduler.Event {
	t.Helper()
	ev := b.next(t)
	if ev.Kind != kind || !ev.Tick.Equal(tick) {
		t.Fatalf("event %v %s @ %v (err %v); want %v @ %v", ev.Kind, ev.Task, ev.Tick.UTC(), ev.Err, kind, tick.UTC())
	}
	return ev
}

// waitFor waits for an event of kind, skipping others.
func (b *testBundle) waitFor(t *testing.T, kind scheduler.EventKind) scheduler.Event {
	t.Helper()
	deadline := time.After(hang)
	for {
		select {
		case ev := <-b.events:
			if ev.Kind == kind {
				return ev
			}
		case <-deadline:
			t.Fatalf("no %v event came", kind)
		}
	}
}

// quiet asserts that no event other than a renewal is pending.
func (b *testBundle) quiet(t *testing.T) {
	t.Helper()
	for {
		select {
		case ev := <-b.events:
			if ev.Kind != scheduler.Renewed {
				t.Fatalf("unexpected event %v %s @ %v", ev.Kind, ev.Task, ev.Tick.UTC())
			}
		default:
			return
		}
	}
}

func quietLog() scheduler.Option { return scheduler.WithLogger(slog.New(slog.DiscardHandler)) }

func every(t *testing.T, spec string) schedule.Schedule {
	t.Helper()
	s, err := schedule.Parse(spec, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// recorder is a task Func that records its runs.
type recorder struct {
	mu   sync.Mutex
	runs []tasks.Run
	n    atomic.Int64
}

func (r *recorder) fn(ctx context.Context, run tasks.Run) error {
	r.mu.Lock()
	r.runs = append(r.runs, run)
	r.mu.Unlock()
	r.n.Add(1)
	return nil
}

func (r *recorder) all() []tasks.Run {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]tasks.Run(nil), r.runs...)
}

// flaky is a lock store whose calls fail while down is set.
type flaky struct {
	lock.Store
	down atomic.Bool
}

var errDown = errors.New("store down (test)")

func (f *flaky) Claim(ctx context.Context, r lock.ClaimRequest) (lock.ClaimResult, error) {
	if f.down.Load() {
		return lock.ClaimResult{}, errDown
	}
	return f.Store.Claim(ctx, r)
}

func (f *flaky) RenewLease(ctx context.Context, l lock.Lease, ttl time.Duration) (bool, error) {
	if f.down.Load() {
		return false, errDown
	}
	return f.Store.RenewLease(ctx, l, ttl)
}

func (f *flaky) ReleaseLease(ctx context.Context, l lock.Lease, run *lock.RunRecord) (bool, error) {
	if f.down.Load() {
		return false, errDown
	}
	return f.Store.ReleaseLease(ctx, l, run)
}
