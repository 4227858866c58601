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

	// 1. The CPU floor.
	client, server := med(one, "client_us_tick"), med(one, "server_us_tick")
	floor := float64(n) * (client + server) / 2 / 1000
	rb := r.stat(key("pair", pairBench, 50), "rps").Median
	w("1. **Both sides are CPU-bound, one script per claim.** A tick of the burst costs %s µs of beat's CPU and %s µs of Redis's (one replica). On 2 cores that alone is %s ms for %s tasks, %.1f× the %.0f ms target, before any waiting. The server cannot do it alone either: redis-benchmark's one-key EVAL ran at %s/s here (50 clients), so %s claims of one script each need at least %s ms of Redis even with a free client. **Under 100 ms takes fewer than one round trip and one script run per tick** (many due ticks claimed by one script call, or pipelined), and cheaper claims on both sides.\n",
		num(client), num(server), num(floor), num(float64(n)), floor/targetBurst1, targetBurst1, num(rb), num(float64(n)), num(1000*float64(n)/rb))

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
	w("2. **The claim script is heavy on the server.** In the bursts on one replica, beat's scripts ran %s µs per task inside EVALSHA, bsm/redislock's %s µs (Redis's whole CPU per task: %s against %s). One at a time, without contention, a claim plus its ReleaseLease runs %s µs; its commands: %s. The largest single items: `INFO server` on **every** claim (%s µs: the script reads the server's run_id to notice a restart, and INFO builds the whole server section as text for `string.match`); the owner index (ZREMRANGEBYSCORE, ZADD, PTTL on claim, ZREM on release: %s µs); and Lua itself: %s µs of the %s are in no nested command, but in the interpreter and in redis.call's conversions of arguments and replies, about %s calls a pair. A replica that finds the tick taken pays the same epoch check, INFO included, before it reads the record: on three replicas Redis spent %s µs per task, against %s on one.\n",
		num(burstEvalsha(r, burstBeat)), num(burstEvalsha(r, burstRobfig)), num(server), num(med(key("burst", burstRobfig, n, 1), "server_us_tick")),
		num(pair), commandList(cmds),
		num(info.Usec), num(index), num(pair-nested), num(pair), num(nestedCalls(cmds)),
		num(med(three, "server_us_tick")), num(server))

	// 3. Allocations.
	alloc := func(fns ...string) string {
		var sum float64
		for _, fn := range fns {
			sum += flatOf(r.Profile.AllocTop, fn)
		}
		return num(sum / float64(n))
	}
	w("3. **Allocations: %s per claim pair, %s per tick in the burst** (bsm/redislock: %s per pair, %s per task in its burst). Per tick, from the allocation profile: go-redis's `eval` %s (it copies keys and args into one `[]interface{}`, and the Cmd); `redislock.(*Backend).claim` %s (seven key strings per claim, three of them the same for every claim: epoch, epoch:server, epoch:guard; nine ARGV values boxed; the 7-field reply parsed) and `ReleaseLease` %s; the scheduler's `emit` and slog %s, building the attributes of log lines the discarding handler then drops; `context.WithTimeout` and timers %s (a deadline for each claim and each release, the renewer's timer); go-redis's connection check on every pool Get (`checkSyscallConn`, `net.newRawConn`) %s and its `FastSemaphore.Acquire` %s, where thousands of goroutines wait for one of the pool's 20 connections. Allocation takes %.0f %% of the client's CPU in the burst (runtime.mallocgc, cumulative).\n",
		num(s["allocs:"+pairClaim]), num(med(one, "allocs_per_tick")), num(s["allocs:"+pairBSM]), num(med(key("burst", burstRobfig, n, 1), "allocs_per_tick")),
		alloc("github.com/redis/go-redis/v9.cmdable.eval", "github.com/redis/go-redis/v9.NewCmd (inline)"),
		alloc("github.com/beatlock/beat/lock/redislock.(*Backend).claim", "github.com/beatlock/beat/lock/redislock.(*Backend).fenceKey (inline)",
			"github.com/beatlock/beat/lock/redislock.(*Backend).lockKey (inline)", "github.com/beatlock/beat/lock/redislock.(*Backend).ownerKey (inline)",
			"github.com/beatlock/beat/lock/redislock.(*Backend).stateKey (inline)", "github.com/beatlock/beat/lock/redislock.(*Backend).epochKey (inline)",
			"github.com/beatlock/beat/lock/redislock.(*Backend).epochServerKey (inline)", "github.com/beatlock/beat/lock/redislock.(*Backend).epochGuardKey (inline)"),
		alloc("github.com/beatlock/beat/lock/redislock.(*Backend).ReleaseLease"),
		alloc("github.com/beatlock/beat/scheduler.(*Scheduler).emit", "log/slog.argsToAttrSlice"),
		alloc("context.WithDeadlineCause", "time.newTimer", "time.NewTimer"),
		alloc("github.com/redis/go-redis/v9/internal/pool.checkSyscallConn", "net.newRawConn (inline)"),
		alloc("github.com/redis/go-redis/v9/internal.(*FastSemaphore).Acquire"),
		cpuShare("runtime.mallocgc"))

	// 4. Goroutines.
	w("4. **A goroutine per due tick, and nothing bounds the claims in flight.** The loop starts one goroutine per tick (`handle`), and a claimed run adds its renewer: %s goroutines at the peak of the %s-task burst. Each one's stack grows when the claim gets deep into go-redis (`runtime.newstack`/`copystack`: %.0f %% of the client's CPU, most of it refilling the stack pool). All of them queue on the 20 connections of the pool.",
		num(med(one, "goroutines_peak")), num(float64(n)), cpuShare("runtime.newstack"))
	if p.Burst100k {
		big := key("burst", burstBeat, p.BigTasks, 3)
		if len(r.Series[big]) > 0 {
			rob := key("burst", burstRobfig, p.BigTasks, 3)
			w(" With %s tasks on three replicas, claims waited in that queue past their 5 s timeout, failed and were retried: %s attempts failed, **%s of the %s ticks ran nowhere**, at a peak of %s goroutines and %s MB resident (one replica: %s ticks ran nowhere, %s MB). The peers do no better at that size: gocron's redsync gives a lock attempt 400 ms (8 s expiry × 0.05), so %s of %s ticks ran nowhere on one replica and %s on three; robfig/cron with bsm/redislock locks on the job's name only, and on three replicas, whose attempts spread over %s s, %s ticks ran twice (%s nowhere).",
				num(float64(p.BigTasks*3)), num(med(big, "failed_attempts")), num(med(big, "ticks_not_run")), num(float64(p.BigTasks)),
				num(med(big, "goroutines_peak")), num(med(big, "rss_mb")), num(med(key("burst", burstBeat, p.BigTasks, 1), "ticks_not_run")),
				num(med(key("burst", burstBeat, p.BigTasks, 1), "rss_mb")),
				num(med(key("burst", burstGocron, p.BigTasks, 1), "ticks_not_run")), num(float64(p.BigTasks)), num(med(key("burst", burstGocron, p.BigTasks, 3), "ticks_not_run")),
				num(med(rob, "answered_ms")/1000), num(med(rob, "duplicate_runs")), num(med(rob, "ticks_not_run")))
		}
	}
	w(" A bounded set of claimers (or claims batched per round trip) would keep the queue, the stacks and the timers in proportion to the connections, not to the tasks.\n")

	// 5. Script size and the EVALSHA path.
	loaded, notLoaded := key("cold", "scripts loaded", n), key("cold", "scripts not loaded", n)
	evals := summarize(evalCalls(r.Series[notLoaded])).Median
	w("5. **Script size and the EVALSHA path.** The claim script is %s bytes (ReleaseLease %s, RenewLease %s, TryAcquire %s, Release %s; bsm/redislock's obtain %s, redsync's unlock %s). go-redis's `Script.Run` sends EVALSHA and, on NOSCRIPT, the whole body with EVAL. Once the server has it that costs nothing, but after a Redis restart or failover the first burst's claims miss together: in %d interleaved pairs of bursts of %s tasks, with and without the scripts loaded beforehand, the second sent %s EVALs per tick (%s kB of script text per tick) and its first answer came after %s ms instead of %s; all answers after %s ms instead of %s%s. Loading the scripts once (SCRIPT LOAD at start and after a NOSCRIPT, one call for all claims waiting) would avoid it.\n",
		num(s["script_bytes_claim"]), num(s["script_bytes_release_lease"]), num(s["script_bytes_renew_lease"]), num(s["script_bytes_try_acquire"]), num(s["script_bytes_release"]),
		num(s["script_bytes_bsm_obtain"]), num(s["script_bytes_redsync_unlock"]),
		len(r.Series[notLoaded]), num(float64(n)), num(evals), num(evals*s["script_bytes_claim"]/1000),
		num(med(notLoaded, "first_ms")), num(med(loaded, "first_ms")), num(med(notLoaded, "answered_ms")), num(med(loaded, "answered_ms")),
		coldVerdict(med(notLoaded, "answered_ms"), med(loaded, "answered_ms"), evals))

	// 6. Lock pairs.
	pairs := func(impl string, conc int) float64 { return r.stat(key("pair", impl, conc), "pairs_per_s").Median }
	w("6. **Lock pairs: the server's work per pair shows at both concurrencies.** Every pair is two round trips. At one caller a pair's time is the two round trips' latency, the scripts' run included: Claim+ReleaseLease (%s µs in Redis per pair, one at a time) made %s pairs/s, %s of bsm/redislock's; TryAcquire+Release %s. At 50 callers Redis's CPU decides: Claim+ReleaseLease %s, TryAcquire+Release (its script also keeps the owner index) %s of bsm/redislock's.\n",
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

// burstEvalsha is the time per task that the server spent in EVALSHA in
// impl's bursts on one replica (median over the rounds).
func burstEvalsha(r *Report, impl string) float64 {
	k := key("burst", impl, r.Plan.BurstTasks, 1)
	var v []float64
	for _, res := range r.Series[k] {
		if c, ok := res.Commands["evalsha"]; ok {
			v = append(v, c.Usec)
		}
	}
	return summarize(v).Median
}

// coldVerdict says what the misses cost the whole burst, given the EVALs
// sent per tick.
func coldVerdict(cold, loaded, evals float64) string {
	if loaded <= 0 {
		return ""
	}
	var why string
	if evals >= 0.5 {
		// Script.Run's EVALSHA and its EVAL take a connection each: the
		// EVAL waits behind every EVALSHA already queued for the pool.
		why = ". Nearly every claim missed: a claim's EVALSHA and its EVAL each wait for a pool connection, so the first EVAL can reach the server only after the EVALSHAs of all the claims queued before it have failed"
	}
	d := cold/loaded - 1
	if d < 0.1 {
		return fmt.Sprintf(" (%+.0f %%)%s; the whole burst hardly suffered, since a NOSCRIPT answer is cheap and the EVAL replaces the script run, but %.1f× as many round trips went to claims", 100*d, why, 1+evals)
	}
	return fmt.Sprintf(" (%.0f %% more)%s", 100*d, why)
}

// evalCalls is the EVALs per tick of each burst.
func evalCalls(rs []Result) []float64 {
	var v []float64
	for _, res := range rs {
		v = append(v, res.Commands["eval"].Calls)
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
