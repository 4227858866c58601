package main

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// whatCosts explains where a burst's time goes, from this run's own
// figures: the burst's CPU on both sides, the claim script's commands, the
// client's allocations, the goroutines, and the scripts' sizes.
func (r *Report) whatCosts() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p := r.Plan
	n := p.BurstTasks
	one, three := key("burst", burstBeat, n, 1), key("burst", burstBeat, n, 3)
	med := func(k, m string) float64 { return r.stat(k, m).Median }
	s := r.Scripts.Metrics
	cmds := r.Scripts.Commands
	cpuShare := func(fn string) float64 { return cumShare(r.Profile.CPUCumAll, fn) }

	w(`From a %s-task burst of beat on one replica, profiled apart from the rounds
(CPU in one run, every allocation in another); the server's INFO commandstats
over %s claims of successive ticks, one at a time (each with its
ReleaseLease); bursts with and without beat's scripts loaded on the server;
and a held schedule of %s tasks, profiled (load, live heap, idle CPU).
Nothing in beat was changed to measure it; the profiles are in bench/out/.

`, num(float64(n)), num(2000), num(float64(p.ScaleTasks)))

	// 1. Round trips and the CPU floor.
	client, server := med(one, "client_us_tick"), med(one, "server_us_tick")
	floor := float64(n) * (client + server) / 2 / 1000
	answered := med(one, "answered_ms")
	w("1. **Claims and releases go to Redis in batches.** In the burst on one replica beat made %s round trips per tick, %s script calls for the %s ticks (bsm/redislock under robfig/cron: %s round trips per tick): the ticks due together are claimed up to %d in one script call, and the releases of runs that end together gather into one call while the previous call is in flight. A tick cost %s µs of beat's CPU and %s µs of Redis's; on 2 cores that is at least %s ms for %s tasks, %s the %.0f ms target, and every answer had come after %s ms. %s\n",
		num(med(one, "trips_per_tick")), count(burstCmd(r, burstBeat, 1, "evalsha").Calls*float64(n)), count(float64(n)), num(med(key("burst", burstRobfig, n, 1), "trips_per_tick")),
		beatMaxBatch, num(client), num(server), num(floor), num(float64(n)), percentOf(floor, targetBurst1), targetBurst1, num(answered),
		floorVerdict(floor, answered, targetBurst1))

	// 2. The claim script.
	pair := cmds["evalsha"].Usec
	info := cmds["info"]
	var nested, index float64
	for name, c := range cmds {
		if name != "evalsha" {
			nested += c.Usec
		}
		if name == "zadd" || name == "zremrangebyscore" || name == "pttl" || name == "zrem" || name == "pexpire" {
			index += c.Usec
		}
	}
	w("2. **The claim script on the server.** In the bursts on one replica, beat's scripts ran %s µs per task inside EVALSHA, bsm/redislock's %s µs (Redis's whole CPU per task: %s against %s). A lone claim with its release, one at a time (the path of a tick due alone), runs %s µs in EVALSHA; its commands: %s. Of these, `INFO server` (%s µs, which reads the server's run_id to notice a restart) and the owner index's upkeep on claim (ZREMRANGEBYSCORE, PTTL, and a ZADD per 200 locks) are done once per script call, so the ticks of a batch share them (in the burst, %s INFO calls per tick); the release removes each lease from the index (ZREM). The owner index cost the lone pair %s µs. Lua itself took %s µs of the %s, in no nested command: the interpreter, and redis.call's conversions of arguments and replies, about %s calls a pair. On three replicas Redis spent %s µs per task, against %s on one: each claim that finds the tick taken still reads its record (HMGET: %s calls per task on three replicas, %s on one).\n",
		num(burstCmd(r, burstBeat, 1, "evalsha").Usec), num(burstCmd(r, burstRobfig, 1, "evalsha").Usec), num(server), num(med(key("burst", burstRobfig, n, 1), "server_us_tick")),
		num(pair), commandList(cmds),
		num(info.Usec), num(burstCmd(r, burstBeat, 1, "info").Calls), num(index), num(pair-nested), num(pair), num(nestedCalls(cmds)),
		num(med(three, "server_us_tick")), num(server), num(burstCmd(r, burstBeat, 3, "hmget").Calls), num(burstCmd(r, burstBeat, 1, "hmget").Calls))

	// 3. Allocations.
	alloc := func(fns ...string) float64 {
		var sum float64
		for _, fn := range fns {
			sum += flatOf(r.Profile.AllocTop, fn)
		}
		return sum / float64(n)
	}
	const (
		goredis = "github.com/redis/go-redis/v9"
		rl      = "github.com/beatlock/beat/lock/redislock.(*Backend)."
		sch     = "github.com/beatlock/beat/scheduler.(*Scheduler)."
	)
	w("3. **Allocations: %s per claim pair one at a time, %s per tick in the burst** (bsm/redislock: %s per pair, %s per task in its burst). Per tick, from the allocation profile: the scheduler's `emit` and slog %s, building the attributes of log lines the discarding handler then drops; the run's context, lease and logger (`execute`, `newRunLease`, `context.WithCancelCause`) %s; go-redis's `eval` %s (it copies a script call's keys and args into one `[]interface{}`: three keys and four args per tick of a batch); `redislock.(*Backend).claim` %s (three key strings per tick, state, lock and fence; the epoch keys and the owner index once per batch; the reply parsed) and the batched releases %s (`ReleaseBatch`, and the scheduler's `releaseLease` queueing each end: four keys per lease, its token and run record formatted); `context.WithTimeout` and timers %s (a deadline for each run's release and one per batch call, the renewer's timer).",
		num(s["allocs:"+pairClaim]), num(med(one, "allocs_per_tick")), num(s["allocs:"+pairBSM]), num(med(key("burst", burstRobfig, n, 1), "allocs_per_tick")),
		num(alloc(sch+"emit", "log/slog.argsToAttrSlice", "log/slog.(*Logger).clone (inline)")),
		num(alloc(sch+"execute", sch+"newRunLease (inline)", "context.WithCancelCause", "context.withCancel (inline)", "context.WithValue")),
		num(alloc(goredis+".cmdable.eval", goredis+".NewCmd (inline)")),
		num(alloc(rl+"claim", rl+"fenceKey (inline)", rl+"lockKey (inline)", rl+"ownerKey (inline)", rl+"stateKey (inline)",
			rl+"epochKey (inline)", rl+"epochServerKey (inline)", rl+"epochGuardKey (inline)")),
		num(alloc(rl+"ReleaseBatch", sch+"releaseLease", sch+"flushReleases")),
		num(alloc("context.WithDeadlineCause", "time.newTimer", "time.NewTimer")))
	if pool := alloc(goredis+"/internal/pool.checkSyscallConn", "net.newRawConn (inline)", goredis+"/internal.(*FastSemaphore).Acquire"); pool >= 0.5 {
		w(" go-redis's connection pool (its check of a connection on every Get, its semaphore) %s.", num(pool))
	}
	w(" Allocation takes %.0f %% of the client's CPU in the burst (runtime.mallocgc, cumulative).\n", cpuShare("runtime.mallocgc"))

	// 4. Goroutines.
	w("4. **Goroutines: one per claim batch, then one per run.** The loop hands the ticks due together, up to %d at a time, to a goroutine that claims them in one script call (at most %d such calls in flight per replica); each tick won then runs in a goroutine of its own, with its lease renewer: %s goroutines at the peak of the %s-task burst on one replica (%s on three). Stack growth (`runtime.newstack`) took %.0f %% of the client's CPU.",
		beatMaxBatch, beatClaimCalls, count(med(one, "goroutines_peak")), count(float64(n)), count(med(three, "goroutines_peak")), cpuShare("runtime.newstack"))
	if p.Burst100k {
		big1, big3 := key("burst", burstBeat, p.BigTasks, 1), key("burst", burstBeat, p.BigTasks, 3)
		if len(r.Series[big1]) > 0 && len(r.Series[big3]) > 0 {
			w(" With %s tasks on one replica, every answer had come after %s ms, at a peak of %s goroutines and %s MB resident; %s. On three replicas: %s ms, %s goroutines, %s MB; %s.",
				count(float64(p.BigTasks)), num(med(big1, "answered_ms")), count(med(big1, "goroutines_peak")), num(med(big1, "rss_mb")), bigOutcome(r, big1, p.BigTasks),
				num(med(big3, "answered_ms")), count(med(big3, "goroutines_peak")), num(med(big3, "rss_mb")), bigOutcome(r, big3, p.BigTasks))
			gc1, gc3 := key("burst", burstGocron, p.BigTasks, 1), key("burst", burstGocron, p.BigTasks, 3)
			rob := key("burst", burstRobfig, p.BigTasks, 3)
			w(" The peers at that size: gocron, whose redsync locker gives a lock attempt 400 ms (8 s expiry × 0.05), answered in %s ms on one replica and %s on three, %s and %s of the %s ticks running nowhere; robfig/cron with bsm/redislock, which locks on the job's name only, answered in %s ms on three replicas, where %s ticks ran twice and %s nowhere.",
				num(med(gc1, "answered_ms")), num(med(gc3, "answered_ms")), count(med(gc1, "ticks_not_run")), count(med(gc3, "ticks_not_run")), count(float64(p.BigTasks)),
				num(med(rob, "answered_ms")), count(med(rob, "duplicate_runs")), count(med(rob, "ticks_not_run")))
		}
	}
	w("\n")

	// 5. Script size and the EVALSHA path.
	loaded, notLoaded := key("cold", "scripts loaded", n), key("cold", "scripts not loaded", n)
	evals := summarize(evalCalls(r.Series[notLoaded], "eval")).Median
	evalshas := summarize(evalCalls(r.Series[notLoaded], "evalsha")).Median
	w("5. **Script size and the EVALSHA path.** The claim script is %s bytes (ReleaseLease %s, RenewLease %s, TryAcquire %s, Release %s; bsm/redislock's obtain %s, redsync's unlock %s). go-redis's `Script.Run` sends EVALSHA and, on NOSCRIPT, the whole body with EVAL; after a Redis restart or failover the server has none of them. In %s of bursts of %s tasks, with and without the scripts loaded beforehand, the bursts without sent %s EVALs per tick against %s EVALSHAs (%s kB of script text per tick), and their first answer came after %s ms instead of %s; all answers after %s ms instead of %s%s.\n",
		num(s["script_bytes_claim"]), num(s["script_bytes_release_lease"]), num(s["script_bytes_renew_lease"]), num(s["script_bytes_try_acquire"]), num(s["script_bytes_release"]),
		num(s["script_bytes_bsm_obtain"]), num(s["script_bytes_redsync_unlock"]),
		plural(len(r.Series[notLoaded]), "interleaved pair"), num(float64(n)), num(evals), num(evalshas), num(evals*s["script_bytes_claim"]/1000),
		num(med(notLoaded, "first_ms")), num(med(loaded, "first_ms")), num(med(notLoaded, "answered_ms")), num(med(loaded, "answered_ms")),
		coldVerdict(med(notLoaded, "answered_ms"), med(loaded, "answered_ms"), evals, evalshas))

	// 6. Lock pairs.
	pairs := func(impl string, conc int) float64 { return r.stat(key("pair", impl, conc), "pairs_per_s").Median }
	w("6. **Lock pairs: %s** Every pair is two round trips, a script each (bsm/redislock's too), and is the path of a tick due alone; ticks due together go in batches (finding 1). At one caller Claim+ReleaseLease (%s µs in Redis per pair, one at a time) made %s pairs/s, %s of bsm/redislock's; TryAcquire+Release %s. At 50 callers Claim+ReleaseLease made %s, TryAcquire+Release (its script also keeps the owner index) %s of bsm/redislock's.\n",
		pairVerdict(pairs(pairClaim, 1)/pairs(pairBSM, 1), pairs(pairClaim, 50)/pairs(pairBSM, 50)),
		num(cmds["evalsha"].Usec), num(pairs(pairClaim, 1)), ratio(pairs(pairClaim, 1), pairs(pairBSM, 1)), ratio(pairs(pairAcquire, 1), pairs(pairBSM, 1)),
		ratio(pairs(pairClaim, 50), pairs(pairBSM, 50)), ratio(pairs(pairAcquire, 50), pairs(pairBSM, 50)))

	// 7-9. A schedule held.
	sn := p.ScaleTasks
	idle := key("idle", scaleBeat, sn)
	w("7. **Loading %s tasks takes %s ms**, about %s µs a task (profile below): the YAML parser building nodes (`yaml.(*parser).parse`, %.0f %% of the time), each cron spec parsed by robfig's parser through `schedule.Parse` (%.0f %%; robfig's `getField` %.0f %%, its `strings.Split` and slices), and the allocations of both (runtime.mallocgc %.0f %%, zeroing fresh spans a large part of it).\n",
		num(float64(sn)), num(med(idle, "load_ms")), num(1000*med(idle, "load_ms")/float64(sn)),
		cumShare(r.Profile.LoadTop, "go.yaml.in/yaml/v3.(*parser).parse"), cumShare(r.Profile.LoadTop, "github.com/beatlock/beat/schedule.Parse"),
		cumShare(r.Profile.LoadTop, "github.com/robfig/cron/v3.getField"), cumShare(r.Profile.LoadTop, "runtime.mallocgc"))
	heap := func(fns ...string) string {
		var sum float64
		for _, fn := range fns {
			sum += flatOf(r.Profile.HeapTop, fn)
		}
		return num(sum / float64(sn))
	}
	w("8. **Heap per task: %s B for the scheduler, %s B with the loaded config.** From the live heap (below; sampled, so roughly), per task: `scheduler.newJobs` %s B (it copies each `scheduler.Task`, a large struct, into a job), the loop's `due` entry in its heap %s B, the cron schedule %s B (`schedule.newCron` around robfig's `SpecSchedule`), an `Args` map %s B even when the task has no args (`config.(*decoder).args`), the strings the YAML parser made (names, specs, types) %s B, which the scheduler shares; and the config's own `config.Task` %s B, which `beat run` keeps too. robfig/cron's runner holds the same specs in %s B an entry.\n",
		num(med(idle, "heap_per_task_scheduler")), num(med(idle, "heap_per_task")),
		heap("github.com/beatlock/beat/scheduler.newJobs"), heap("github.com/beatlock/beat/scheduler.(*Scheduler).loop"),
		heap("github.com/beatlock/beat/schedule.newCron", "github.com/robfig/cron/v3.Parser.Parse"), heap("github.com/beatlock/beat/config.(*decoder).args"),
		heap("go.yaml.in/yaml/v3.(*parser).scalar"), heap("github.com/beatlock/beat/config.(*decoder).tasks"),
		num(med(key("idle", scaleRobfig, sn), "heap_per_task")))
	settled, floor := med(idle, "idle_cpu_pct"), r.Profile.IdleOne.Metrics["idle_cpu_pct"]
	w("9. **Idle CPU: first the runtime's, then a loop that wakes every second.** Right after the start, the process used %s %% of a core; %.0f %% of the profile's samples are the Go runtime's background scavenger giving back the memory the load had used (`runtime.bgscavenge` → `madvise`, profile below). Once that is done (debug.FreeOSMemory, then the window), %s %% (%s over the rounds): too little for the profiler to see in %v. beat holding **one** task idles at %s %% (one measurement), so about %.0f %% of it is the floor of a loop that wakes once a second whatever is due (it never sleeps longer, to notice a stepped clock), and the %s tasks add about %s %%; robfig/cron's runner, which sleeps until its next entry, idles at %s %% with the same %s specs.\n",
		fmt.Sprintf("%.2f", med(idle, "idle_cpu_pct_after_start")), cumShare(r.Profile.IdleStartTop, "runtime.bgscavenge"),
		fmt.Sprintf("%.3f", settled), spread(r.stat(idle, "idle_cpu_pct")), p.IdleFor,
		fmt.Sprintf("%.3f", floor), 100*min(floor/settled, 1), num(float64(sn)), fmt.Sprintf("%.3f", max(settled-floor, 0)),
		fmt.Sprintf("%.3f", med(key("idle", scaleRobfig, sn), "idle_cpu_pct")), num(float64(sn)))
	w("10. **Not measured here: logs.** The benchmark gives the schedulers a discarding logger. beat logs two lines at info per run (run started, run succeeded), so a burst of %s tasks writes %s lines at the default level.\n\n",
		num(float64(n)), num(float64(2*n)))

	// The tables behind it.
	w("**Scripts, as sent with EVAL** (bytes; the go-redis hook saw each body once, after a SCRIPT FLUSH):\n\n")
	st := &table{head: []string{"beat Claim", "ReleaseLease", "RenewLease", "TryAcquire", "Release", "bsm/redislock obtain", "release", "redsync lock", "unlock"}}
	st.add(num(s["script_bytes_claim"]), num(s["script_bytes_release_lease"]), num(s["script_bytes_renew_lease"]), num(s["script_bytes_try_acquire"]), num(s["script_bytes_release"]),
		num(s["script_bytes_bsm_obtain"]), num(s["script_bytes_bsm_release"]), "no script (SET NX)", num(s["script_bytes_redsync_unlock"]))
	w("%s\n", st)
	w("**Client allocations per lock pair**, one caller (runtime.MemStats over %s pairs):\n\n", num(2000))
	at := &table{head: []string{"pair", "allocs / pair", "bytes / pair"}}
	for _, impl := range pairImpls[:4] {
		at.add(impl, num(s["allocs:"+impl]), num(s["bytes:"+impl]))
	}
	w("%s\n", at)
	w("**Redis commands per Claim + ReleaseLease** (INFO commandstats; the nested commands' time is part of EVALSHA's), and Redis's CPU per pair: %s µs:\n\n", num(s["server_us_per_claim_pair"]))
	ct := &table{head: []string{"command", "calls / pair", "µs / pair"}}
	for _, name := range slices.Sorted(maps.Keys(cmds)) {
		ct.add("`"+name+"`", num(cmds[name].Calls), num(cmds[name].Usec))
	}
	w("%s\n", ct)
	w("**CPU profile of the burst** (%s tasks, one replica; `go tool pprof -top`, then `-top -cum`):\n\n```\n%s\n```\n\n```\n%s\n```\n\n",
		num(float64(n)), r.Profile.CPUTop, r.Profile.CPUCum)
	w("**Allocations in the burst** (every allocation recorded; objects, from the instant until every run ended; divide by %s for per tick):\n\n```\n%s\n```\n\n",
		num(float64(n)), r.Profile.AllocTop)
	w("**Loading the schedule** (config.Parse of %s tasks; `-top -cum`):\n\n```\n%s\n```\n\n", num(float64(sn)), r.Profile.LoadTop)
	w("**Live heap with the schedule held** (`-sample_index=inuse_space`; the runtime samples an allocation every 512 kB, so the per-function figures, and the per-task shares in finding 8, are approximate):\n\n```\n%s\n```\n\n", r.Profile.HeapTop)
	w("**Idle CPU right after the start**, then **settled**:\n\n```\n%s\n```\n\n```\n%s\n```\n", r.Profile.IdleStartTop, r.Profile.IdleTop)
	return b.String()
}

// beat's batching, as the scheduler has it: the most ticks one claim call
// carries (scheduler/run.go, maxBatch), and the claim calls a replica has
// in flight at once (scheduler.New, claimers).
const (
	beatMaxBatch   = 500
	beatClaimCalls = 4
)

// burstCmd is what the server spent per task on one command in impl's
// bursts of BurstTasks on replicas (medians over the rounds).
func burstCmd(r *Report, impl string, replicas int, cmd string) CmdStat {
	var calls, usec []float64
	for _, res := range r.Series[key("burst", impl, r.Plan.BurstTasks, replicas)] {
		c := res.Commands[cmd]
		calls, usec = append(calls, c.Calls), append(usec, c.Usec)
	}
	return CmdStat{Calls: summarize(calls).Median, Usec: summarize(usec).Median}
}

// percentOf puts a against b: "62 % of" when less, "1.4×" when more.
func percentOf(a, b float64) string {
	if a < b {
		return fmt.Sprintf("%.0f %% of", 100*a/b)
	}
	return fmt.Sprintf("%.1f×", a/b)
}

// floorVerdict judges a burst's CPU floor and its answers against the
// target.
func floorVerdict(floor, answered, target float64) string {
	switch {
	case floor >= target:
		return "**The CPU alone is over the target**: meeting it takes less CPU per tick, on one side or both."
	case answered >= target:
		return fmt.Sprintf("The CPU would fit in the target on 2 cores; the answers took %.1f× as long as that floor.", answered/floor)
	}
	return "The target is met."
}

// bigOutcome says how the ticks of a large burst of beat fared.
func bigOutcome(r *Report, k string, tasks int) string {
	med := func(m string) float64 { return r.stat(k, m).Median }
	failed, notRun, dups := med("failed_attempts"), med("ticks_not_run"), med("duplicate_runs")
	if failed == 0 && notRun == 0 && dups == 0 {
		return "every tick ran, once"
	}
	var parts []string
	if failed > 0 {
		part := fmt.Sprintf("%s attempts failed or were given up", count(failed))
		for _, res := range r.Series[k] {
			for _, note := range res.Notes {
				if i := strings.Index(note, "(the last: "); i >= 0 {
					part += " " + note[i:]
				}
			}
			break
		}
		parts = append(parts, part)
	}
	parts = append(parts, fmt.Sprintf("%s of the %s ticks ran nowhere", count(notRun), count(float64(tasks))))
	if dups > 0 {
		parts = append(parts, fmt.Sprintf("%s ran twice", count(dups)))
	}
	return strings.Join(parts, ", ")
}

// pairVerdict compares beat's Claim+ReleaseLease pairs with
// bsm/redislock's at one caller (r1) and at 50 (r50), as ratios.
func pairVerdict(r1, r50 float64) string {
	switch {
	case !(r1 > 0) || !(r50 > 0):
		return "beat's against bsm/redislock's."
	case r1 < 1 && r50 < 1:
		return "beat's claim pairs are slower than bsm/redislock's at both concurrencies."
	case r1 >= 1 && r50 >= 1:
		return "beat's claim pairs are at least as fast as bsm/redislock's at both concurrencies."
	}
	return "beat's claim pairs are faster than bsm/redislock's at one concurrency and slower at the other."
}

// coldVerdict says what the misses cost the whole burst, given the EVALs
// and EVALSHAs sent per tick.
func coldVerdict(cold, loaded, evals, evalshas float64) string {
	if loaded <= 0 {
		return ""
	}
	var missed string
	if evalshas > 0 && evals >= evalshas/2 {
		missed = "; most script calls missed"
	}
	d := cold/loaded - 1
	if d < 0.1 {
		return fmt.Sprintf(" (%+.0f %%)%s: the misses hardly cost the burst", 100*d, missed)
	}
	return fmt.Sprintf(" (%.0f %% more)%s. Loading the scripts once (SCRIPT LOAD at start and after a NOSCRIPT) would avoid it", 100*d, missed)
}

// evalCalls is the calls per tick of one command (eval, evalsha) in each
// burst.
func evalCalls(rs []Result, cmd string) []float64 {
	var v []float64
	for _, res := range rs {
		v = append(v, res.Commands[cmd].Calls)
	}
	return v
}

// nestedCalls counts the commands scripts called, per pair.
func nestedCalls(cmds map[string]CmdStat) float64 {
	var n float64
	for name, c := range cmds {
		if name != "evalsha" {
			n += c.Calls
		}
	}
	return n
}

// commandList names the commands of a claim pair, with their calls.
func commandList(cmds map[string]CmdStat) string {
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(cmds)) {
		if name == "evalsha" {
			continue
		}
		c := cmds[name]
		parts = append(parts, fmt.Sprintf("%s %s", strings.ToUpper(name), num(c.Calls)))
	}
	return strings.Join(parts, ", ")
}

// flatOf reads fn's flat figure from `go tool pprof -top`: a count, or a
// size in bytes when the profile shows sizes.
func flatOf(top, fn string) float64 {
	for l := range strings.Lines(top) {
		f := strings.Fields(l)
		if len(f) < 6 || strings.Join(f[5:], " ") != fn {
			continue
		}
		v := f[0]
		mult := 1.0
		for _, u := range []struct {
			suffix string
			m      float64
		}{{"kB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"B", 1}} {
			if strings.HasSuffix(v, u.suffix) {
				v, mult = strings.TrimSuffix(v, u.suffix), u.m
				break
			}
		}
		x, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0
		}
		return x * mult
	}
	return 0
}

// cumShare reads fn's cumulative share (%) from `go tool pprof -top -cum`.
func cumShare(top, fn string) float64 {
	for l := range strings.Lines(top) {
		f := strings.Fields(l)
		if len(f) >= 6 && f[5] == fn {
			v, _ := strconv.ParseFloat(strings.TrimSuffix(f[4], "%"), 64)
			return v
		}
	}
	return 0
}
