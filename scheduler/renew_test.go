package scheduler_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beatlock/beat/lock"
	"github.com/beatlock/beat/lock/memlock"
	"github.com/beatlock/beat/scheduler"
	"github.com/beatlock/beat/tasks"
)

// deaf is a lock store whose RenewLease, once deaf is set, blocks until the
// test ends whatever its context says: a Redis client that ignores context
// deadlines, on a connection into a network partition, does that.
type deaf struct {
	lock.Store
	deaf atomic.Bool
	gone chan struct{}
}

func (d *deaf) RenewLease(ctx context.Context, l lock.Lease, ttl time.Duration) (bool, error) {
	if d.deaf.Load() {
		<-d.gone
		return false, errDown
	}
	return d.Store.RenewLease(ctx, l, ttl)
}

// deafBatch is deaf for the renewals of a store that renews in batches.
type deafBatch struct{ *deaf }

func (d deafBatch) RenewBatch(ctx context.Context, leases []lock.Lease, ttl time.Duration) ([]bool, error) {
	if d.deaf.deaf.Load() {
		<-d.gone
		return nil, errDown
	}
	return lock.RenewBatch(ctx, d.Store, leases, ttl)
}

// TestLeaseLostWhenRenewalHangs: a renewal that never returns, alone or in
// a batch, does not keep the run going; the run is cancelled with
// lock.ErrLost when the lease's validity runs out. Real clock: the
// renewal's deadline is a context's.
func TestLeaseLostWhenRenewalHangs(t *testing.T) {
	for name, batched := range map[string]bool{"alone": false, "in a batch": true} {
		t.Run(name, func(t *testing.T) { testLeaseLostWhenRenewalHangs(t, batched) })
	}
}

func testLeaseLostWhenRenewalHangs(t *testing.T, batched bool) {
	d := &deaf{Store: memlock.New(), gone: make(chan struct{})}
	t.Cleanup(func() { close(d.gone) })
	var store lock.Store = d
	if batched {
		store = deafBatch{d}
	}
	causes := make(chan error, 1)
	s, err := scheduler.New(store, []scheduler.Task{{Name: "p", Schedule: every(t, "@every 1s"), Func: func(ctx context.Context, run tasks.Run) error {
		d.deaf.Store(true)
		<-ctx.Done()
		select {
		case causes <- context.Cause(ctx):
		default:
		}
		return nil
	}}}, scheduler.WithLease(time.Second, 200*time.Millisecond), scheduler.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = s.StopAndCancel(ctx)
	})
	select {
	case cause := <-causes:
		if !errors.Is(cause, lock.ErrLost) {
			t.Errorf("cause = %v; want lock.ErrLost", cause)
		}
	case <-time.After(hang):
		t.Fatal("run never cancelled: a renewal that does not return kept it going past its lease")
	}
}

// TestRunReturningAfterItsLeaseIsLost: a run that returns after its lease's
// validity ran out, before the renewer noticed (the process was paused, and
// on waking the task's command had been killed by its supervisor), is Lost,
// not Succeeded or Failed: another replica may have run the task meanwhile.
func TestRunReturningAfterItsLeaseIsLost(t *testing.T) {
	for _, taskErr := range []error{nil, errors.New("signal: killed")} {
		t.Run(fmt.Sprint(taskErr), func(t *testing.T) {
			b := setup(t)
			b.start(t, []scheduler.Task{{Name: "p", Schedule: every(t, "@every 1m"), Func: func(ctx context.Context, run tasks.Run) error {
				b.clock.Advance(10 * time.Second) // past the 3 s ttl, in one step
				return taskErr
			}}})
			b.clock.Advance(time.Minute)
			for {
				ev := b.next(t)
				if ev.RunResult() == "" {
					continue // not a run's end
				}
				if ev.Kind != scheduler.Lost || !errors.Is(ev.Err, lock.ErrLost) {
					t.Fatalf("the run ended %v (%v); want lost, with lock.ErrLost", ev.Kind, ev.Err)
				}
				return
			}
		})
	}
}
