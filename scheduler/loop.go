package scheduler

import (
	"container/heap"
	"context"
	"fmt"
	"strings"
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
	s.beat.Store(now.UnixNano())
	var q queue
	var catchUp []string
	for _, t := range s.jobs {
		if t.Suspend {
			continue
		}
		// On start, the most recent tick may still be due (another replica
		// may have missed it too); the claim tells whether it was taken.
		d := &due{task: t}
		s.advance(d, time.Time{}, now, true)
		if d.tick.IsZero() {
			continue
		}
		if !d.tick.After(now) {
			catchUp = append(catchUp, t.Name)
		}
		q = append(q, d)
	}
	heap.Init(&q)
	if len(catchUp) > 0 {
		s.log.Info("claiming the most recent tick of tasks whose tick came due shortly before this start, within its starting deadline: the lock store tells whether another replica ran it (or has no record from before this start)",
			"count", len(catchUp), "tasks", names(catchUp, 10))
	}
	for {
		now = s.clock.Now()
		s.beat.Store(now.UnixNano())
		wait := maxSleep
		if len(q) > 0 {
			wait = min(q[0].fireAt.Sub(now), maxSleep)
		}
		if wait > 0 {
			timer := s.clock.NewTimer(wait)
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case u := <-s.updates:
				timer.Stop()
				q = s.apply(q, u.jobs, s.clock.Now())
				close(u.done)
			case <-timer.C():
			}
			continue
		}
		if ctx.Err() != nil {
			return
		}
		// Every tick due by now is claimed together, in batches.
		var together []pending
		for len(q) > 0 && !q[0].fireAt.After(now) {
			d := q[0]
			together = append(together, pending{d.task, d.tick})
			if len(together) == maxBatch {
				s.dispatch(together)
				together = nil
			}
			s.advance(d, d.tick, now, false)
			if d.tick.IsZero() {
				heap.Pop(&q)
			} else {
				heap.Fix(&q, 0)
			}
		}
		s.dispatch(together)
	}
}

// apply replaces the schedule of the loop's queue q by jobs (Update): a
// task that keeps its name keeps its next tick if that is the next of its
// new schedule too (see keeps), and otherwise takes the first tick of its
// new schedule after now, as a new task does; a task no longer in jobs is dropped (its claims
// and runs in flight go on). It returns the new queue.
func (s *Scheduler) apply(q queue, jobs []*job, now time.Time) queue {
	old := make(map[string]*job, len(s.jobs))
	for _, j := range s.jobs {
		old[j.Name] = j
	}
	queued := make(map[string]*due, len(q))
	for _, d := range q {
		queued[d.task.Name] = d
	}
	next := make(queue, 0, len(jobs))
	for _, j := range jobs {
		if o := old[j.Name]; o != nil {
			j.answered.Store(o.answered.Load())
		}
		if j.Suspend {
			continue
		}
		d := queued[j.Name]
		switch {
		case d != nil && keeps(j, d.tick, now):
			if j.Jitter != d.task.Jitter {
				d.fireAt = s.fireAt(j, d.tick)
			}
			d.task = j
		default:
			d = &due{task: j, tick: j.Schedule.Next(now)}
			if d.tick.IsZero() {
				continue
			}
			d.fireAt = s.fireAt(j, d.tick)
		}
		next = append(next, d)
	}
	s.mu.Lock()
	s.jobs = jobs
	s.mu.Unlock()
	heap.Init(&next)
	return next
}

// keeps reports whether task j, updated, keeps tick as its next: it is one
// of j's ticks, and either already due or not later than j's first tick
// after now (a schedule made more frequent starts on its own next tick).
func keeps(j *job, tick, now time.Time) bool {
	if !j.Schedule.Next(tick.Add(-time.Nanosecond)).Equal(tick) {
		return false
	}
	return !tick.After(now) || !j.Schedule.Next(now).Before(tick)
}

// names lists up to n of names, and how many more there are.
func names(all []string, n int) string {
	if len(all) <= n {
		return strings.Join(all, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(all[:n], ", "), len(all)-n)
}

// readEpoch asks the store for its epoch before the first claim, so that a
// new store's epoch dates from this start (and the first ticks after it can
// be claimed), and so that the ticks before it are not caught up. A store
// that does not answer yet is no reason to wait: every claim retries.
func (s *Scheduler) readEpoch(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, min(s.ttl, 2*time.Second))
	defer cancel()
	epoch, now, err := s.store.Epoch(ctx)
	s.noteStoreClock(s.clock.Now(), now)
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
	d.fireAt = s.fireAt(t, next)
}
