package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/beatlock/beat/clock"
	"github.com/beatlock/beat/lock/redislock"
	"github.com/beatlock/beat/schedule"
	"github.com/beatlock/beat/scheduler"
	"github.com/beatlock/beat/tasks"
)

// The spread measurement: how the runs of CPU-heavy tasks divide among
// replicas whose clocks disagree.
const (
	spreadReplicas = 3
	spreadSpec     = "@every 1s"
	// The target: each replica's share of the runs.
	spreadShareLow, spreadShareHigh = 20.0, 45.0
)

// spreadOffsets are the replicas' clock offsets: ahead, right, behind.
func spreadOffsets(skew time.Duration) []time.Duration {
	return []time.Duration{skew, 0, -skew}
}

// spreadName names replica i in the report.
func spreadName(i int) string { return "replica " + string(rune('A'+i)) }

// RunID is one run: a task and its tick's nominal instant (Unix ms); for
// a tick not run, Kind is the event that said so.
type RunID struct {
	Task string `json:"task"`
	Tick int64  `json:"tick"`
	Kind string `json:"kind,omitempty"`
}

// spreadTicks is how many ticks of spreadSpec fall in [from, to).
func spreadTicks(from, to time.Time) (int, error) {
	sched, err := schedule.Parse(spreadSpec, time.UTC)
	if err != nil {
		return 0, err
	}
	n := 0
	for t := sched.Next(from.Add(-time.Nanosecond)); !t.IsZero() && t.Before(to); t = sched.Next(t) {
		n++
	}
	return n, nil
}

// burn hashes until it has used d of CPU, or until ctx is done: the run of
// a CPU-heavy task. It counts its own thread's CPU time, not the time
// passed, so that a run costs d whatever else competes for the cores (it
// then takes longer).
func burn(ctx context.Context, d time.Duration) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start, err := threadCPU()
	if err != nil {
		return err
	}
	h := sha256.New()
	buf := make([]byte, 4096)
	for ctx.Err() == nil {
		for range 16 {
			h.Write(buf)
		}
		now, err := threadCPU()
		if err != nil {
			return err
		}
		if now-start >= d {
			return nil
		}
	}
	return ctx.Err()
}

// threadCPU is the CPU time of the calling thread; with the goroutine
// locked to it, the goroutine's own.
func threadCPU() (time.Duration, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0, err
	}
	return time.Duration(ts.Nano()), nil
}

// measureSpread is one replica of the spread measurement, a process of its
// own as a pod is: p.Tasks tasks ticking every second, each run burning
// p.Work of CPU, on a clock p.Offset off. The scheduler starts at once;
// the ticks in [p.Start, p.Start+p.Duration) are counted, and the runs of
// those it started are returned (Result.Runs) for the parent to compare
// with the other replicas'.
func measureSpread(ctx context.Context, p Params) (Result, error) {
	if p.Start.IsZero() || p.Duration <= 0 || p.Tasks <= 0 {
		return Result{}, errors.New("spread: needs start, duration and tasks")
	}
	c := newClient(p.Redis, 0, nil)
	defer c.Close()
	if err := warm(ctx, c); err != nil {
		return Result{}, err
	}
	sched, err := schedule.Parse(spreadSpec, time.UTC)
	if err != nil {
		return Result{}, err
	}
	from, to := p.Start, p.Start.Add(p.Duration)
	in := func(tick time.Time) bool { return !tick.Before(from) && tick.Before(to) }
	var (
		mu     sync.Mutex
		runs   []RunID
		delays []time.Duration // tick to claim answer, by the real clock
		offErr []time.Duration // the scheduler's estimate of the store's clock, less the truth
		walls  []time.Duration // how long each counted run took
		going  atomic.Int64    // runs in progress
		lost   atomic.Int64    // claims a peer won first
		skips  []RunID         // ticks not run here, with the event that said so
		failed atomic.Int64    // runs that failed or lost their lease
	)
	ts := make([]scheduler.Task, p.Tasks)
	for i := range ts {
		ts[i] = scheduler.Task{Name: "cpu-" + strconv.Itoa(i), Schedule: sched,
			Func: func(ctx context.Context, run tasks.Run) error {
				going.Add(1)
				defer going.Add(-1)
				t0 := time.Now()
				err := burn(ctx, p.Work)
				if in(run.ScheduledAt) {
					mu.Lock()
					runs = append(runs, RunID{Task: run.Task, Tick: run.ScheduledAt.UnixMilli()})
					walls = append(walls, time.Since(t0))
					mu.Unlock()
				}
				return err
			}}
	}
	s, err := scheduler.New(redislock.New(c), ts,
		scheduler.WithInstanceID("spread-"+strconv.Itoa(p.Replica)),
		scheduler.WithClock(clock.Offset{Base: clock.Real{}, By: p.Offset}),
		scheduler.WithLogger(slog.New(slog.DiscardHandler)),
		scheduler.WithObserver(func(ev scheduler.Event) {
			if !in(ev.Tick) {
				return
			}
			switch ev.Kind {
			case scheduler.Claimed:
				// The store's clock is this machine's: the real delay is
				// read from it, and the scheduler's own Delay, which
				// counts by its estimate of the store's clock, differs
				// from it by that estimate's error.
				took := time.Since(ev.Tick)
				mu.Lock()
				delays = append(delays, took)
				offErr = append(offErr, ev.Delay-took)
				mu.Unlock()
			case scheduler.AlreadyClaimed:
				lost.Add(1)
			case scheduler.Failed, scheduler.Lost:
				failed.Add(1)
			case scheduler.Busy, scheduler.Missed, scheduler.ClaimFailed, scheduler.ClockAhead, scheduler.StoreLost, scheduler.AtCapacity:
				mu.Lock()
				skips = append(skips, RunID{Task: ev.Task, Tick: ev.Tick.UnixMilli(), Kind: ev.Kind.String()})
				mu.Unlock()
			}
		}))
	if err != nil {
		return Result{}, err
	}
	if err := s.Start(ctx); err != nil {
		return Result{}, err
	}
	// Stop waits for the runs going, each needing p.Work of CPU; past its
	// timeout it cancels them.
	stop := func() error {
		sctx, cancel := context.WithTimeout(context.Background(), p.Work+5*time.Second)
		defer cancel()
		return s.Stop(sctx)
	}
	if time.Until(from) < 0 {
		stop()
		return Result{}, fmt.Errorf("spread: started %v after the window opened; give it more lead", -time.Until(from))
	}
	time.Sleep(time.Until(from))
	cpu0 := cpuTime()
	// The runs going as each tick comes due: a replica that has seen a
	// peer win delays its claims for each (scheduler/spread.go).
	var busy int64
	for t := from; t.Before(to); t = t.Add(time.Second) {
		time.Sleep(time.Until(t))
		if going.Load() > 0 {
			busy++
		}
	}
	time.Sleep(time.Until(to))
	cpu := cpuTime() - cpu0
	// The last ticks of the window are claimed within milliseconds (at
	// most the load delay, and the skew of a clock not yet estimated).
	time.Sleep(500 * time.Millisecond)
	if err := stop(); err != nil {
		return Result{}, err
	}
	mu.Lock()
	defer mu.Unlock()
	met := map[string]float64{
		"runs":        float64(len(runs)),
		"lost_races":  float64(lost.Load()),
		"skipped":     float64(len(skips)),
		"cpu_pct":     100 * cpu.Seconds() / p.Duration.Seconds(),
		"offset_ms":   float64(p.Offset.Milliseconds()),
		"failed_runs": float64(failed.Load()),
		// The window's seconds that came with runs of this replica still
		// going.
		"busy_instants": float64(busy),
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }
	if len(delays) > 0 {
		slices.Sort(delays)
		met["delay_p50_ms"] = ms(delays[len(delays)/2])
		met["delay_max_ms"] = ms(delays[len(delays)-1])
		slices.Sort(offErr)
		met["offset_err_p50_ms"] = ms(offErr[len(offErr)/2])
	}
	if len(walls) > 0 {
		slices.Sort(walls)
		met["run_p50_ms"] = ms(walls[len(walls)/2])
		met["run_max_ms"] = ms(walls[len(walls)-1])
	}
	return Result{Metrics: met, Runs: slices.Clone(runs), Skips: slices.Clone(skips)}, nil
}

// spread runs the replicas of one spread round at once, each in a child
// process, and compares their runs: how many ticks ran, twice or not at
// all, and each replica's share.
func (e Env) spread(ctx context.Context, plan Plan) (Result, error) {
	if err := flush(ctx, e.Redis); err != nil {
		return Result{}, err
	}
	// The window opens on a whole second, a tick of every task, after the
	// children had time to start and to see each other.
	start := time.Now().Add(plan.SpreadWarm).Truncate(time.Second).Add(time.Second)
	ticks, err := spreadTicks(start, start.Add(plan.SpreadFor))
	if err != nil {
		return Result{}, err
	}
	offsets := spreadOffsets(plan.SpreadSkew)
	results := make([]Result, len(offsets))
	errs := make([]error, len(offsets))
	var wg sync.WaitGroup
	for i, off := range offsets {
		wg.Go(func() {
			results[i], errs[i] = e.child(ctx, "spread", Params{Impl: spreadName(i), Replica: i, Offset: off, Start: start,
				Duration: plan.SpreadFor, Tasks: plan.SpreadTasks, Work: plan.SpreadWork}, time.Until(start)+plan.SpreadFor+time.Minute)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return Result{}, err
	}
	met := map[string]float64{"ticks": float64(ticks * plan.SpreadTasks), "instants": float64(ticks)}
	seen := map[RunID]int{}
	// Which replicas ran the tasks of each tick instant: the tasks due
	// together are claimed together, so an instant may go to one replica
	// whole.
	by := map[int64]map[int]bool{}
	// What the replicas said of the ticks they did not run.
	said := map[RunID]map[string]bool{}
	var total float64
	for i, r := range results {
		for _, sk := range r.Skips {
			id := RunID{Task: sk.Task, Tick: sk.Tick}
			if said[id] == nil {
				said[id] = map[string]bool{}
			}
			said[id][sk.Kind] = true
		}
		for _, id := range r.Runs {
			seen[id]++
			if by[id.Tick] == nil {
				by[id.Tick] = map[int]bool{}
			}
			by[id.Tick][i] = true
		}
		total += r.Metrics["runs"]
		for k, v := range r.Metrics {
			met[k+":"+strconv.Itoa(i)] = v
		}
	}
	var dups float64
	for _, n := range seen {
		dups += float64(n - 1)
	}
	for _, replicas := range by {
		if len(replicas) > 1 {
			met["split_instants"]++
		}
	}
	met["runs"] = total
	met["duplicate_runs"] = dups
	met["ticks_not_run"] = met["ticks"] - float64(len(seen))
	for id, kinds := range said {
		if seen[id] == 0 {
			met["not_run:"+strings.Join(slices.Sorted(maps.Keys(kinds)), "/")]++
		}
	}
	lo, hi := 100.0, 0.0
	for i := range results {
		share := 0.0
		if total > 0 {
			share = 100 * met["runs:"+strconv.Itoa(i)] / total
		}
		met["share_pct:"+strconv.Itoa(i)] = share
		lo, hi = min(lo, share), max(hi, share)
	}
	met["share_min_pct"], met["share_max_pct"] = lo, hi
	return Result{Metrics: met}, nil
}

// spreadSection renders the spread measurement: the set-up, a row per
// replica, and the verdict on the target.
func (r *Report) spreadSection() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p := r.Plan
	k := key("spread", burstBeat, p.SpreadTasks, spreadReplicas)
	rounds := r.Series[k]
	if len(rounds) == 0 {
		return "Not measured in this run.\n\n"
	}
	w(`Three replicas of beat, each a process of its own as pods are, share the Redis
(redislock); replica A's clock runs %s ahead (clock.Offset), B's is right, C's
%s behind. Each holds the same %d tasks `+"`%s`"+` (concurrency_policy
Forbid, the default), whose run is CPU-heavy: it hashes (SHA-256) until its
thread has used %s of CPU, so the runs of one second need %s of CPU, on
this machine's cores shared with Redis and the three processes' schedulers.
The replicas start together; from the first whole second at least %v after
their start, the ticks of the next %v are counted: each replica records the
task and tick of every run it starts and of every tick it reports skipped,
and this program compares the records.

*Claims lost* are the replica's claims of counted ticks that a peer had won
first (AlreadyClaimed). *Seconds with runs going* counts the ticks' instants
at which the replica still had runs going (sampled at each whole second).
*Run time* is a run's wall time, from its start to its end. *Claim delay* is
from the tick's instant to the claim's answer, by this machine's clock, which
is also the store's. *Estimate error* is how far ahead (negative: behind) of
the store's clock the replica's estimate of it was when it won a claim: the
Claimed event's Delay, which counts by that estimate, less the claim delay; a
replica fires its claims that much early. *CPU* is the replica process's own
over the window, as a share of one core.

**Target (the issue): each replica's share of the runs within %.0f–%.0f %%.**

`, fmtMs(p.SpreadSkew), fmtMs(p.SpreadSkew), p.SpreadTasks, spreadSpec, fmtMs(p.SpreadWork), fmtMs(time.Duration(p.SpreadTasks)*p.SpreadWork),
		p.SpreadWarm, p.SpreadFor, spreadShareLow, spreadShareHigh)
	t := &table{head: []string{"replica", "clock", "runs", "share of the runs", "claims lost", "seconds with runs going", "run time p50, ms", "run time max, ms",
		"claim delay p50, ms", "claim delay max, ms", "estimate error p50, ms", "CPU, % of a core", "ticks reported skipped"}}
	for i := range spreadReplicas {
		m := func(name string) stat { return r.stat(k, name+":"+strconv.Itoa(i)) }
		share := m("share_pct")
		shareText := fmt.Sprintf("%.1f %%", share.Median)
		if share.N > 1 {
			shareText += " (" + spread(share) + ")"
		}
		clockText := "right"
		switch off := m("offset_ms").Median; {
		case off > 0:
			clockText = fmt.Sprintf("%s ms ahead", num(off))
		case off < 0:
			clockText = fmt.Sprintf("%s ms behind", num(-off))
		}
		// A replica that ran nothing has no run or claim to time.
		opt := func(name string) string {
			if s := m(name); s.N > 0 {
				return num(s.Median)
			}
			return "–"
		}
		t.add(spreadName(i), clockText, count(m("runs").Median), shareText, count(m("lost_races").Median),
			fmt.Sprintf("%s of %s", count(m("busy_instants").Median), count(r.stat(k, "instants").Median)),
			opt("run_p50_ms"), opt("run_max_ms"), opt("delay_p50_ms"), opt("delay_max_ms"), opt("offset_err_p50_ms"), num(m("cpu_pct").Median), count(m("skipped").Median))
	}
	w("%s\n", t)
	if len(rounds) > 1 {
		w("Figures are medians over %d rounds.\n\n", len(rounds))
	}
	var ticks, runs, dups, notRun, instants, split float64
	why := map[string]float64{}
	met := 0
	for _, res := range rounds {
		m := res.Metrics
		ticks, runs, dups, notRun = ticks+m["ticks"], runs+m["runs"], dups+m["duplicate_runs"], notRun+m["ticks_not_run"]
		instants, split = instants+m["instants"], split+m["split_instants"]
		for name, v := range m {
			if kind, ok := strings.CutPrefix(name, "not_run:"); ok {
				why[kind] += v
			}
		}
		if m["share_min_pct"] >= spreadShareLow && m["share_max_pct"] <= spreadShareHigh {
			met++
		}
	}
	w("Over %s: %s ticks were due (%d tasks × %s instants) and %s runs started. **Duplicate runs** (a tick run by two replicas, which must never happen): **%s**. **Ticks run by no replica: %s**",
		plural(len(rounds), "round"), count(ticks), p.SpreadTasks, count(instants), count(runs), count(dups), count(notRun))
	if notRun > 0 {
		var parts []string
		var told float64
		for _, kind := range slices.Sorted(maps.Keys(why)) {
			parts = append(parts, fmt.Sprintf("%s reported %s%s", count(why[kind]), kind, skipWhy[kind]))
			told += why[kind]
		}
		if notRun > told {
			parts = append(parts, fmt.Sprintf("%s not reported by any replica", count(notRun-told)))
		}
		w(": %s", strings.Join(parts, "; "))
	}
	w(".")
	var failed float64
	for _, res := range rounds {
		for i := range spreadReplicas {
			failed += res.Metrics["failed_runs:"+strconv.Itoa(i)]
		}
	}
	if failed > 0 {
		w(" %s runs failed or lost their lease.", count(failed))
	}
	w("\n\n")
	w("Ticks due at one instant are claimed in one batch per replica, and each claim in it is decided when the batch reaches the store: at %s of the %s instants the %d runs went to more than one replica, at the others all to one.\n\n",
		count(split), count(instants), p.SpreadTasks)
	lo, hi := r.stat(k, "share_min_pct"), r.stat(k, "share_max_pct")
	switch {
	case met == len(rounds):
		w("**Target met**: every replica ran between %.1f and %.1f %% of the runs.\n\n", lo.Min, hi.Max)
	case met == 0:
		w("**Target not met**: the shares ranged from %.1f to %.1f %% (target %.0f–%.0f %%).\n\n", lo.Min, hi.Max, spreadShareLow, spreadShareHigh)
	default:
		w("**Target met in %d of %d rounds**: the shares ranged from %.1f to %.1f %% over all rounds (target %.0f–%.0f %%).\n\n",
			met, len(rounds), lo.Min, hi.Max, spreadShareLow, spreadShareHigh)
	}
	w(`How beat spreads the runs (scheduler/spread.go): each replica fires its
claims when the store's clock reaches the tick, by an offset it estimates from
its claims' answers (trusted within max_clock_skew), so that clocks %s apart
no longer decide who claims first; and a replica that has seen a peer win a
tick in the last minute sends its claims 1 ms later for each run it has going
(at most 20 ms), so that a tick goes to a replica with less to do.

`, fmtMs(p.SpreadSkew))
	return b.String()
}

// skipWhy explains the kinds of skipped ticks a replica reports.
var skipWhy = map[string]string{
	"busy":         " (concurrency_policy Forbid skips a tick while the task's previous run still holds the lock)",
	"missed":       " (the tick's window closed before it was claimed)",
	"claim-failed": " (the store could not be asked in time)",
	"at-capacity":  " (the replica was at max_concurrent_runs)",
}

// count formats a count: no decimals.
func count(x float64) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "–"
	}
	return group(strconv.FormatFloat(math.Round(x), 'f', 0, 64))
}

// fmtMs writes d in milliseconds: "100 ms".
func fmtMs(d time.Duration) string { return count(float64(d.Milliseconds())) + " ms" }

// plural is "1 round", "3 rounds".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}
