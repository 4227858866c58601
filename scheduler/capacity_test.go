package scheduler_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/beatlock/beat/scheduler"
	"github.com/beatlock/beat/tasks"
)

// A replica at max_concurrent_runs does not claim: a replica with room
// takes the tick, and the full one reports it as AtCapacity once the
// tick's window closed.
func TestMaxConcurrentRuns(t *testing.T) {
	b := setup(t)
	release := make(chan struct{})
	defer close(release)
	long := func(ctx context.Context, run tasks.Run) error {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	}
	first := scheduler.Task{Name: "first", Schedule: every(t, "@every 1h"), Func: long}
	second := scheduler.Task{Name: "second", Schedule: every(t, "30 12 * * *"), Func: long, StartingDeadline: 5 * time.Second}
	lease := scheduler.WithLease(time.Hour, 20*time.Minute) // the first run outlives the test's jumps
	a := b.start(t, []scheduler.Task{first, second}, scheduler.WithMaxConcurrentRuns(1), scheduler.WithInstanceID("a"), lease)
	b.expect(t, scheduler.Claimed, t0) // a runs first at 12:00, and is full

	other, err := scheduler.New(b.store, []scheduler.Task{second}, scheduler.WithInstanceID("b"), scheduler.WithClock(b.clock),
		lease, scheduler.WithLogger(slog.New(slog.DiscardHandler)),
		scheduler.WithObserver(func(ev scheduler.Event) { b.events <- ev }))
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer other.StopAndCancel(context.Background())

	// Time runs on, in steps, to 12:30 and past second's window.
	b.runClock(t, time.Second, func() bool { return b.clock.Now().Before(t0.Add(31 * time.Minute)) })
	var claimedBy, fullOn string
	for claimedBy == "" || fullOn == "" {
		switch ev := b.next(t); {
		case ev.Kind == scheduler.Claimed && ev.Task == "second":
			claimedBy = "b"
			if st := a.Stats(); st.Claimed != 1 {
				t.Errorf("a claimed %d ticks; want only its first", st.Claimed)
			}
		case ev.Kind == scheduler.AtCapacity:
			fullOn = ev.Task
		case ev.Kind == scheduler.Claimed && ev.Task != "second":
			t.Errorf("unexpected claim of %s at %v", ev.Task, ev.Tick)
		}
	}
	if fullOn != "second" {
		t.Errorf("AtCapacity for %q; want second", fullOn)
	}
	if st := a.Stats(); st.Claimed != 1 || st.AtCapacity != 1 {
		t.Errorf("a: claimed %d, at capacity %d; want 1 and 1", st.Claimed, st.AtCapacity)
	}
}
