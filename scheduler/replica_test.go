package scheduler_test

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/beatlock/beat/clock"
	"github.com/beatlock/beat/internal/pgtest"
	"github.com/beatlock/beat/internal/redistest"
	"github.com/beatlock/beat/lock"
	"github.com/beatlock/beat/lock/memlock"
	"github.com/beatlock/beat/lock/pglock"
	"github.com/beatlock/beat/lock/redislock"
	"github.com/beatlock/beat/scheduler"
	"github.com/beatlock/beat/tasks"
)

// stores gives each replica test a shared store: one real Redis and one
// PostgreSQL database (each replica with a client of its own, as separate
// pods would have) and one memlock shared in-process.
func stores(t *testing.T) map[string]func(t *testing.T) func() lock.Store {
	return map[string]func(t *testing.T) func() lock.Store{
		"redis": func(t *testing.T) func() lock.Store {
			c := redistest.Client(t)
			prefix := redistest.Prefix(t, c)
			return func() lock.Store {
				rc := redis.NewClient(c.Options())
				t.Cleanup(func() { rc.Close() })
				return redislock.New(rc, redislock.WithKeyPrefix(prefix))
			}
		},
		"memlock": func(t *testing.T) func() lock.Store {
			m := memlock.New()
			return func() lock.Store { return m }
		},
		"postgres": func(t *testing.T) func() lock.Store {
			cfg := pgtest.Config(t)
			table := pgtest.Table(t)
			if err := pglock.New(pgtest.Pool(t), pglock.WithTable(table)).Migrate(context.Background()); err != nil {
				t.Fatal(err)
			}
			return func() lock.Store {
				pool, err := pgxpool.NewWithConfig(context.Background(), cfg.Copy())
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(pool.Close)
				return pglock.New(pool, pglock.WithTable(table))
			}
		},
	}
}

type runRecord struct {
	task, instance string
	tick           time.Time
	token          uint64
}

// startReplicas starts one scheduler per clock offset, each with its own
// store handle, and returns a function that stops them all.
func startReplicas(t *testing.T, newStore func() lock.Store, ts []scheduler.Task, offsets []time.Duration, opts ...scheduler.Option) (stop func()) {
	t.Helper()
	var all []*scheduler.Scheduler
	for i, off := range offsets {
		s, err := scheduler.New(newStore(), ts, append([]scheduler.Option{
			scheduler.WithInstanceID(fmt.Sprintf("replica-%d(%+v)", i, off)),
			scheduler.WithClock(clock.Offset{Base: clock.Real{}, By: off}),
			scheduler.WithLogger(slog.New(slog.DiscardHandler)),
		}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		all = append(all, s)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			for _, s := range all {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				if err := s.Stop(ctx); err != nil {
					t.Errorf("%s: Stop: %v", s.InstanceID(), err)
				}
				cancel()
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// TestReplicasRunEachTickOnce: three replicas whose clocks are 1.5 s apart
// share one store; five @every 1s tasks and one 6-field cron task each run
// every tick exactly once, with fencing tokens rising in tick order.
func TestReplicasRunEachTickOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for 35 s of real time; skipped in -short")
	}
	for name, mk := range stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			newStore := mk(t)
			var mu sync.Mutex
			var runs []runRecord
			record := func(ctx context.Context, r tasks.Run) error {
				mu.Lock()
				runs = append(runs, runRecord{r.Task, r.InstanceID, r.ScheduledAt, r.FencingToken})
				mu.Unlock()
				return nil
			}
			var ts []scheduler.Task
			for i := range 5 {
				ts = append(ts, scheduler.Task{Name: fmt.Sprintf("every-%d", i), Schedule: every(t, "@every 1s"), Func: record})
			}
			ts = append(ts, scheduler.Task{Name: "cron-seconds", Schedule: every(t, "* * * * * *"), Func: record})

			var evMu sync.Mutex
			var evs []string
			begin := time.Now()
			stop := startReplicas(t, newStore, ts, []time.Duration{-1500 * time.Millisecond, 0, 1500 * time.Millisecond},
				scheduler.WithLease(5*time.Second, time.Second), scheduler.WithObserver(func(ev scheduler.Event) {
					if ev.Task == "every-0" && ev.Tick.Before(begin.Add(5*time.Second)) {
						evMu.Lock()
						evs = append(evs, fmt.Sprintf("%v %v %v %v", time.Now().UTC().Format("05.000"), ev.Kind, ev.Tick.UTC().Format("05"), ev.Err))
						evMu.Unlock()
					}
				}))
			time.Sleep(35 * time.Second) // the real clock is the point here
			stop()
			end := time.Now()

			// Judge the ticks every replica was up for: the fastest clock
			// fires a tick 1.5 s early, so from 3 s after start (the ticks
			// before may meet the start-up catch-up of an older tick and be
			// skipped as busy, as Forbid says), to 2 s before the stop.
			from := begin.Add(3 * time.Second).Truncate(time.Second)
			to := end.Add(-2 * time.Second).Truncate(time.Second)
			byTask := map[string][]runRecord{}
			for _, r := range runs {
				byTask[r.task] = append(byTask[r.task], r)
			}
			for _, task := range ts {
				rs := byTask[task.Name]
				sort.Slice(rs, func(i, j int) bool { return rs[i].tick.Before(rs[j].tick) })
				seen := map[time.Time]int{}
				for i, r := range rs {
					seen[r.tick]++
					if i > 0 && r.token <= rs[i-1].token {
						t.Errorf("%s: tick %v token %d not above tick %v token %d", task.Name, r.tick, r.token, rs[i-1].tick, rs[i-1].token)
					}
				}
				n := 0
				for tick := from; !tick.After(to); tick = tick.Add(time.Second) {
					n++
					if c := seen[tick.UTC()]; c != 1 {
						t.Errorf("%s: tick %v ran %d times; want 1", task.Name, tick.UTC(), c)
					}
				}
				if t.Failed() && task.Name == "every-0" {
					t.Logf("every-0: started %v, stopped %v; its first events:\n%s", begin.UTC(), end.UTC(), strings.Join(evs, "\n"))
				}
				if n < 30 {
					t.Errorf("%s: judged %d ticks; want at least 30", task.Name, n)
				}
				for tick, c := range seen {
					if c > 1 {
						t.Errorf("%s: tick %v ran %d times", task.Name, tick, c)
					}
				}
			}
		})
	}
}

// TestForbidAcrossReplicas: a task that runs 2.5 times longer than its
// interval, and longer than the lock ttl, never runs twice at once on any
// of three replicas, and holds its lock past the ttl by renewing it.
func TestForbidAcrossReplicas(t *testing.T) {
	for name, mk := range stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			newStore := mk(t)
			check := newStore()
			const ttl = time.Second
			var inside, overlaps, heldPastTTL, runsN atomic.Int64
			long := func(ctx context.Context, r tasks.Run) error {
				runsN.Add(1)
				if !inside.CompareAndSwap(0, 1) {
					overlaps.Add(1)
				}
				defer inside.Store(0)
				select {
				case <-time.After(2 * ttl):
				case <-ctx.Done():
					return context.Cause(ctx)
				}
				// Twice the ttl in: only renewals can have kept the lock ours.
				if owner, ok, err := check.Owner(context.Background(), r.Task); err == nil && ok && strings.HasPrefix(owner, r.InstanceID+"/") {
					heldPastTTL.Add(1)
				}
				select {
				case <-time.After(ttl / 2):
				case <-ctx.Done():
					return context.Cause(ctx)
				}
				return nil
			}
			var lost atomic.Int64
			stop := startReplicas(t, newStore,
				[]scheduler.Task{{Name: "long", Schedule: every(t, "@every 1s"), Func: long}},
				[]time.Duration{-300 * time.Millisecond, 0, 300 * time.Millisecond},
				scheduler.WithLease(ttl, 300*time.Millisecond),
				scheduler.WithObserver(func(ev scheduler.Event) {
					if ev.Kind == scheduler.Lost {
						lost.Add(1)
					}
				}))
			time.Sleep(8 * time.Second)
			stop()
			if n := overlaps.Load(); n != 0 {
				t.Errorf("%d runs started while another was running", n)
			}
			if n := runsN.Load(); n < 2 {
				t.Errorf("%d runs in 8 s; want at least 2", n)
			}
			if held, n := heldPastTTL.Load(), runsN.Load(); held != n {
				t.Errorf("%d of %d runs still held the lock at twice the ttl", held, n)
			}
			if n := lost.Load(); n != 0 {
				t.Errorf("%d leases lost", n)
			}
		})
	}
}

// TestWorkSpreadsAcrossReplicas: three replicas whose clocks are 100 ms
// apart share twelve @every 1s tasks whose runs take 300 ms: every replica
// gets a fair part of the runs, not the one whose clock runs first all of
// them (as it did when each claimed by its own clock: 97 % and 0 %), and not
// the one that won the first races either: it learns of its peers from the
// store (Contested) at its next claim. Runs are counted from the third
// second, once every replica has met its peers.
//
// The bounds are wide on purpose: about 108 runs is a small sample, and under
// CI's load (packages tested in parallel with -race on 2 cores) a fair
// replica's part wanders; with six tasks and 18-48 % one CI run saw 26 of 54
// (48.1 %). 15-55 % is four standard deviations of a fair share, and still
// fails the defect this test guards against. The 20-45 % is measured
// over 180 CPU-heavy runs by bench/run.sh (docs/PERFORMANCE.md, "spread").
func TestWorkSpreadsAcrossReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for 12 s of real time; skipped in -short")
	}
	for name, mk := range stores(t) {
		// Not parallel: the replicas share this process's CPU, and the load
		// of the other replica tests would decide the races, not beat.
		t.Run(name, func(t *testing.T) {
			var mu sync.Mutex
			byReplica := map[string]int{}
			from := time.Now().Add(3 * time.Second)
			work := func(ctx context.Context, r tasks.Run) error {
				if !r.ScheduledAt.Before(from) {
					mu.Lock()
					byReplica[r.InstanceID]++
					mu.Unlock()
				}
				select {
				case <-time.After(300 * time.Millisecond):
				case <-ctx.Done():
				}
				return nil
			}
			var ts []scheduler.Task
			for i := range 12 {
				ts = append(ts, scheduler.Task{Name: fmt.Sprintf("work-%d", i), Schedule: every(t, "@every 1s"), Func: work})
			}
			offsets := []time.Duration{100 * time.Millisecond, 0, -100 * time.Millisecond}
			stop := startReplicas(t, mk(t), ts, offsets, scheduler.WithLease(5*time.Second, time.Second))
			time.Sleep(12 * time.Second)
			stop()
			mu.Lock()
			defer mu.Unlock()
			total := 0
			for _, n := range byReplica {
				total += n
			}
			if total < 80 {
				t.Fatalf("%d runs in the last 9 s; want about 108", total)
			}
			for i, off := range offsets {
				id := fmt.Sprintf("replica-%d(%+v)", i, off)
				if share := float64(byReplica[id]) / float64(total); share < 0.15 || share > 0.55 {
					t.Errorf("%s ran %d of %d runs (%.0f%%); want a fair part (15-55%%): %v", id, byReplica[id], total, 100*share, byReplica)
				}
			}
			t.Logf("runs by replica: %v", byReplica)
		})
	}
}
