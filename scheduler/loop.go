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
	task   *job
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
	s.readEpoch(ctx)
	now := s.clock.Now()
	var q queue
	for _, t := range s.jobs {
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

// readEpoch asks the store for its epoch before the first claim, so that a
// new store's epoch dates from this start (and the first ticks after it can
// be claimed), and so that the ticks before it are not caught up. A store
// that does not answer yet is no reason to wait: every claim retries.
func (s *Scheduler) readEpoch(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, min(s.ttl, 2*time.Second))
	defer cancel()
	epoch, now, err := s.store.Epoch(ctx)
	if err != nil {
		s.log.Warn("the lock store does not answer yet; each claim will retry, and ticks it cannot claim before their starting deadline are skipped", "err", err)
		return
	}
	s.noteEpoch(epoch)
	if skew := s.clock.Now().Sub(now); skew > s.maxSkew || -skew > s.maxSkew {
		s.log.Warn("this replica's clock disagrees with the lock store's by more than max_clock_skew; the store's clock judges when a tick has come",
			"clock_minus_store", skew, "max_clock_skew", s.maxSkew)
	}
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
			skipped := latest
			if now.Before(t.deadline(latest)) {
				next, n = latest, n-1
				skipped, _ = schedule.Between(t.Schedule, prev, latest.Add(-time.Nanosecond), 0)
			} else {
				next = t.Schedule.Next(now)
			}
			if n > 0 {
				s.emit(Event{Kind: Missed, Task: t.Name, Tick: skipped, Count: n,
					Reason: "this replica fell behind (the process was paused, or the wall clock stepped forward); only the most recent due tick is tried"})
			}
		}
	}
	d.tick = next
	d.fireAt = next.Add(s.jitter(t))
}
