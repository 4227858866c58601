package scheduler_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/beatlock/beat/scheduler"
	"github.com/beatlock/beat/tasks"
)

// collect waits for n events other than renewals and returns them as
// "task kind tick" strings.
func (b *testBundle) collect(t *testing.T, n int) map[string]bool {
	t.Helper()
	got := map[string]bool{}
	for range n {
		ev := b.next(t)
		got[ev.Task+" "+ev.Kind.String()+" "+ev.Tick.Sub(t0).String()] = true
	}
	return got
}

func TestUpdate(t *testing.T) {
	ctx := context.Background()
	b := setup(t)
	var a recorder
	task := func(name, spec string, args map[string]any) scheduler.Task {
		return scheduler.Task{Name: name, Schedule: every(t, spec), Func: a.fn, Args: args}
	}
	s := b.start(t, []scheduler.Task{task("a", "@every 1s", nil), task("gone", "@every 1s", nil), task("slower", "@every 1s", nil),
		task("faster", "@every 1m", nil)})
	b.collect(t, 8) // the four tasks' ticks at t0
	b.step(t, 500*time.Millisecond, 1)

	err := s.Update(ctx, []scheduler.Task{
		task("a", "@every 1s", map[string]any{"v": 2}), // same schedule, new args: keeps its next tick
		task("slower", "@every 2s", nil),               // new schedule: from its first tick after the update
		task("hourly", "@hourly", nil),                 // new: its tick at t0 came before the update, not run
		task("new", "@every 1s", nil),                  // new: its next tick
		task("faster", "@every 1s", nil),               // more often: its next tick, not its old one a minute later
	})
	if err != nil {
		t.Fatal(err)
	}
	b.step(t, 500*time.Millisecond, 1)
	want := map[string]bool{"a claimed 1s": true, "a succeeded 1s": true, "new claimed 1s": true, "new succeeded 1s": true,
		"faster claimed 1s": true, "faster succeeded 1s": true}
	if got := b.collect(t, 6); !equalSets(got, want) {
		t.Errorf("at t0+1s: %v; want %v", got, want)
	}
	b.quiet(t)
	b.step(t, time.Second, 1)
	want = map[string]bool{"a claimed 2s": true, "a succeeded 2s": true, "new claimed 2s": true, "new succeeded 2s": true,
		"slower claimed 2s": true, "slower succeeded 2s": true, "faster claimed 2s": true, "faster succeeded 2s": true}
	if got := b.collect(t, 8); !equalSets(got, want) {
		t.Errorf("at t0+2s: %v; want %v", got, want)
	}
	b.quiet(t)
	for _, r := range a.all() {
		if r.Task == "a" && r.ScheduledAt.After(t0) && r.Args["v"] != 2 {
			t.Errorf("run of a at %v has args %v; want the updated ones", r.ScheduledAt, r.Args)
		}
	}

	// An invalid update changes nothing.
	err = s.Update(ctx, []scheduler.Task{task("a", "@every 1s", nil), task("a", "@every 1s", nil), task("faster", "@every 1s", nil)})
	if err == nil {
		t.Fatal("Update with a task defined twice: no error")
	}
	b.step(t, time.Second, 1)
	want = map[string]bool{"a claimed 3s": true, "a succeeded 3s": true, "new claimed 3s": true, "new succeeded 3s": true,
		"faster claimed 3s": true, "faster succeeded 3s": true}
	if got := b.collect(t, 6); !equalSets(got, want) {
		t.Errorf("at t0+3s, after a refused update: %v; want %v", got, want)
	}
}

func TestUpdateRemovedTaskRunFinishes(t *testing.T) {
	ctx := context.Background()
	b := setup(t)
	release := make(chan struct{})
	long := func(ctx context.Context, run tasks.Run) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	s := b.start(t, []scheduler.Task{{Name: "long", Schedule: every(t, "@every 1s"), Func: long, Policy: 1 /* Allow */}})
	b.expect(t, scheduler.Claimed, t0)
	if err := s.Update(ctx, nil); err != nil {
		t.Fatal(err)
	}
	close(release)
	b.expect(t, scheduler.Succeeded, t0)
	b.step(t, 2*time.Second, 1)
	b.step(t, 0, 1) // the loop went round after the step
	b.quiet(t)
}

func TestLoopLag(t *testing.T) {
	b := setup(t)
	block := make(chan struct{})
	s, err := scheduler.New(b.store, []scheduler.Task{{Name: "t", Schedule: every(t, "@every 1s"), Func: (&recorder{}).fn}},
		scheduler.WithClock(b.clock), quietLog(),
		// The loop reports the ticks it fell behind on itself: an observer
		// that blocks there stops the loop.
		scheduler.WithObserver(func(ev scheduler.Event) {
			if ev.Kind == scheduler.Missed {
				<-block
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	if lag := s.LoopLag(); lag != 0 {
		t.Errorf("LoopLag before Start = %v; want 0", lag)
	}
	created := b.clock.TimerCreated()
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-created
	if lag := s.LoopLag(); lag != 0 {
		t.Errorf("LoopLag of a waiting loop = %v; want 0", lag)
	}
	b.clock.Advance(5 * time.Second) // fell behind: Missed, and the observer blocks the loop
	b.clock.Advance(30 * time.Second)
	if lag := s.LoopLag(); lag < 30*time.Second {
		t.Errorf("LoopLag of a stuck loop = %v; want at least 30s", lag)
	}
	close(block)
	// Unblocked, the loop goes round again.
	for deadline := time.Now().Add(hang); s.LoopLag() >= time.Second; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("LoopLag = %v after the loop was unblocked", s.LoopLag())
		}
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	if err := s.Stop(stopCtx); err != nil && !errors.Is(err, scheduler.ErrRunsStillRunning) {
		t.Fatal(err)
	}
	if lag := s.LoopLag(); lag != 0 {
		t.Errorf("LoopLag once stopped = %v; want 0", lag)
	}
}

func equalSets(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}
