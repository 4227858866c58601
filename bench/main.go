// Command beatbench measures beat against its peers on one Redis and writes
// docs/PERFORMANCE.md. bench/run.sh starts a redis-server of its own and
// runs it; see that script for the one command.
//
// Every measurement runs in a child process of its own (this binary, re-run
// with BEATBENCH_CHILD set), so that one measurement's heap, goroutines and connections
// never weigh on the next, and the measurements of a section are interleaved
// round by round (A B C, A B C, ...) so that a change in the machine's load
// spreads over all of them rather than falling on one.
//
// The program is its own Go module (bench/go.mod), so that the peers it
// imports (bsm/redislock, redsync, gocron) never enter beat's dependencies.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

func main() {
	var (
		addr    = flag.String("redis", "", "host:port of a redis-server this program may flush (its own; never a shared one)")
		out     = flag.String("out", "", "the report to write (markdown)")
		smoke   = flag.Bool("smoke", false, "tiny counts and one round: checks that every measurement runs, in seconds")
		command = flag.String("command", "", "the command line to print in the report")
		work    = flag.String("work", "", "directory for generated schedules and profiles (default: a temporary one)")
		big     = flag.Bool("burst-100k", true, "also run the bursts of 100,000 tasks")
		from    = flag.String("from", "", "render -out from the figures a run kept (its work directory's report.json), measuring nothing")
	)
	if kind := os.Getenv(childEnv); kind != "" {
		os.Exit(runChild(kind, os.Getenv(paramsEnv)))
	}
	flag.Parse()
	if *from != "" && *out != "" {
		if err := render(*from, *out); err != nil {
			fmt.Fprintln(os.Stderr, "beatbench:", err)
			os.Exit(1)
		}
		return
	}
	if *addr == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: beatbench -redis HOST:PORT -out FILE [-smoke] (bench/run.sh runs it)")
		os.Exit(2)
	}
	plan := fullPlan()
	if *smoke {
		plan = smokePlan()
	}
	plan.Burst100k = plan.Burst100k && *big
	plan.Command = *command
	dir := *work
	if dir == "" {
		d, err := os.MkdirTemp("", "beatbench-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer os.RemoveAll(d)
		dir = d
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	rep, err := Run(context.Background(), plan, Env{Redis: *addr, Dir: dir, Self: self, Log: os.Stderr})
	if err != nil {
		fmt.Fprintln(os.Stderr, "beatbench:", err)
		os.Exit(1)
	}
	if data, err := json.MarshalIndent(rep, "", " "); err == nil {
		// The figures, to render the report again after a change to its
		// text (-from), without measuring again.
		_ = os.WriteFile(filepath.Join(dir, "report.json"), data, 0o644)
	}
	if err := os.WriteFile(*out, []byte(rep.Markdown()), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "beatbench: wrote %s in %v\n", *out, time.Since(rep.Started).Round(time.Second))
}

// render writes the report of the figures kept in file.
func render(file, out string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var rep Report
	if err := json.Unmarshal(data, &rep); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	return os.WriteFile(out, []byte(rep.Markdown()), 0o644)
}

// runChild runs one measurement and prints its Result on stdout.
func runChild(kind, params string) int {
	var p Params
	if err := json.Unmarshal([]byte(params), &p); err != nil {
		fmt.Fprintln(os.Stderr, "beatbench child:", err)
		return 2
	}
	m, ok := measurements[kind]
	if !ok {
		fmt.Fprintf(os.Stderr, "beatbench child: unknown kind %q\n", kind)
		return 2
	}
	res, err := m(context.Background(), p)
	if err != nil {
		fmt.Fprintf(os.Stderr, "beatbench child %s: %v\n", kind, err)
		return 1
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
