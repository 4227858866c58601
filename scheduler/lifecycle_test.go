package scheduler_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beatlock/beat/lock"
	"github.com/beatlock/beat/scheduler"
)

// lostAnswer is a store whose first claim reaches the store but whose
// answer is lost, as when a connection drops after the script ran.
type lostAnswer struct {
	lock.Store
	calls atomic.Int64
}

func (l *lostAnswer) Claim(ctx context.Context, r lock.ClaimRequest) (lock.ClaimResult, error) {
	res, err := l.Store.Claim(ctx, r)
	if l.calls.Add(1) == 1 {
		return lock.ClaimResult{}, errors.New("connection reset (test): the claim ran, its answer was lost")
	}
	return res, err
}

// TestClaimRetryAfterLostAnswerRuns: the retry of a claim whose answer was
// lost gets the claim back, and the tick runs, instead of being taken for
// another replica's.
func TestClaimRetryAfterLostAnswerRuns(t *testing.T) {
	b := setup(t)
	store := &lostAnswer{Store: b.store}
	b.store = store
	var rec recorder
	b.start(t, []scheduler.Task{{Name: "t", Schedule: every(t, "@every 1m"), Func: rec.fn}})
	b.step(t, 100*time.Millisecond, 2) // the loop's timer and the claim's backoff
	b.expect(t, scheduler.Claimed, t0)
	b.expect(t, scheduler.Succeeded, t0)
	if n := store.calls.Load(); n != 2 {
		t.Errorf("%d claims; want 2 (the lost one and its retry)", n)
	}
	if runs := rec.all(); len(runs) != 1 || !runs[0].ScheduledAt.Equal(t0) {
		t.Errorf("runs = %+v; want one of %v", runs, t0)
	}
}

// TestCancelledStartStopsClaiming: once Start's context is cancelled, a
// claim that keeps failing is not retried any more (it used to spin on a
// closed channel until the tick's deadline).
func TestCancelledStartStopsClaiming(t *testing.T) {
	b := setup(t)
	f := &flaky{Store: b.store}
	f.down.Store(true)
	var calls atomic.Int64
	counting := &countingStore{flaky: f, calls: &calls}
	s, err := scheduler.New(counting, []scheduler.Task{{Name: "t", Schedule: every(t, "@every 1m"), Func: (&recorder{}).fn}},
		scheduler.WithClock(b.clock), scheduler.WithLease(3*time.Second, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if !b.clock.BlockUntil(2, hang) { // the loop's timer and the claim's backoff
		t.Fatal("claim not retrying")
	}
	cancel()
	stopCtx, stop := context.WithTimeout(context.Background(), hang)
	defer stop()
	// The fake clock stands still, so only the cancellation can end the
	// retries; Stop returns once they have.
	if err := s.Stop(stopCtx); errors.Is(err, scheduler.ErrRunsStillRunning) || stopCtx.Err() != nil {
		t.Fatalf("Stop = %v (ctx %v): the claim kept retrying", err, stopCtx.Err())
	}
	if n := calls.Load(); n > 3 {
		t.Errorf("%d claim attempts with the clock standing still; want 1 or 2", n)
	}
}

type countingStore struct {
	*flaky
	calls *atomic.Int64
}

func (c *countingStore) Claim(ctx context.Context, r lock.ClaimRequest) (lock.ClaimResult, error) {
	c.calls.Add(1)
	return c.flaky.Claim(ctx, r)
}
