package scheduler_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/beatlock/beat/lock"
	"github.com/beatlock/beat/scheduler"
	"github.com/beatlock/beat/tasks"
)

func TestRunsEachTickOnce(t *testing.T) {
	b := setup(t)
	var rec recorder
	s := b.start(t, []scheduler.Task{{Name: "hb", Schedule: every(t, "@every 1s"), Func: rec.fn, Type: "log", Args: map[string]any{"k": "v"}}},
		scheduler.WithInstanceID("pod-1"))
	for i := range 5 {
		if i > 0 {
			b.step(t, time.Second, 1)
		}
		tick := t0.Add(time.Duration(i) * time.Second)
		b.expect(t, scheduler.Claimed, tick)
		b.expect(t, scheduler.Succeeded, tick)
	}
	runs := rec.all()
	if len(runs) != 5 {
		t.Fatalf("%d runs; want 5", len(runs))
	}
	for i, r := range runs {
		if want := t0.Add(time.Duration(i) * time.Second); !r.ScheduledAt.Equal(want) || r.ScheduledAt.Location() != time.UTC {
			t.Errorf("run %d ScheduledAt = %v; want %v in UTC", i, r.ScheduledAt, want)
		}
		if r.Task != "hb" || r.Type != "log" || r.InstanceID != "pod-1" || r.Args["k"] != "v" {
			t.Errorf("run %d = %+v", i, r)
		}
		if i > 0 && r.FencingToken <= runs[i-1].FencingToken {
			t.Errorf("run %d token %d after %d", i, r.FencingToken, runs[i-1].FencingToken)
		}
	}
	if st := s.Stats(); st.Claimed != 5 || st.Succeeded != 5 {
		t.Errorf("stats = %+v", st)
	}
	// The lock is released after each run; the tick record stays.
	if ok, err := b.store.IsLocked(context.Background(), "hb"); ok || err != nil {
		t.Errorf("IsLocked = %v, %v after the run", ok, err)
	}
}

func TestStartingDeadline(t *testing.T) {
	cases := []struct {
		name     string
		spec     string
		deadline time.Duration
		start    time.Time
		want     time.Time // the first tick run; zero: the next one, after start
	}{
		{"hourly, 30s late: runs", "@hourly", 0, t0.Add(30 * time.Second), t0},
		{"hourly, 5m late: default deadline passed", "@hourly", 0, t0.Add(5 * time.Minute), time.Time{}},
		{"hourly, 5m late, deadline 10m: runs", "@hourly", 10 * time.Minute, t0.Add(5 * time.Minute), t0},
		{"hourly, 5m late, deadline 1m: skipped", "@hourly", time.Minute, t0.Add(5 * time.Minute), time.Time{}},
		{"every 10s, 5s late: runs", "@every 10s", 0, t0.Add(5 * time.Second), t0},
		{"every 10s, exactly on the next tick", "@every 10s", 0, t0.Add(10 * time.Second), t0.Add(10 * time.Second)},
		{"6-field cron, 2s late", "*/5 * * * * *", 0, t0.Add(2 * time.Second), t0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := setup(t)
			b.clock.Set(c.start)
			sched := every(t, c.spec)
			b.start(t, []scheduler.Task{{Name: "x", Schedule: sched, Func: (&recorder{}).fn, StartingDeadline: c.deadline}})
			want := c.want
			if want.IsZero() {
				b.quiet(t)
				want = sched.Next(c.start)
				b.clock.Set(want)
			}
			b.expect(t, scheduler.Claimed, want)
		})
	}
}

func TestMissedTicksCounted(t *testing.T) {
	b := setup(t)
	// A replica claimed 12:00, then every replica was down until 12:05:20.
	if _, err := b.store.Claim(context.Background(), lock.ClaimRequest{Task: "m", Tick: t0, Owner: "old", TTL: time.Second}); err != nil {
		t.Fatal(err)
	}
	b.clock.Set(t0.Add(5*time.Minute + 20*time.Second))
	s := b.start(t, []scheduler.Task{{Name: "m", Schedule: every(t, "@every 1m"), Func: (&recorder{}).fn}})
	ev := b.expect(t, scheduler.Missed, t0.Add(4*time.Minute))
	if ev.Count != 4 {
		t.Errorf("missed %d ticks; want 4 (12:01 to 12:04)", ev.Count)
	}
	b.expect(t, scheduler.Claimed, t0.Add(5*time.Minute))
	if st := s.Stats(); st.Missed != 4 {
		t.Errorf("Stats().Missed = %d; want 4", st.Missed)
	}
}

// TestForbidSkipsWhileRunning: under Forbid, the ticks that come while a
// run holds the lock are skipped as Busy, each counted once; one a minute
// is said at WARN, the rest at debug (runs longer than their interval must
// not flood the log).
func TestForbidSkipsWhileRunning(t *testing.T) {
	b := setup(t)
	release := make(chan struct{})
	started := make(chan struct{}, 10)
	block := func(ctx context.Context, run tasks.Run) error {
		started <- struct{}{}
		<-release
		return nil
	}
	log, logged := captureLog(slog.LevelDebug)
	busyLines := func() (warn, debug int) {
		for _, l := range strings.Split(logged(), "\n") {
			if strings.Contains(l, "tick skipped: the previous run still holds the lock") {
				switch {
				case strings.Contains(l, "level=WARN"):
					warn++
				case strings.Contains(l, "level=DEBUG"):
					debug++
				}
			}
		}
		return warn, debug
	}
	s := b.start(t, []scheduler.Task{{Name: "f", Schedule: every(t, "@every 1s"), Func: block}}, scheduler.WithLogger(log))
	b.expect(t, scheduler.Claimed, t0)
	<-started
	skip := func(i int) {
		t.Helper()
		b.step(t, time.Second, 2) // the loop's timer and the renewer's
		var busy, renewed bool
		for !busy || !renewed {
			select {
			case ev := <-b.events:
				switch {
				case ev.Kind == scheduler.Renewed:
					renewed = true
				case ev.Kind == scheduler.Busy && ev.Tick.Equal(t0.Add(time.Duration(i)*time.Second)):
					busy = true
				default:
					t.Fatalf("step %d: event %v @ %v", i, ev.Kind, ev.Tick)
				}
			case <-time.After(hang):
				t.Fatalf("step %d: busy %v, renewed %v", i, busy, renewed)
			}
		}
	}
	for i := 1; i <= 5; i++ { // 5s: past the 3s ttl, held by renewals
		skip(i)
	}
	if warn, debug := busyLines(); warn != 1 || debug != 4 {
		t.Errorf("5 busy ticks logged %d times at WARN and %d at debug; want 1 and 4", warn, debug)
	}
	release <- struct{}{}
	b.expect(t, scheduler.Succeeded, t0)
	// A late replica cannot run a busy tick once the lock is free.
	res, err := b.store.Claim(context.Background(), lock.ClaimRequest{Task: "f", Tick: t0.Add(5 * time.Second), Owner: "late", TTL: time.Second})
	if err != nil || res.Outcome != lock.Busy {
		t.Errorf("late claim of a busy tick = %v, %v; want busy", res.Outcome, err)
	}
	b.step(t, time.Second, 1)
	// Ticks 1-5 were reported as busy, once each, and not again as missed
	// (issue 7, item 10): tick 6 runs next.
	b.expect(t, scheduler.Claimed, t0.Add(6*time.Second))
	<-started
	if st := s.Stats(); st.Busy != 5 || st.Missed != 0 {
		t.Errorf("stats: busy %d, missed %d; want 5 and 0", st.Busy, st.Missed)
	}
	// Tick 6's run holds the task too: its busy ticks are not said at
	// WARN again (a run a little longer than its interval, claimed and
	// busy in turn, would say one a run) until a minute after the first
	// was (tick 1).
	for i := 7; i <= 8; i++ {
		skip(i)
	}
	if warn, debug := busyLines(); warn != 1 || debug != 6 {
		t.Errorf("after the next run's 2 busy ticks, busy ticks logged %d times at WARN and %d at debug; want 1 and 6", warn, debug)
	}
	for i := 9; i <= 62; i++ {
		skip(i)
	}
	if warn, debug := busyLines(); warn != 2 || debug != 59 {
		t.Errorf("61 busy ticks over 62 s logged %d times at WARN and %d at debug; want 2 (one a minute) and 59", warn, debug)
	}
	if st := s.Stats(); st.Busy != 61 {
		t.Errorf("stats: busy %d; want every busy tick counted (61)", st.Busy)
	}
	close(release)
}

func TestReplaceCancelsPreviousRun(t *testing.T) {
	b := setup(t)
	causes := make(chan error, 10)
	wait := func(ctx context.Context, run tasks.Run) error {
		<-ctx.Done()
		causes <- context.Cause(ctx)
		return ctx.Err()
	}
	b.start(t, []scheduler.Task{{Name: "r", Schedule: every(t, "@every 1s"), Func: wait, Policy: lock.Replace}})
	b.expect(t, scheduler.Claimed, t0)
	b.step(t, time.Second, 2) // tick 1 takes the lock
	b.expect(t, scheduler.Claimed, t0.Add(time.Second))
	// Tick 0's next renewal finds its lease replaced. (Its renewal at 1s may
	// have come just before tick 1's claim.)
	for {
		var ev scheduler.Event
		select {
		case ev = <-b.events:
		case <-time.After(50 * time.Millisecond):
			b.step(t, 100*time.Millisecond, 2)
			continue
		}
		if ev.Kind == scheduler.Lost {
			if !errors.Is(ev.Err, lock.ErrLost) {
				t.Errorf("lost event = %+v; want ErrLost", ev)
			}
			// Later ticks replace each other too while the clock steps on.
			if ev.Tick.Equal(t0) {
				break
			}
		}
	}
	if cause := <-causes; !errors.Is(cause, lock.ErrLost) {
		t.Errorf("replaced run's cause = %v; want lock.ErrLost", cause)
	}
}

func TestLeaseLostWhenStoreUnreachable(t *testing.T) {
	b := setup(t)
	f := &flaky{Store: b.store}
	b.store = f
	causes := make(chan error, 1)
	b.start(t, []scheduler.Task{{Name: "p", Schedule: every(t, "@every 1h"), Func: func(ctx context.Context, run tasks.Run) error {
		<-ctx.Done()
		causes <- context.Cause(ctx)
		return nil
	}}})
	b.expect(t, scheduler.Claimed, t0)
	f.down.Store(true)
	// The ttl is 3s; the run must be cancelled by 2.7s (9/10), before the
	// store could hand the lock to another replica.
	for step := 0; ; step++ {
		select {
		case cause := <-causes:
			if !errors.Is(cause, lock.ErrLost) {
				t.Fatalf("cause = %v; want lock.ErrLost", cause)
			}
			if now := b.clock.Now(); now.After(t0.Add(2700 * time.Millisecond)) {
				t.Fatalf("cancelled at %v; want by %v", now, t0.Add(2700*time.Millisecond))
			}
			if ok, _ := f.Store.IsLocked(context.Background(), "p"); !ok {
				t.Fatalf("the store's lock expired before the run was cancelled")
			}
			b.waitFor(t, scheduler.Lost)
			return
		case <-time.After(20 * time.Millisecond):
		}
		if step > 500 {
			t.Fatal("run never cancelled")
		}
		b.step(t, 100*time.Millisecond, 2)
	}
}

func TestTimeout(t *testing.T) {
	b := setup(t)
	b.start(t, []scheduler.Task{{Name: "slow", Schedule: every(t, "@every 1h"), Timeout: 2 * time.Second,
		Func: func(ctx context.Context, run tasks.Run) error { <-ctx.Done(); return context.Cause(ctx) }}})
	b.expect(t, scheduler.Claimed, t0)
	b.step(t, 2*time.Second, 3) // loop, renewer, timeout
	ev := b.expect(t, scheduler.Failed, t0)
	if !errors.Is(ev.Err, scheduler.ErrTimeout) {
		t.Errorf("err = %v; want ErrTimeout", ev.Err)
	}
}

func TestPanicIsAFailedRun(t *testing.T) {
	b := setup(t)
	b.start(t, []scheduler.Task{{Name: "boom", Schedule: every(t, "@every 1s"),
		Func: func(ctx context.Context, run tasks.Run) error { panic("kaboom") }}})
	b.expect(t, scheduler.Claimed, t0)
	if ev := b.expect(t, scheduler.Failed, t0); !strings.Contains(ev.Err.Error(), "kaboom") {
		t.Errorf("err = %v; want the panic value", ev.Err)
	}
	b.step(t, time.Second, 1)
	b.expect(t, scheduler.Claimed, t0.Add(time.Second)) // still scheduling
}

func TestSuspend(t *testing.T) {
	b := setup(t)
	var off recorder
	b.start(t, []scheduler.Task{
		{Name: "off", Schedule: every(t, "@every 1s"), Func: off.fn, Suspend: true},
		{Name: "on", Schedule: every(t, "@every 1s"), Func: (&recorder{}).fn},
	})
	for i := range 3 {
		b.expect(t, scheduler.Claimed, t0.Add(time.Duration(i)*time.Second))
		b.expect(t, scheduler.Succeeded, t0.Add(time.Duration(i)*time.Second))
		b.step(t, time.Second, 1)
	}
	if n := off.n.Load(); n != 0 {
		t.Errorf("suspended task ran %d times", n)
	}
}

func TestJitterDelaysClaimNotIdentity(t *testing.T) {
	b := setup(t)
	var rec recorder
	const jitter = 500 * time.Millisecond
	b.clock.Set(t0.Add(jitter + time.Millisecond)) // past the t0 tick's deadline: not caught up
	b.start(t, []scheduler.Task{{Name: "j", Schedule: every(t, "@every 1s"), Func: rec.fn, Jitter: jitter, StartingDeadline: jitter}})
	delays := map[time.Duration]bool{}
	for i := 1; i <= 8; i++ {
		tick := t0.Add(time.Duration(i) * time.Second)
		if !b.clock.BlockUntil(1, hang) {
			t.Fatal("loop not waiting")
		}
		b.clock.Set(tick)
		var ev scheduler.Event
		for ev.Kind != scheduler.Claimed {
			select {
			case ev = <-b.events:
				continue
			case <-time.After(20 * time.Millisecond):
			}
			if b.clock.Now().Sub(tick) >= jitter {
				t.Fatalf("tick %v not claimed within the jitter", tick)
			}
			b.step(t, 50*time.Millisecond, 1)
		}
		if !ev.Tick.Equal(tick) {
			t.Fatalf("claimed %v; want %v", ev.Tick, tick)
		}
		delays[b.clock.Now().Sub(tick)] = true
		b.expect(t, scheduler.Succeeded, tick)
	}
	if len(delays) < 3 {
		t.Errorf("delays %v: want them drawn per tick", delays)
	}
	for _, r := range rec.all() {
		if r.ScheduledAt.Nanosecond() != 0 {
			t.Errorf("ScheduledAt %v carries the jitter", r.ScheduledAt)
		}
	}
}
