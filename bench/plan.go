package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Plan says what to measure and how often.
type Plan struct {
	Smoke   bool
	Command string

	PairRounds   int
	PairDuration time.Duration // each lock-pair measurement
	PairWarm     time.Duration // before it, untimed
	PairConc     []int
	BenchN       map[int]int // redis-benchmark requests, by clients

	BurstLead   time.Duration // the least time from a burst's set-up to its instant
	BurstRounds int
	BurstTasks  int
	Burst100k   bool
	BigRounds   int
	BigTasks    int

	ScaleRounds  int
	ScaleTasks   int           // schedules held
	ScaleActive  int           // of them, ticking about once a second each
	Settle       time.Duration // after a runner starts, before it is measured
	IdleFor      time.Duration // idle CPU window
	DelayWarm    time.Duration // before start delays are counted
	DelayMeasure time.Duration // start delays counted over this window

	SpreadRounds int
	SpreadTasks  int           // each replica's tasks, all "@every 1s"
	SpreadWork   time.Duration // the CPU a run burns
	SpreadSkew   time.Duration // replica A's clock this far ahead, C's behind
	SpreadWarm   time.Duration // from the children's start to the counted window
	SpreadFor    time.Duration // the window whose ticks are counted

	Profile    bool
	ColdRounds int // bursts with and without beat's scripts loaded
}

func fullPlan() Plan {
	return Plan{
		PairRounds: 5, PairDuration: 2 * time.Second, PairWarm: 300 * time.Millisecond, PairConc: []int{1, 50},
		BenchN:    map[int]int{1: 40_000, 50: 200_000},
		BurstLead: time.Second, BurstRounds: 5, BurstTasks: 10_000,
		// One round: a round of the 100,000-task bursts takes about five
		// minutes here.
		Burst100k: true, BigRounds: 1, BigTasks: 100_000,
		ScaleRounds: 3, ScaleTasks: 100_000, ScaleActive: 1_718,
		Settle: 2 * time.Second, IdleFor: 10 * time.Second, DelayWarm: 3 * time.Second, DelayMeasure: 10 * time.Second,
		// One round: 30 s of ticks, 180 runs to share, takes about 35 s.
		SpreadRounds: 1, SpreadTasks: 6, SpreadWork: 200 * time.Millisecond, SpreadSkew: 100 * time.Millisecond,
		SpreadWarm: 3 * time.Second, SpreadFor: 30 * time.Second,
		Profile: true, ColdRounds: 3,
	}
}

// smokePlan runs every measurement once, with tiny counts: for CI, which
// checks that each ran and gave sane numbers, never how fast.
func smokePlan() Plan {
	return Plan{
		Smoke:      true,
		PairRounds: 1, PairDuration: 60 * time.Millisecond, PairWarm: 30 * time.Millisecond, PairConc: []int{1, 50},
		BenchN:    map[int]int{1: 500, 50: 2_000},
		BurstLead: 400 * time.Millisecond, BurstRounds: 1, BurstTasks: 100,
		ScaleRounds: 1, ScaleTasks: 1_000, ScaleActive: 20,
		Settle: 50 * time.Millisecond, IdleFor: 150 * time.Millisecond, DelayWarm: 200 * time.Millisecond, DelayMeasure: 600 * time.Millisecond,
		SpreadRounds: 1, SpreadTasks: 6, SpreadWork: 200 * time.Millisecond, SpreadSkew: 100 * time.Millisecond,
		SpreadWarm: 1500 * time.Millisecond, SpreadFor: 3 * time.Second,
		Profile: true, ColdRounds: 1,
	}
}

// Env is where the plan runs.
type Env struct {
	Redis string    // host:port of the redis-server the measurements may flush
	Dir   string    // for generated files and profiles
	Self  string    // this program, run again for each measurement
	Log   io.Writer // progress
}

// Params are a child's parameters; each kind reads the fields it needs.
type Params struct {
	Redis    string        `json:"redis"`
	Impl     string        `json:"impl"`
	Conc     int           `json:"conc,omitempty"`
	Duration time.Duration `json:"duration,omitempty"`
	Lead     time.Duration `json:"lead,omitempty"` // burst: the least set-up time; pair: the warm-up
	Settle   time.Duration `json:"settle,omitempty"`
	Tasks    int           `json:"tasks,omitempty"`
	Replicas int           `json:"replicas,omitempty"`
	Active   int           `json:"active,omitempty"`
	File     string        `json:"file,omitempty"`
	Warm     time.Duration `json:"warm,omitempty"`
	CPUProf  string        `json:"cpuprof,omitempty"`
	MemProf  string        `json:"memprof,omitempty"`
	Cold     bool          `json:"cold,omitempty"` // burst: scripts not loaded on the server
	// spread: the replica's index, its clock's offset, the first instant
	// of the counted window, and the CPU a run burns.
	Replica int           `json:"replica,omitempty"`
	Offset  time.Duration `json:"offset,omitempty"`
	Start   time.Time     `json:"start,omitzero"`
	Work    time.Duration `json:"work,omitempty"`
}

// Result is what a child measured: named figures, and for some kinds the
// server's per-command counts over the measurement.
type Result struct {
	Metrics map[string]float64 `json:"metrics"`
	// Commands: per command name, calls and microseconds spent in the
	// server during the measurement (INFO commandstats), per tick.
	Commands map[string]CmdStat `json:"commands,omitempty"`
	Notes    []string           `json:"notes,omitempty"`
	// Runs and Skips: the spread child's runs, and the ticks it reported
	// skipped, which the parent compares across replicas and does not keep.
	Runs  []RunID `json:"runs,omitempty"`
	Skips []RunID `json:"skips,omitempty"`
}

// measurements are the kinds of child, by name.
var measurements = map[string]func(context.Context, Params) (Result, error){
	"pair":    measurePair,
	"burst":   measureBurst,
	"idle":    measureIdle,
	"delay":   measureDelay,
	"scripts": measureScripts,
	"spread":  measureSpread,
}

// childEnv names the measurement a child runs, paramsEnv its Params as
// JSON. Environment variables rather than flags, so that a test binary can
// be a child too (see TestMain).
const (
	childEnv  = "BEATBENCH_CHILD"
	paramsEnv = "BEATBENCH_PARAMS"
)

// child runs one measurement in a process of its own.
func (e Env) child(ctx context.Context, kind string, p Params, timeout time.Duration) (Result, error) {
	p.Redis = e.Redis
	args, err := json.Marshal(p)
	if err != nil {
		return Result{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.Self)
	cmd.Env = append(os.Environ(), childEnv+"="+kind, paramsEnv+"="+string(args))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return Result{}, fmt.Errorf("%s %s: %v: %s", kind, p.Impl, err, strings.TrimSpace(errb.String()))
	}
	var r Result
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		return Result{}, fmt.Errorf("%s %s: reading its result: %v", kind, p.Impl, err)
	}
	return r, nil
}
