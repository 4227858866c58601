package memlock

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/beatlock/beat/lock"
)

// record keeps run as the task's last run unless a run with a higher token
// is recorded already; callers hold b.mu.
func (b *Backend) record(task string, run *lock.RunRecord, now time.Time) {
	st := b.tasks[task]
	if st == nil {
		st = &taskState{}
		b.tasks[task] = st
	}
	if st.run != nil && st.run.Token > run.Token {
		return
	}
	run.Ended = msTime(now.UnixMilli())
	st.run = run
}

func (b *Backend) Tasks(ctx context.Context) ([]lock.TaskRecord, time.Time, error) {
	now, err := b.begin(ctx)
	if err != nil {
		return nil, time.Time{}, err
	}
	defer b.mu.Unlock()
	var recs []lock.TaskRecord
	for task, st := range b.tasks {
		if !st.listed() {
			continue
		}
		r := lock.TaskRecord{Task: task, LastClaimed: msTime(st.last), LastSkipped: msTime(st.busy)}
		if st.last != 0 {
			r.Token = st.fence
		}
		if e := b.lastLock(st); e != nil {
			r.Holder, r.LockLeft = e.owner, e.expires.Sub(now)
		}
		if st.run != nil {
			run := *st.run
			r.LastRun = &run
		}
		recs = append(recs, r)
	}
	slices.SortFunc(recs, func(a, b lock.TaskRecord) int { return cmp.Compare(a.Task, b.Task) })
	return recs, now, nil
}

func (b *Backend) ForceRelease(ctx context.Context, task string, hold time.Duration) (bool, error) {
	if err := lock.CheckRevoke(task, hold); err != nil {
		return false, err
	}
	now, err := b.begin(ctx)
	if err != nil {
		return false, err
	}
	defer b.mu.Unlock()
	st := b.tasks[task]
	e := b.lastLock(st)
	if e == nil {
		return false, nil
	}
	b.set(st.key, lock.RevokedOwner, e.token, now.Add(hold))
	return true, nil
}

func (b *Backend) Forget(ctx context.Context, task string, minAge time.Duration) error {
	if err := lock.CheckTask(task); err != nil {
		return err
	}
	now, err := b.begin(ctx)
	if err != nil {
		return err
	}
	defer b.mu.Unlock()
	st := b.tasks[task]
	if st == nil {
		return nil
	}
	if e := b.lastLock(st); e != nil {
		return fmt.Errorf("memlock: forget %q: %w (by %q, for %v more)", task, lock.ErrHeld, e.owner, e.expires.Sub(now))
	}
	if last := msTime(max(st.last, st.busy)); !last.IsZero() && now.Sub(last) < minAge {
		return fmt.Errorf("memlock: forget %q: %w: %v ago, less than %v", task, lock.ErrRecent, now.Sub(last).Round(time.Second), minAge)
	}
	// The fence stays, so that the task's tokens keep rising if it comes back.
	*st = taskState{fence: st.fence}
	return nil
}
