package scheduler

import (
	"container/heap"
	"context"
	"time"

	"github.com/beatlock/beat/schedule"
)

// maxSleep bounds one wait of the loop, so that a wall clock stepped
// forward (NTP, a resumed VM) is noticed within a second instead of after a
// long timer set on the old reading.
const maxSleep = time.Second

// missedLimit bounds how many missed ticks are counted one by one.
const missedLimit = 10_000

// due is a task's next tick and when this replica will try to claim it.
type due struct {
	task   *Task
	tick   time.Time // nominal instant: the tick's identity
	fireAt time.Time // tick plus this replica's jitter
}

// queue is a min-heap of due ticks by fireAt: the loop wakes once for the
// earliest one instead of scanning every task.
type queue []*due

func (q queue) Len() int           { return len(q) }
func (q queue) Less(i, j int) bool { return q[i].fireAt.Before(q[j].fireAt) }
func (q queue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)        { *q = append(*q, x.(*due)) }
func (q *queue) Pop() any {
	old := *q
	d := old[len(old)-1]
	*q = old[:len(old)-1]
	return d
}

func (s *Scheduler) loop(ctx context.Context) {
	defer close(s.loopDone)
	now := s.clock.Now()
	var q queue
	for _, t := range s.tasks {
		if t.Suspend {
			continue
		}
		// On start, the most recent tick may still be due (another replica
		// may have missed it too); the claim tells whether it was taken.
		d := &due{task: t}
		s.advance(d, time.Time{}, now, true)
		if !d.tick.IsZero() {
			q = append(q, d)
		}
	}
	heap.Init(&q)
	for len(q) > 0 {
		now = s.clock.Now()
		d := q[0]
		if wait := d.fireAt.Sub(now); wait > 0 {
			timer := s.clock.NewTimer(min(wait, maxSleep))
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-timer.C():
			}
			continue
		}
		if ctx.Err() != nil {
			return
		}
		s.runs.Add(1)
		go s.handle(d.task, d.tick)
		s.advance(d, d.tick, now, false)
		if d.tick.IsZero() {
			heap.Pop(&q)
		} else {
			heap.Fix(&q, 0)
		}
	}
	s.log.Info("no task has ticks left to fire")
	<-ctx.Done()
}

// advance sets d to the task's next tick to try after prev (zero on start).
// When more than one tick has come due by now, only the latest is tried, if
// its starting deadline has not passed; the others are counted as missed.
func (s *Scheduler) advance(d *due, prev, now time.Time, starting bool) {
	t := d.task
	var next time.Time
	if starting {
		// The latest tick at or before now, if any in the last deadline
		// window; else the first one after now.
		latest, _ := schedule.Between(t.Schedule, now.Add(-t.lateness()), now, 1)
		if !latest.IsZero() && now.Before(t.deadline(latest)) {
			next = latest
		} else {
			next = t.Schedule.Next(now)
		}
	} else {
		next = t.Schedule.Next(prev)
		if !next.IsZero() && !next.After(now) {
			// Fallen behind: ticks in (prev, now] are all due at once.
			latest, n := schedule.Between(t.Schedule, prev, now, missedLimit)
			if now.Before(t.deadline(latest)) {
				next, n = latest, n-1
			} else {
				next = t.Schedule.Next(now)
			}
			if n > 0 {
				// Not counted as missed here: other replicas may have run
				// them; the next claim's record tells whether anyone did.
				s.log.Warn("fell behind (process paused, or the wall clock stepped forward); not trying older ticks",
					"task", t.Name, "skipped", n, "up_to", latest.UTC())
			}
		}
	}
	d.tick = next
	d.fireAt = next.Add(s.jitter(t))
}
