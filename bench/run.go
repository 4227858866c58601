package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Report is what a run measured, with the machine it ran on.
type Report struct {
	Plan              Plan
	Started, Finished time.Time
	Machine           []kv
	// Series holds every measurement, by key (see key), in round order.
	Series map[string][]Result
	// BenchLines are the redis-benchmark command lines run, by clients.
	BenchLines map[int]string
	Scripts    Result
	Profile    Profile
	Notes      []string
}

type kv struct{ K, V string }

// Profile is the pprof of extra bursts of beat on one replica.
type Profile struct {
	CPUTop, AllocTop string // go tool pprof -top, trimmed
	CPUCum           string // the same, by cumulative time
	CPUCumAll        string // every function, by cumulative time
	Burst            Result // the CPU-profiled burst's own figures (not in the rounds)
	// Of a schedule held idle (beat): config.Parse's CPU by cumulative
	// time, the CPU right after the start and once settled, the live heap.
	LoadTop, IdleStartTop, IdleTop, HeapTop string
	IdleOne                                 Result // beat holding one task, idle
	Files                                   []string
}

// key names a series: a section, an implementation and its parameters.
func key(section, impl string, params ...int) string {
	parts := []string{section, impl}
	for _, p := range params {
		parts = append(parts, strconv.Itoa(p))
	}
	return strings.Join(parts, "|")
}

// Run measures everything the plan asks for.
func Run(ctx context.Context, plan Plan, env Env) (*Report, error) {
	r := &Report{Plan: plan, Started: time.Now(), Series: map[string][]Result{}, BenchLines: map[int]string{}}
	r.Machine = machine(env.Redis)
	logf := func(format string, args ...any) {
		fmt.Fprintf(env.Log, "beatbench %s: %s\n", time.Since(r.Started).Round(time.Second), fmt.Sprintf(format, args...))
	}
	add := func(k string, res Result) { r.Series[k] = append(r.Series[k], res) }

	// 1. Lock pairs, interleaved: every implementation once per round.
	_, benchErr := exec.LookPath("redis-benchmark")
	if benchErr != nil {
		r.Notes = append(r.Notes, "redis-benchmark is not installed: its reference row is missing.")
	}
	for round := 1; round <= plan.PairRounds; round++ {
		logf("lock pairs, round %d of %d", round, plan.PairRounds)
		for _, conc := range plan.PairConc {
			for _, impl := range pairImpls {
				if impl == pairBench {
					if benchErr != nil {
						continue
					}
					rps, line, err := redisBenchmark(ctx, env.Redis, conc, plan.BenchN[conc])
					r.BenchLines[conc] = line
					if err != nil {
						return nil, err
					}
					// A pair is two round trips; the script is one.
					add(key("pair", impl, conc), Result{Metrics: map[string]float64{"rps": rps, "pairs_per_s": rps / 2}})
					continue
				}
				res, err := env.child(ctx, "pair", Params{Impl: impl, Conc: conc, Duration: plan.PairDuration, Lead: plan.PairWarm}, time.Minute)
				if err != nil {
					return nil, err
				}
				add(key("pair", impl, conc), res)
			}
		}
	}

	// 2. Bursts, interleaved.
	burst := func(tasks, rounds int) error {
		for round := 1; round <= rounds; round++ {
			logf("burst of %d tasks, round %d of %d", tasks, round, rounds)
			for _, replicas := range []int{1, 3} {
				for _, impl := range burstImpls {
					res, err := env.child(ctx, "burst", Params{Impl: impl, Tasks: tasks, Replicas: replicas, Lead: plan.BurstLead}, 10*time.Minute)
					if err != nil {
						return err
					}
					add(key("burst", impl, tasks, replicas), res)
				}
			}
		}
		return nil
	}
	if err := burst(plan.BurstTasks, plan.BurstRounds); err != nil {
		return nil, err
	}
	if plan.Burst100k {
		if err := burst(plan.BigTasks, plan.BigRounds); err != nil {
			return nil, err
		}
	} else if !plan.Smoke {
		r.Notes = append(r.Notes, "The bursts of 100,000 tasks were not run (-burst-100k=false).")
	}

	// 3. Many schedules.
	idleFile := filepath.Join(env.Dir, "idle.yaml")
	delayFile := filepath.Join(env.Dir, "delay.yaml")
	now := time.Now()
	if err := writeSchedule(idleFile, plan.ScaleTasks, 0, now); err != nil {
		return nil, err
	}
	if err := writeSchedule(delayFile, plan.ScaleTasks, plan.ScaleActive, now); err != nil {
		return nil, err
	}
	for round := 1; round <= plan.ScaleRounds; round++ {
		logf("%d schedules, round %d of %d", plan.ScaleTasks, round, plan.ScaleRounds)
		for _, impl := range []string{scaleBeat, scaleRobfig} {
			res, err := env.child(ctx, "idle", Params{Impl: impl, Tasks: plan.ScaleTasks, File: idleFile, Duration: plan.IdleFor, Settle: plan.Settle}, 5*time.Minute)
			if err != nil {
				return nil, err
			}
			add(key("idle", impl, plan.ScaleTasks), res)
		}
		for _, impl := range []string{scaleBeat, scaleBeatMem, scaleRobfig} {
			res, err := env.child(ctx, "delay", Params{Impl: impl, Tasks: plan.ScaleTasks, Active: plan.ScaleActive, File: delayFile,
				Warm: plan.DelayWarm, Duration: plan.DelayMeasure}, 5*time.Minute)
			if err != nil {
				return nil, err
			}
			add(key("delay", impl, plan.ScaleTasks), res)
		}
	}

	// 4. Runs spread over replicas.
	for round := 1; round <= plan.SpreadRounds; round++ {
		logf("%d replicas sharing CPU-heavy tasks, round %d of %d (%v)", spreadReplicas, round, plan.SpreadRounds, plan.SpreadFor)
		res, err := env.spread(ctx, plan)
		if err != nil {
			return nil, err
		}
		add(key("spread", burstBeat, plan.SpreadTasks, spreadReplicas), res)
	}

	// 5. What one operation costs, and a profile of a burst.
	logf("scripts and allocations per operation")
	res, err := env.child(ctx, "scripts", Params{}, 2*time.Minute)
	if err != nil {
		return nil, err
	}
	r.Scripts = res
	if plan.Profile {
		logf("profiling a burst of %d tasks on beat", plan.BurstTasks)
		if err := r.profile(ctx, env); err != nil {
			return nil, err
		}
	}
	r.Finished = time.Now()
	return r, nil
}

// profile runs one more burst of beat on one replica with CPU and
// allocation profiles, and keeps pprof's top functions.
func (r *Report) profile(ctx context.Context, env Env) error {
	cpu := filepath.Join(env.Dir, "burst.cpu.pprof")
	mem := filepath.Join(env.Dir, "burst.allocs.pprof")
	p := Params{Impl: burstBeat, Tasks: r.Plan.BurstTasks, Replicas: 1, Lead: r.Plan.BurstLead}
	// CPU and allocations in two bursts: recording every allocation slows
	// the program, and would show in the CPU profile.
	withCPU, withMem, cold := p, p, p
	withCPU.CPUProf, withMem.MemProf, cold.Cold = cpu, mem, true
	res, err := env.child(ctx, "burst", withCPU, 5*time.Minute)
	if err != nil {
		return err
	}
	r.Profile.Burst = res
	if _, err := env.child(ctx, "burst", withMem, 5*time.Minute); err != nil {
		return err
	}
	// Scripts loaded or not, interleaved.
	for range r.Plan.ColdRounds {
		for _, c := range []Params{p, cold} {
			res, err := env.child(ctx, "burst", c, 5*time.Minute)
			if err != nil {
				return err
			}
			k := key("cold", "scripts loaded", c.Tasks)
			if c.Cold {
				k = key("cold", "scripts not loaded", c.Tasks)
			}
			r.Series[k] = append(r.Series[k], res)
		}
	}
	// A schedule held idle.
	idleBase := filepath.Join(env.Dir, "idle.cpu.pprof")
	heap := filepath.Join(env.Dir, "idle.heap.pprof")
	if _, err := env.child(ctx, "idle", Params{Impl: scaleBeat, Tasks: r.Plan.ScaleTasks, File: filepath.Join(env.Dir, "idle.yaml"),
		Duration: r.Plan.IdleFor, Settle: r.Plan.Settle, CPUProf: idleBase, MemProf: heap}, 5*time.Minute); err != nil {
		return err
	}
	// The same with one task: the floor of an idle beat.
	oneFile := filepath.Join(env.Dir, "one.yaml")
	if err := writeSchedule(oneFile, 1, 0, time.Now()); err != nil {
		return err
	}
	if r.Profile.IdleOne, err = env.child(ctx, "idle", Params{Impl: scaleBeat, Tasks: 1, File: oneFile,
		Duration: r.Plan.IdleFor, Settle: r.Plan.Settle}, 5*time.Minute); err != nil {
		return err
	}
	r.Profile.Files = []string{cpu, mem, idleBase + ".load", idleBase + ".idle-start", idleBase + ".idle", heap}
	top := func(nodes int, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "go", append([]string{"tool", "pprof", "-top", "-nodecount=" + strconv.Itoa(nodes)}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("go tool pprof %v: %v: %s", args, err, out)
		}
		return trimTop(string(out)), nil
	}
	// The listings, two at a time.
	jobs := []struct {
		to    *string
		nodes int
		args  []string
	}{
		{&r.Profile.CPUTop, topN, []string{env.Self, cpu}},
		{&r.Profile.CPUCumAll, 1000, []string{"-cum", env.Self, cpu}},
		{&r.Profile.AllocTop, topN, []string{"-sample_index=alloc_objects", "-base", mem + ".base", env.Self, mem}},
		{&r.Profile.LoadTop, 30, []string{"-cum", env.Self, idleBase + ".load"}},
		{&r.Profile.IdleStartTop, 12, []string{env.Self, idleBase + ".idle-start"}},
		{&r.Profile.IdleTop, 12, []string{env.Self, idleBase + ".idle"}},
		{&r.Profile.HeapTop, 15, []string{"-sample_index=inuse_space", env.Self, heap}},
	}
	errs := make([]error, len(jobs))
	sem := make(chan struct{}, 2)
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			*j.to, errs[i] = top(j.nodes, j.args...)
		})
	}
	wg.Wait()
	r.Profile.CPUCum = firstLines(r.Profile.CPUCumAll, topN)
	return errors.Join(errs...)
}

// topN is how many functions of a profile the report shows.
const topN = 25

// firstLines keeps the header of a pprof table and its first n rows.
func firstLines(top string, n int) string {
	lines := strings.Split(top, "\n")
	for i, l := range lines {
		if strings.Contains(l, "flat%") {
			return strings.Join(lines[:min(len(lines), i+1+n)], "\n")
		}
	}
	return top
}

// trimTop keeps pprof's table, without the lines that name the files.
func trimTop(s string) string {
	var keep []string
	for l := range strings.Lines(s) {
		if strings.HasPrefix(l, "File:") || strings.HasPrefix(l, "Build ID:") || strings.HasPrefix(l, "Type:") ||
			strings.HasPrefix(l, "Time:") || strings.HasPrefix(l, "Main binary") {
			continue
		}
		keep = append(keep, strings.TrimRight(l, "\n"))
	}
	return strings.Join(keep, "\n")
}

// machine describes where the run happens.
func machine(addr string) []kv {
	out := func(name string, args ...string) string {
		b, err := exec.Command(name, args...).Output()
		if err != nil {
			return "(" + name + ": " + err.Error() + ")"
		}
		return strings.TrimSpace(string(b))
	}
	model := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for l := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	load := "?"
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		load = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	return []kv{
		{"nproc", out("nproc")},
		{"CPU", model},
		{"memory", memTotal()},
		{"kernel", out("uname", "-sr")},
		{"Go", runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH},
		{"redis-server", out("redis-server", "--version")},
		{"redis-benchmark", out("redis-benchmark", "--version")},
		{"Redis under test", addr + ", its own: `--save \"\" --appendonly no`, started by bench/run.sh"},
		{"load average at start", load},
	}
}

func memTotal() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "?"
	}
	for l := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
			f := strings.Fields(v)
			if kb, err := strconv.ParseFloat(f[0], 64); err == nil {
				return fmt.Sprintf("%.1f GiB", kb/(1<<20))
			}
		}
	}
	return "?"
}

// values returns one metric of a series, round by round.
func (r *Report) values(k, metric string) []float64 {
	var v []float64
	for _, res := range r.Series[k] {
		if x, ok := res.Metrics[metric]; ok {
			v = append(v, x)
		}
	}
	return v
}

// stat is a series' median and spread.
type stat struct {
	Median, Min, Max float64
	N                int
}

func summarize(v []float64) stat {
	if len(v) == 0 {
		return stat{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stat{Median: med, Min: s[0], Max: s[len(s)-1], N: len(s)}
}

func (r *Report) stat(k, metric string) stat { return summarize(r.values(k, metric)) }
