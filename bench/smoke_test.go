package main

import (
	"context"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestMain lets the test binary be a measurement's child process too.
func TestMain(m *testing.M) {
	if kind := os.Getenv(childEnv); kind != "" {
		os.Exit(runChild(kind, os.Getenv(paramsEnv)))
	}
	os.Exit(m.Run())
}

// startRedis starts a redis-server of the test's own on a free port. It
// skips when redis-server is not installed, unless CI or
// BEAT_TEST_REDIS_REQUIRED=1 asks for it.
func startRedis(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") != "" || os.Getenv("BEAT_TEST_REDIS_REQUIRED") == "1" {
			t.Fatal("redis-server is not installed")
		}
		t.Skip("redis-server is not installed; the benchmark needs one of its own")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := t.TempDir()
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--logfile", dir+"/redis.log")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	for deadline := time.Now().Add(5 * time.Second); c.Ping(context.Background()).Err() != nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(dir + "/redis.log")
			t.Fatalf("redis-server did not come up on %s:\n%s", addr, log)
		}
	}
	return addr
}

// TestSmoke runs every measurement once with tiny counts and checks that
// each gave sane numbers, never how fast they are.
func TestSmoke(t *testing.T) {
	addr := startRedis(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	rep, err := Run(context.Background(), smokePlan(), Env{Redis: addr, Dir: t.TempDir(), Self: self, Log: &log})
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	p := rep.Plan
	sane := func(k, metric string, ok func(float64) bool) {
		t.Helper()
		v := rep.values(k, metric)
		if len(v) == 0 {
			t.Errorf("%s: no %s", k, metric)
			return
		}
		for _, x := range v {
			if math.IsNaN(x) || math.IsInf(x, 0) || !ok(x) {
				t.Errorf("%s: %s = %v", k, metric, x)
			}
		}
	}
	positive := func(x float64) bool { return x > 0 }
	nonNegative := func(x float64) bool { return x >= 0 }
	_, benchErr := exec.LookPath("redis-benchmark")
	for _, conc := range p.PairConc {
		for _, impl := range pairImpls {
			if impl == pairBench && benchErr != nil {
				continue
			}
			sane(key("pair", impl, conc), "pairs_per_s", positive)
			if impl != pairBench {
				sane(key("pair", impl, conc), "trips_per_pair", func(x float64) bool { return x >= 2 && x < 3 })
			}
		}
	}
	for _, replicas := range []int{1, 3} {
		for _, impl := range burstImpls {
			k := key("burst", impl, p.BurstTasks, replicas)
			for _, m := range []string{"answered_ms", "ended_ms", "trips_per_tick", "server_us_tick", "client_us_tick", "allocs_per_tick", "goroutines_peak", "runs"} {
				sane(k, m, positive)
			}
			sane(k, "duplicate_runs", nonNegative)
		}
		// beat runs each tick exactly once, on however many replicas.
		k := key("burst", burstBeat, p.BurstTasks, replicas)
		sane(k, "runs", func(x float64) bool { return x == float64(p.BurstTasks) })
		sane(k, "duplicate_runs", func(x float64) bool { return x == 0 })
	}
	for _, impl := range []string{scaleBeat, scaleRobfig} {
		k := key("idle", impl, p.ScaleTasks)
		sane(k, "heap_per_task", positive)
		sane(k, "heap_per_task_scheduler", positive)
		sane(k, "idle_cpu_pct", nonNegative)
		sane(k, "idle_cpu_pct_after_start", nonNegative)
	}
	sane(key("idle", scaleBeat, p.ScaleTasks), "load_ms", positive)
	for _, impl := range []string{scaleBeat, scaleBeatMem, scaleRobfig} {
		k := key("delay", impl, p.ScaleTasks)
		sane(k, "ticks", positive)
		sane(k, "p50_ms", nonNegative)
		for _, res := range rep.Series[k] {
			if m := res.Metrics; !(m["p50_ms"] <= m["p99_ms"] && m["p99_ms"] <= m["max_ms"]) {
				t.Errorf("%s: percentiles out of order: %v", k, m)
			}
		}
	}
	// No tick runs twice, and every tick either ran or is counted as not
	// run; how the replicas share the runs is for the full run to show,
	// not a few seconds.
	sk := key("spread", burstBeat, p.SpreadTasks, spreadReplicas)
	sane(sk, "ticks", positive)
	sane(sk, "duplicate_runs", func(x float64) bool { return x == 0 })
	for _, res := range rep.Series[sk] {
		m := res.Metrics
		if m["runs"]+m["ticks_not_run"] != m["ticks"] || m["runs"] <= 0 {
			t.Errorf("spread: %v runs and %v ticks not run of %v ticks", m["runs"], m["ticks_not_run"], m["ticks"])
		}
		if len(res.Runs) > 0 || len(res.Skips) > 0 {
			t.Errorf("spread: the children's runs were kept in the report")
		}
	}
	if rep.Scripts.Metrics["script_bytes_claim"] <= 0 || rep.Scripts.Metrics["allocs:"+pairClaim] <= 0 || len(rep.Scripts.Commands) == 0 {
		t.Errorf("scripts: %+v", rep.Scripts)
	}
	for _, k := range []string{key("cold", "scripts loaded", p.BurstTasks), key("cold", "scripts not loaded", p.BurstTasks)} {
		sane(k, "answered_ms", positive)
	}
	if v := evalCalls(rep.Series[key("cold", "scripts not loaded", p.BurstTasks)], "eval"); len(v) == 0 || v[0] <= 0 {
		t.Errorf("the burst without scripts loaded sent no EVAL: %v", v)
	}
	for _, f := range rep.Profile.Files {
		if st, err := os.Stat(f); err != nil || st.Size() == 0 {
			t.Errorf("profile %s: %v", f, err)
		}
	}
	md := rep.Markdown()
	for _, h := range []string{"## Machine", "## Targets", "## 1. Lock pairs", "## 2. Bursts", "## 3. ", "## 4. Spreading", "## What costs", "## Rounds"} {
		if !strings.Contains(md, h) {
			t.Errorf("the report has no %q", h)
		}
	}
	if testing.Verbose() {
		t.Log(log.String())
	}
}
