package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	bsm "github.com/bsm/redislock"
	"github.com/go-co-op/gocron/v2"
	"github.com/go-redsync/redsync/v4"
	"github.com/redis/go-redis/v9"
	"github.com/robfig/cron/v3"

	"github.com/beatlock/beat/lock/redislock"
	"github.com/beatlock/beat/scheduler"
	"github.com/beatlock/beat/tasks"
)

// The schedulers whose bursts are measured.
const (
	burstBeat   = "beat"
	burstGocron = "gocron v2 + redsync locker"
	burstRobfig = "robfig/cron + bsm/redislock"
)

var burstImpls = []string{burstBeat, burstGocron, burstRobfig}

// onceAt ticks once, at an instant: every task of a burst has it. It is a
// schedule.Schedule and a cron.Schedule alike.
type onceAt struct{ at time.Time }

func (o onceAt) Next(t time.Time) time.Time {
	if t.Before(o.at) {
		return o.at
	}
	return time.Time{}
}

// tracker follows a burst: the answers to the replicas' lock attempts (won,
// or taken by another), and the runs, until every attempt has an answer and
// every run has ended and freed its lock.
type tracker struct {
	at         time.Time // the instant every task is due
	want       int64     // answers expected: tasks times replicas
	answers    atomic.Int64
	wins       atomic.Int64
	ended      atomic.Int64 // runs ended, their locks freed
	failed     atomic.Int64 // answers of another kind: a failed attempt, a missed tick
	failKind   atomic.Value
	first      atomic.Int64 // ns after at: the earliest answer
	last       atomic.Int64 // the latest answer
	lastWin    atomic.Int64 // the latest won attempt
	runs       []atomic.Int32
	doneOnce   sync.Once
	done       chan struct{}
	doneAt     time.Time
	goroutines atomic.Int64 // the most seen during the burst
}

func newTracker(at time.Time, tasks, replicas int) *tracker {
	return &tracker{at: at, want: int64(tasks * replicas), runs: make([]atomic.Int32, tasks), done: make(chan struct{})}
}

func (t *tracker) since() int64 { return int64(time.Since(t.at)) }

func maxTo(v *atomic.Int64, x int64) {
	for {
		old := v.Load()
		if x <= old || v.CompareAndSwap(old, x) {
			return
		}
	}
}

func minTo(v *atomic.Int64, x int64) {
	for {
		old := v.Load()
		if (old != 0 && x >= old) || v.CompareAndSwap(old, x) {
			return
		}
	}
}

// answer records an attempt's answer.
func (t *tracker) answer(won bool) {
	ns := t.since()
	minTo(&t.first, max(ns, 1))
	maxTo(&t.last, ns)
	if won {
		t.wins.Add(1)
		maxTo(&t.lastWin, ns)
	}
	t.answers.Add(1)
	t.check()
}

// fail records an answer that is neither won nor taken: the attempt
// failed (a timeout, say), or the tick was given up.
func (t *tracker) fail(kind string) {
	t.failed.Add(1)
	t.failKind.Store(kind)
	t.answer(false)
}

func (t *tracker) ran(task int) { t.runs[task].Add(1) }

func (t *tracker) end() { t.ended.Add(1); t.check() }

func (t *tracker) check() {
	if t.answers.Load() >= t.want && t.ended.Load() >= t.wins.Load() {
		t.doneOnce.Do(func() { t.doneAt = time.Now(); close(t.done) })
	}
}

// sample keeps the most goroutines seen until stop is closed.
func (t *tracker) sample(stop <-chan struct{}) {
	tick := time.NewTicker(500 * time.Microsecond)
	defer tick.Stop()
	for {
		maxTo(&t.goroutines, int64(runtime.NumGoroutine()))
		select {
		case <-stop:
			return
		case <-tick.C:
		}
	}
}

// burstRig is one implementation's replicas, set up for a burst.
type burstRig struct {
	start func(ctx context.Context) error
	stop  func(ctx context.Context) error
}

// lead is how long before the instant the set-up begins: enough to make
// every replica's tasks.
func lead(base time.Duration, impl string, jobs int) time.Duration {
	per := 30 * time.Microsecond
	if impl == burstGocron {
		per = 120 * time.Microsecond
	}
	return base + time.Duration(jobs)*per
}

// measureBurst makes p.Tasks tasks, all due at one instant, on p.Replicas
// replicas of p.Impl (schedulers in this process, each with a client of
// its own), and times the answers from that instant.
func measureBurst(ctx context.Context, p Params) (Result, error) {
	if p.MemProf != "" {
		runtime.MemProfileRate = 1 // every allocation, for counts per tick
	}
	if err := flush(ctx, p.Redis); err != nil {
		return Result{}, err
	}
	hook := &counter{}
	clients := make([]*redis.Client, p.Replicas)
	for i := range clients {
		clients[i] = newClient(p.Redis, 0, hook)
		defer clients[i].Close()
		if err := warm(ctx, clients[i]); err != nil {
			return Result{}, err
		}
	}
	admin := newClient(p.Redis, 1, nil)
	defer admin.Close()
	if p.Cold {
		// As on a server that restarted or failed over: EVALSHA finds no
		// script, and each call sends it again with EVAL.
		if err := admin.ScriptFlush(ctx).Err(); err != nil {
			return Result{}, err
		}
	} else if err := loadScripts(ctx, p.Impl, clients[0]); err != nil {
		return Result{}, err
	}

	at := time.Now().Add(lead(p.Lead, p.Impl, p.Tasks*p.Replicas)).Truncate(time.Millisecond)
	tr := newTracker(at, p.Tasks, p.Replicas)
	var rig burstRig
	var err error
	switch p.Impl {
	case burstBeat:
		rig, err = beatBurst(clients, tr, p.Tasks)
	case burstGocron:
		rig, err = gocronBurst(clients, tr, p.Tasks)
	case burstRobfig:
		rig, err = robfigBurst(clients, tr, p.Tasks)
	default:
		err = fmt.Errorf("unknown scheduler %q", p.Impl)
	}
	if err != nil {
		return Result{}, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := rig.start(runCtx); err != nil {
		return Result{}, err
	}
	defer rig.stop(context.Background())
	// The scheduler's own start-up (beat reads the store's epoch) is done
	// well before the instant; what follows it is the burst's.
	time.Sleep(100 * time.Millisecond)
	if left := time.Until(at); left < 100*time.Millisecond {
		return Result{}, fmt.Errorf("set-up took too long: %v left before the instant; raise lead()", left)
	}
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	before, err := readServer(ctx, admin)
	if err != nil {
		return Result{}, err
	}
	if p.MemProf != "" {
		if err := writeProfile("allocs", p.MemProf+".base"); err != nil {
			return Result{}, err
		}
	}
	hook.reset()
	cpu0 := cpuTime()
	stopSample := make(chan struct{})
	go tr.sample(stopSample)
	if p.CPUProf != "" {
		time.Sleep(time.Until(at) - 20*time.Millisecond)
		f, err := os.Create(p.CPUProf)
		if err != nil {
			return Result{}, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return Result{}, err
		}
	}
	timeout := time.NewTimer(time.Until(at) + 5*time.Minute)
	select {
	case <-tr.done:
		timeout.Stop()
	case <-timeout.C:
		return Result{}, fmt.Errorf("burst not over after 5 minutes: %d of %d answers, %d of %d runs ended",
			tr.answers.Load(), tr.want, tr.ended.Load(), tr.wins.Load())
	}
	if p.CPUProf != "" {
		pprof.StopCPUProfile()
	}
	close(stopSample)
	cpu := cpuTime() - cpu0
	trips, cmds := hook.trips.Load(), hook.cmds.Load()
	after, err := readServer(ctx, admin)
	if err != nil {
		return Result{}, err
	}
	runtime.ReadMemStats(&m1)
	if p.MemProf != "" {
		runtime.GC() // the heap profile tells of the allocations up to the last GC

		if err := writeProfile("allocs", p.MemProf); err != nil {
			return Result{}, err
		}
	}
	var notes []string
	if n := tr.failed.Load(); n > 0 {
		notes = append(notes, fmt.Sprintf("%d attempts failed or were given up (the last: %v)", n, tr.failKind.Load()))
	}
	var dups, never int
	for i := range tr.runs {
		switch n := int(tr.runs[i].Load()); {
		case n == 0:
			never++
		case n > 1:
			dups += n - 1
		}
	}
	n := float64(p.Tasks)
	serverCPU, commands := after.since(before, n)
	ms := func(ns int64) float64 { return float64(ns) / 1e6 }
	return Result{
		Metrics: map[string]float64{
			"answered_ms":     ms(tr.last.Load()),
			"won_ms":          ms(tr.lastWin.Load()),
			"first_ms":        ms(tr.first.Load()),
			"ended_ms":        ms(int64(tr.doneAt.Sub(at))),
			"trips_per_tick":  float64(trips) / n,
			"cmds_per_tick":   float64(cmds) / n,
			"server_us_tick":  serverCPU * 1e6 / n,
			"client_us_tick":  float64(cpu.Microseconds()) / n,
			"allocs_per_tick": float64(m1.Mallocs-m0.Mallocs) / n,
			"bytes_per_tick":  float64(m1.TotalAlloc-m0.TotalAlloc) / n,
			"goroutines_peak": float64(tr.goroutines.Load()),
			"runs":            float64(tr.wins.Load()),
			"duplicate_runs":  float64(dups),
			"ticks_not_run":   float64(never),
			"failed_attempts": float64(tr.failed.Load()),
			"rss_mb":          maxRSS(),
		},
		Commands: commands,
		Notes:    notes,
	}, nil
}

// loadScripts takes and frees one lock as impl does, on a key of no task,
// so that the server holds its scripts before the burst: EVALSHA finds
// them, as it does on a server that has served the library before.
func loadScripts(ctx context.Context, impl string, c *redis.Client) error {
	switch impl {
	case burstBeat:
		pair, err := pairFunc(ctx, pairClaim, c)
		if err != nil {
			return err
		}
		return pair(0)(0)
	case burstGocron:
		l, err := newRedsyncLocker(c, nil, redsync.WithTries(1)).Lock(ctx, "{warm}:gocron")
		if err != nil {
			return err
		}
		return l.Unlock(ctx)
	case burstRobfig:
		l, err := bsm.New(c).Obtain(ctx, "{warm}:bsm", time.Minute, nil)
		if err != nil {
			return err
		}
		return l.Release(ctx)
	}
	return nil
}

func writeProfile(name, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return pprof.Lookup(name).WriteTo(f, 0)
}

// beatBurst: one scheduler per replica, each with its own client and
// instance id, on one key prefix; the events tell the answers.
func beatBurst(clients []*redis.Client, tr *tracker, n int) (burstRig, error) {
	var ss []*scheduler.Scheduler
	sched := onceAt{tr.at}
	for r, c := range clients {
		ts := make([]scheduler.Task, n)
		for i := range ts {
			ts[i] = scheduler.Task{Name: "task-" + strconv.Itoa(i), Schedule: sched,
				Func: func(context.Context, tasks.Run) error { tr.ran(i); return nil }}
		}
		s, err := scheduler.New(redislock.New(c), ts,
			scheduler.WithInstanceID("replica-"+strconv.Itoa(r)),
			scheduler.WithLogger(slog.New(slog.DiscardHandler)),
			scheduler.WithObserver(func(ev scheduler.Event) {
				switch ev.Kind {
				case scheduler.Claimed:
					tr.answer(true)
				case scheduler.AlreadyClaimed:
					tr.answer(false)
				case scheduler.Succeeded, scheduler.Failed:
					tr.end()
				case scheduler.Renewed:
				default:
					tr.fail(ev.Kind.String() + ": " + ev.Reason + fmt.Sprint(ev.Err))
				}
			}))
		if err != nil {
			return burstRig{}, err
		}
		ss = append(ss, s)
	}
	return burstRig{
		start: func(ctx context.Context) error {
			for _, s := range ss {
				if err := s.Start(ctx); err != nil {
					return err
				}
			}
			return nil
		},
		stop: func(ctx context.Context) error {
			var errs []error
			for _, s := range ss {
				errs = append(errs, s.Stop(ctx))
			}
			return errors.Join(errs...)
		},
	}, nil
}

// gocronBurst: one gocron scheduler per replica, with the redsync locker
// (one try) on its own client; each job a one-time job at the instant.
// The locker is wrapped to tell when each attempt returns and when each
// run's lock is freed.
func gocronBurst(clients []*redis.Client, tr *tracker, n int) (burstRig, error) {
	var ss []gocron.Scheduler
	for _, c := range clients {
		locker := observedLocker{newRedsyncLocker(c, nil, redsync.WithTries(1)), tr}
		s, err := gocron.NewScheduler(gocron.WithDistributedLocker(locker), gocron.WithLocation(time.UTC))
		if err != nil {
			return burstRig{}, err
		}
		for i := range n {
			_, err := s.NewJob(gocron.OneTimeJob(gocron.OneTimeJobStartDateTime(tr.at)),
				gocron.NewTask(func() { tr.ran(i) }), gocron.WithName("{gocron}:task-"+strconv.Itoa(i)))
			if err != nil {
				return burstRig{}, err
			}
		}
		ss = append(ss, s)
	}
	return burstRig{
		start: func(context.Context) error {
			for _, s := range ss {
				s.Start()
			}
			return nil
		},
		stop: func(context.Context) error {
			var errs []error
			for _, s := range ss {
				errs = append(errs, s.Shutdown())
			}
			return errors.Join(errs...)
		},
	}, nil
}

// observedLocker tells tr of each lock attempt and of each lock freed.
type observedLocker struct {
	l  gocron.Locker
	tr *tracker
}

func (o observedLocker) Lock(ctx context.Context, key string) (gocron.Lock, error) {
	l, err := o.l.Lock(ctx, key)
	if err != nil {
		// redsync tells a lock taken from a timeout, but the locker, as
		// gocron-redis-lock's, says only that it did not get it.
		o.tr.answer(false)
		return nil, err
	}
	o.tr.answer(true)
	return observedLock{l, o.tr}, nil
}

type observedLock struct {
	l  gocron.Lock
	tr *tracker
}

func (o observedLock) Unlock(ctx context.Context) error {
	err := o.l.Unlock(ctx)
	o.tr.end()
	return err
}

// robfigBurst: one robfig/cron runner per replica; each job takes a
// bsm/redislock lock named after it (no retry) on the replica's client,
// runs, and frees it.
func robfigBurst(clients []*redis.Client, tr *tracker, n int) (burstRig, error) {
	var cs []*cron.Cron
	sched := onceAt{tr.at}
	for _, c := range clients {
		locks := bsm.New(c)
		cr := cron.New(cron.WithLocation(time.UTC))
		for i := range n {
			key := "{robfig}:task-" + strconv.Itoa(i)
			cr.Schedule(sched, cron.FuncJob(func() {
				ctx := context.Background()
				l, err := locks.Obtain(ctx, key, 30*time.Second, nil)
				switch {
				case errors.Is(err, bsm.ErrNotObtained):
					tr.answer(false)
					return
				case err != nil:
					tr.fail(err.Error())
					return
				}
				tr.answer(true)
				tr.ran(i)
				_ = l.Release(ctx)
				tr.end()
			}))
		}
		cs = append(cs, cr)
	}
	return burstRig{
		start: func(context.Context) error {
			for _, c := range cs {
				c.Start()
			}
			return nil
		},
		stop: func(context.Context) error {
			for _, c := range cs {
				<-c.Stop().Done()
			}
			return nil
		},
	}, nil
}
