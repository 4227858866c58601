package scheduler_test

// The edges of the guarantee (issue 7): late timers, late answers, stale
// retries, wrong clocks, a store without records, shared instance ids.

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beatlock/beat/clock"
	"github.com/beatlock/beat/lock"
	"github.com/beatlock/beat/lock/memlock"
	"github.com/beatlock/beat/scheduler"
	"github.com/beatlock/beat/tasks"
)

// TestLateTimerSkipsPastDeadline: a process paused (or a wall clock stepped)
// past a tick's starting deadline does not claim the tick when it resumes;
// it reports it as missed and takes the next one.
func TestLateTimerSkipsPastDeadline(t *testing.T) {
	cases := []struct {
		name     string
		spec     string
		deadline time.Duration
		pause    time.Duration // from t0, the first tick
		missed   int           // ticks reported missed
		next     time.Time     // the next tick claimed
	}{
		{"daily, 5h late", "0 12 * * *", 10 * time.Second, 24*time.Hour + 5*time.Hour, 1, t0.Add(48 * time.Hour)},
		{"every minute, 30s late", "@every 1m", 10 * time.Second, time.Minute + 30*time.Second, 1, t0.Add(2 * time.Minute)},
		{"every minute, 2.5 periods late", "@every 1m", 10 * time.Second, 2*time.Minute + 30*time.Second, 2, t0.Add(3 * time.Minute)},
		{"within the deadline: still run", "@every 1m", 10 * time.Second, time.Minute + 5*time.Second, 0, t0.Add(time.Minute)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := setup(t)
			var calls atomic.Int64
			b.store = &claimSpy{Store: b.store, claims: &calls}
			var rec recorder
			s := b.start(t, []scheduler.Task{{Name: "d", Schedule: every(t, c.spec), Func: rec.fn, StartingDeadline: c.deadline}})
			b.expect(t, scheduler.Claimed, t0)
			b.expect(t, scheduler.Succeeded, t0)
			before := calls.Load()
			b.step(t, c.pause, 1) // the process was frozen; its timer fires late
			for missed := 0; missed < c.missed; {
				ev := b.next(t)
				if ev.Kind != scheduler.Missed || !ev.Tick.Before(c.next) {
					t.Fatalf("event %v @ %v; want ticks before %v missed", ev.Kind, ev.Tick, c.next)
				}
				missed += ev.Count
			}
			if c.next.After(b.clock.Now()) {
				b.step(t, c.next.Sub(b.clock.Now()), 1)
			}
			b.expect(t, scheduler.Claimed, c.next)
			b.expect(t, scheduler.Succeeded, c.next)
			if got := s.Stats().Missed; got != uint64(c.missed) {
				t.Errorf("missed %d ticks; want %d", got, c.missed)
			}
			if n := calls.Load() - before; n != 1 {
				t.Errorf("%d claims sent after the pause; want 1 (the tick that was still due)", n)
			}
			for _, r := range rec.all() {
				if !r.ScheduledAt.Equal(t0) && !r.ScheduledAt.Equal(c.next) {
					t.Errorf("ran %v; want only %v and %v", r.ScheduledAt, t0, c.next)
				}
			}
		})
	}
}

// TestLateAnswerDoesNotStartRun: a claim whose answer comes after 9/10 of
// the ttl has a lease that may already be gone: the run is not started, the
// lease is released, and the tick stays claimed (it runs nowhere).
func TestLateAnswerDoesNotStartRun(t *testing.T) {
	b := setup(t)
	slow := &slowAnswer{Store: b.store, clock: b.clock.Advance, delay: 2800 * time.Millisecond} // ttl 3s
	b.store = slow
	var rec recorder
	b.start(t, []scheduler.Task{{Name: "s", Schedule: every(t, "@every 1h"), Func: rec.fn, StartingDeadline: time.Minute}})
	ev := b.expect(t, scheduler.ClaimFailed, t0)
	if ev.Err == nil || !strings.Contains(ev.Err.Error(), "9/10 of the lock ttl") {
		t.Errorf("err = %v; want the answer's lateness", ev.Err)
	}
	if n := rec.n.Load(); n != 0 {
		t.Errorf("the task ran %d times on an untrusted lease", n)
	}
	if ok, err := slow.Store.IsLocked(context.Background(), "s"); ok || err != nil {
		t.Errorf("IsLocked = %v, %v; want the lease released", ok, err)
	}
	res, err := slow.Store.Claim(context.Background(), lock.ClaimRequest{Task: "s", Tick: t0, Owner: "other", TTL: time.Second})
	if err != nil || res.Outcome != lock.AlreadyClaimed {
		t.Errorf("another replica's claim = %v, %v; want already-claimed", res.Outcome, err)
	}
}

// TestOlderClaimAbandonedWhenNewerTickDue: while the store is down, a
// tick's claim retries; once a newer tick of the task is due, the older
// claim is abandoned and counted as missed, so that when the store returns
// only the newer tick runs (Allow, starting deadline longer than the period).
func TestOlderClaimAbandonedWhenNewerTickDue(t *testing.T) {
	b := setup(t)
	f := &flaky{Store: b.store}
	f.down.Store(true)
	b.store = f
	var rec recorder
	b.start(t, []scheduler.Task{{Name: "a", Schedule: every(t, "@every 1m"), Func: rec.fn, Policy: lock.Allow, StartingDeadline: 5 * time.Minute}})
	// Tick 0 retries with backoff up to 2s; walk to the next tick.
	for b.clock.Now().Before(t0.Add(time.Minute)) {
		b.step(t, time.Second, 2) // the loop's timer and the retry's
	}
	f.down.Store(false)
	var missed, claimed, succeeded bool
	for !missed || !claimed || !succeeded {
		select {
		case ev := <-b.events:
			switch ev.Kind {
			case scheduler.Missed:
				if !ev.Tick.Equal(t0) || !strings.Contains(ev.Reason, "next tick of the task came due") {
					t.Errorf("missed %v (%s); want %v, superseded", ev.Tick, ev.Reason, t0)
				}
				missed = true
			case scheduler.Claimed:
				if !ev.Tick.Equal(t0.Add(time.Minute)) {
					t.Fatalf("claimed %v; want only the most recent tick", ev.Tick)
				}
				claimed = true
			case scheduler.Succeeded:
				succeeded = true
			}
		case <-time.After(20 * time.Millisecond):
			if b.clock.Now().After(t0.Add(2 * time.Minute)) {
				t.Fatalf("missed reported %v, newer tick claimed %v", missed, claimed)
			}
			b.step(t, 100*time.Millisecond, 1)
		}
	}
	runs := rec.all()
	if len(runs) != 1 || !runs[0].ScheduledAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("runs %v; want one, of %v", runs, t0.Add(time.Minute))
	}
}

// TestWindowJudgedByStoreClock: a tick's window (its starting deadline, or
// its next tick) is judged by the store's clock, as its start is: a replica
// whose clock runs ahead by more than the window, but within the max skew,
// still claims its ticks once the store's clock reaches them; one whose
// clock runs behind by more than the window gets none, each reported as
// missed with how far behind it is.
func TestWindowJudgedByStoreClock(t *testing.T) {
	cases := []struct {
		name   string
		by     time.Duration
		runs   bool
		reason string
	}{
		{"ahead 1.5s, within the skew", 1500 * time.Millisecond, true, ""},
		{"behind 3s", -3 * time.Second, false, "behind the store's"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := setup(t)
			var rec recorder
			missed := make(chan scheduler.Event, 100)
			s, err := scheduler.New(b.store, []scheduler.Task{{Name: "w", Schedule: every(t, "@every 1s"), Func: rec.fn}},
				scheduler.WithClock(clock.Offset{Base: b.clock, By: c.by}), scheduler.WithLease(3*time.Second, time.Second),
				quietLog(), scheduler.WithObserver(func(ev scheduler.Event) {
					if ev.Kind == scheduler.Missed {
						missed <- ev
					}
				}))
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.StopAndCancel(context.Background()) })
			for range 40 { // 4s in steps, so timers of either clock fire
				if !b.clock.BlockUntil(1, hang) {
					t.Fatal("no timer")
				}
				b.clock.Advance(100 * time.Millisecond)
				time.Sleep(time.Millisecond)
			}
			n := rec.n.Load()
			if c.runs && n < 3 {
				t.Errorf("%d runs in 4s of @every 1s; want 3 or more", n)
			}
			if !c.runs {
				if n != 0 {
					t.Errorf("%d runs; want none, every window closed by the store's clock", n)
				}
				select {
				case ev := <-missed:
					if !strings.Contains(ev.Reason, c.reason) {
						t.Errorf("missed, reason %q; want it to say %q", ev.Reason, c.reason)
					}
				default:
					t.Error("no tick reported missed")
				}
			}
			for _, r := range rec.all() {
				if r.ScheduledAt.After(b.clock.Now()) {
					t.Errorf("tick %v ran before the store's clock reached it", r.ScheduledAt)
				}
			}
		})
	}
}

// TestClockAheadRefused: a replica whose clock is 30 minutes ahead is told
// so for every tick (an error, once per tick) and runs nothing, and the
// replica with the right clock runs every tick; a replica 1s ahead, within
// the max skew, waits for the store's clock and claims its share.
func TestClockAheadRefused(t *testing.T) {
	b := setup(t)
	var right, wrong, near recorder
	task := func(r *recorder) []scheduler.Task {
		return []scheduler.Task{{Name: "c", Schedule: every(t, "@every 10s"), Func: r.fn}}
	}
	var ahead, nearAhead atomic.Int64
	observe := func(n *atomic.Int64) scheduler.Option {
		return scheduler.WithObserver(func(ev scheduler.Event) {
			if ev.Kind == scheduler.ClockAhead {
				n.Add(1)
			}
		})
	}
	mk := func(r *recorder, by time.Duration, o scheduler.Option) *scheduler.Scheduler {
		s, err := scheduler.New(b.store, task(r), scheduler.WithClock(clock.Offset{Base: b.clock, By: by}),
			scheduler.WithLease(3*time.Second, time.Second), quietLog(), o)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.StopAndCancel(context.Background()) })
		return s
	}
	mk(&wrong, 30*time.Minute, observe(&ahead))
	mk(&near, time.Second, observe(&nearAhead))
	b.start(t, task(&right))
	// 62s: six ticks, and time for the last one's claims, which replicas
	// that have seen a peer claim spread over a few milliseconds.
	for range 62 {
		b.step(t, time.Second, 3)
		time.Sleep(time.Millisecond) // let claims of a tick race, as replicas do
	}
	if n := wrong.n.Load(); n != 0 {
		t.Errorf("the replica 30 minutes ahead ran %d ticks", n)
	}
	if ahead.Load() == 0 {
		t.Error("the replica 30 minutes ahead was never told its clock is wrong")
	}
	if nearAhead.Load() != 0 {
		t.Error("a replica 1s ahead, within the max skew, was refused")
	}
	seen := map[time.Time]int{}
	for _, r := range append(right.all(), near.all()...) {
		seen[r.ScheduledAt]++
		if r.ScheduledAt.After(b.clock.Now()) {
			t.Errorf("tick %v ran before the store's clock reached it", r.ScheduledAt)
		}
	}
	for i := 0; i <= 6; i++ {
		if tick := t0.Add(time.Duration(i) * 10 * time.Second); seen[tick] != 1 {
			t.Errorf("tick %v ran %d times; want 1", tick, seen[tick])
		}
	}
}

// TestStoreWithoutRecordsIsNotCaughtUp: a store made after a tick (the
// in-memory store of a restarted beat) refuses it, so the tick its
// predecessor ran is not run again; the next tick runs.
func TestStoreWithoutRecordsIsNotCaughtUp(t *testing.T) {
	b := setup(t)
	b.clock.Set(t0.Add(3 * time.Second)) // restarted 3s after the tick
	b.store = memlock.New(memlock.WithClock(b.clock.Now))
	var rec recorder
	s := b.start(t, []scheduler.Task{{Name: "m", Schedule: every(t, "@every 20s"), Func: rec.fn}})
	b.expect(t, scheduler.StoreLost, t0)
	b.step(t, 17*time.Second, 1)
	b.expect(t, scheduler.Claimed, t0.Add(20*time.Second))
	if st := s.Stats(); st.StoreLost != 1 || st.Claimed != 1 {
		t.Errorf("stats %+v; want 1 store-lost, 1 claimed", st)
	}
}

// TestSameInstanceIDReleasesOnlyItsOwn: two processes wrongly given one
// instance id; when one stops, the other's run keeps its lock.
func TestSameInstanceIDReleasesOnlyItsOwn(t *testing.T) {
	b := setup(t)
	release := make(chan struct{})
	defer close(release)
	long := func(ctx context.Context, run tasks.Run) error {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return context.Cause(ctx)
	}
	a := b.start(t, []scheduler.Task{{Name: "long", Schedule: every(t, "@every 1h"), Func: long}}, scheduler.WithInstanceID("pod"))
	b.expect(t, scheduler.Claimed, t0)
	other, err := scheduler.New(b.store, []scheduler.Task{{Name: "other", Schedule: every(t, "@every 1h"), Func: (&recorder{}).fn}},
		scheduler.WithInstanceID("pod"), scheduler.WithClock(b.clock), quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if a.Owner() == other.Owner() || !strings.HasPrefix(other.Owner(), "pod/") {
		t.Fatalf("owners %q and %q; want distinct, under the instance id", a.Owner(), other.Owner())
	}
	if err := other.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := other.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if owner, ok, err := b.store.Owner(context.Background(), "long"); !ok || err != nil || owner != a.Owner() {
		t.Errorf("after the other process stopped: Owner = %q, %v, %v; want %q", owner, ok, err, a.Owner())
	}
}

// TestRunsLearnTheirLease: a run's context carries its lease: what is left
// of it, a change signalled at each renewal (an exec run's supervisor hears
// of it at once), and nothing left once the lease is lost.
func TestRunsLearnTheirLease(t *testing.T) {
	b := setup(t)
	f := &flaky{Store: b.store}
	b.store = f
	leases := make(chan tasks.Lease, 1)
	b.start(t, []scheduler.Task{{Name: "g", Schedule: every(t, "@every 1h"), Func: func(ctx context.Context, run tasks.Run) error {
		l, ok := tasks.LeaseOf(ctx)
		if !ok {
			t.Error("a run without a lease")
		}
		leases <- l
		<-ctx.Done()
		return nil
	}}})
	b.expect(t, scheduler.Claimed, t0)
	l := <-leases
	changed := l.Changed()
	if left := l.Left(); left != 2700*time.Millisecond { // 9/10 of the 3s ttl, the clock standing still
		t.Errorf("lease left at start = %v; want 2.7s", left)
	}
	b.step(t, 500*time.Millisecond, 2)
	if left := l.Left(); left != 2200*time.Millisecond {
		t.Errorf("lease left 0.5s in = %v; want 2.2s", left)
	}
	b.step(t, 500*time.Millisecond, 2) // the renewal at 1s
	select {
	case <-changed:
	case <-time.After(hang):
		t.Fatal("no change signalled at the renewal")
	}
	if left := l.Left(); left != 2700*time.Millisecond {
		t.Errorf("lease left after the renewal = %v; want 2.7s again", left)
	}
	f.down.Store(true)
	for l.Left() > 0 {
		time.Sleep(20 * time.Millisecond) // let the renewer fail and retry
		b.step(t, 100*time.Millisecond, 2)
	}
	if now := b.clock.Now(); now.After(t0.Add(time.Second + 2700*time.Millisecond)) {
		t.Errorf("lease left until %v; want nothing left from 3.7s, 9/10 of the ttl after the last renewal", now)
	}
	b.waitFor(t, scheduler.Lost)
}

// claimSpy counts the claims sent to the store.
type claimSpy struct {
	lock.Store
	claims *atomic.Int64
}

func (c *claimSpy) Claim(ctx context.Context, r lock.ClaimRequest) (lock.ClaimResult, error) {
	c.claims.Add(1)
	return c.Store.Claim(ctx, r)
}

// slowAnswer is a store whose claims take delay on the test's clock.
type slowAnswer struct {
	lock.Store
	clock func(time.Duration)
	delay time.Duration
}

func (s *slowAnswer) Claim(ctx context.Context, r lock.ClaimRequest) (lock.ClaimResult, error) {
	res, err := s.Store.Claim(ctx, r)
	s.clock(s.delay)
	return res, err
}
