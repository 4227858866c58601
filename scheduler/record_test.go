package scheduler_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/beatlock/beat/lock"
	"github.com/beatlock/beat/scheduler"
	"github.com/beatlock/beat/tasks"
)

// A run's end is recorded in the store with the release of its lease.
func TestRunEndRecorded(t *testing.T) {
	tests := []struct {
		name       string
		fn         tasks.Func
		timeout    time.Duration
		wantKind   scheduler.EventKind
		wantResult string
		wantErr    string // "" for none
	}{
		{"succeeded", func(context.Context, tasks.Run) error { return nil }, 0, scheduler.Succeeded, lock.RunSucceeded, ""},
		{"failed", func(context.Context, tasks.Run) error { return errors.New("disk full") }, 0, scheduler.Failed, lock.RunFailed, "disk full"},
		{"timeout", func(ctx context.Context, _ tasks.Run) error { <-ctx.Done(); return context.Cause(ctx) },
			2 * time.Second, scheduler.Failed, lock.RunTimeout, scheduler.ErrTimeout.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := setup(t)
			s := b.start(t, []scheduler.Task{{Name: "r", Schedule: every(t, "@hourly"), Func: tt.fn, Timeout: tt.timeout}})
			b.expect(t, scheduler.Claimed, t0)
			if tt.timeout > 0 {
				b.step(t, tt.timeout, 3) // the loop's timer, the renewer's, the timeout's
			}
			end := b.waitFor(t, tt.wantKind)
			if got := end.RunResult(); got != tt.wantResult {
				t.Errorf("RunResult() = %q; want %q", got, tt.wantResult)
			}
			recs, _, err := b.store.(lock.Inspector).Tasks(context.Background())
			if err != nil || len(recs) != 1 || recs[0].LastRun == nil {
				t.Fatalf("Tasks() = %+v, %v; want the run recorded", recs, err)
			}
			run := recs[0].LastRun
			if run.Result != tt.wantResult || !run.Tick.Equal(t0) || run.Token != end.Token || run.Owner != s.Owner() ||
				run.Duration != end.Duration || (run.Error == "") != (tt.wantErr == "") || !strings.Contains(run.Error, tt.wantErr) {
				t.Errorf("recorded %+v; want result %s, tick %v, token %d, owner %s, duration %v, error with %q",
					run, tt.wantResult, t0, end.Token, s.Owner(), end.Duration, tt.wantErr)
			}
		})
	}
}
