package e2e

// Replicas that stay up: steady state, skewed clocks, long runs under Forbid.

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

// quickTasks is the steady schedule: ten tasks every second (two of them
// Allow) and two six-field cron tasks.
func quickTasks() []taskSpec {
	var ts []taskSpec
	for i := 1; i <= 10; i++ {
		policy := "Forbid"
		if i > 8 {
			policy = "Allow"
		}
		ts = append(ts, every(fmt.Sprintf("every1s-%02d", i), time.Second, 0, policy))
	}
	return append(ts, cronEvery("cron2s", 2, 0, "Forbid"), cronEvery("cron3s", 3, 0, "Forbid"))
}

// share says how many runs each replica did.
func share(runs []Run) string {
	n := map[string]int{}
	for _, r := range runs {
		n[r.Instance]++
	}
	var parts []string
	for _, id := range slices.Sorted(maps.Keys(n)) {
		parts = append(parts, fmt.Sprintf("%s %d", id, n[id]))
	}
	return "runs per replica: " + strings.Join(parts, ", ")
}

// exactlyOnce fails the test unless every tick in the report ran exactly
// once, or, under Forbid, was skipped because the task's previous run was
// still going (on a loaded machine a run of a quick task can take over a
// second to start): that is what Forbid asks for, and the report counts it.
func exactlyOnce(t *testing.T, rep Report) {
	t.Helper()
	all := rep.Total()
	if all.Expected == 0 {
		t.Fatal("no ticks in the judged window")
	}
	if all.Dups != 0 || len(all.Unexplained) != 0 || all.Runs != all.Expected-all.Busy {
		t.Errorf("want every tick run exactly once; %d expected, %d runs, %d skipped as busy, duplicated %v, missed %v",
			all.Expected, all.Runs, all.Busy, all.Duplicated, rep.unexplained())
	}
}

func TestSteady(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterConfig{ttl: 3 * time.Second, renew: time.Second, tasks: quickTasks()})
	c.startN(3)
	up := time.Now()
	end := up.Add(runFor(30 * time.Second))
	sleepUntil(end)
	c.stopAll()

	runs := c.runs()
	rep := c.report(up.Add(2*time.Second), end.Add(-2*time.Second), share(runs))
	exactlyOnce(t, rep)
	checkRuns(t, rep, runs)
	c.checkLogs()
}

func TestClockSkew(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterConfig{ttl: 3 * time.Second, renew: time.Second, tasks: quickTasks()})
	for _, off := range []time.Duration{-2 * time.Second, 0, 2 * time.Second} {
		c.start(withClockOffset(off))
	}
	up := time.Now()
	end := up.Add(runFor(30 * time.Second))
	sleepUntil(end)
	c.stopAll()

	// A replica whose clock runs 2s ahead starts ticks up to 2s early in
	// real time, so the window keeps 3s from either end.
	runs := c.runs()
	rep := c.report(up.Add(3*time.Second), end.Add(-3*time.Second),
		share(runs)+" (clock offsets -2s, 0, +2s in that order)",
		"misses, if any, are Forbid ticks that the replica whose clock runs ahead found busy, "+
			"because a replica with a slower clock was still running the previous tick; "+
			"its claim of the tick after then overtook the slower replica's claim of the skipped one")
	checkRuns(t, rep, runs)
	c.checkLogs()
	all := rep.Total()
	if all.Expected == 0 || all.Runs == 0 {
		t.Fatalf("no ticks judged: %+v", all)
	}
	if all.Dups != 0 {
		t.Errorf("ticks run more than once: %v", all.Duplicated)
	}
	// A miss must be explained: an Allow task cannot be busy, and a Forbid
	// tick is missed only after some replica found it busy.
	busy := map[taskTick]bool{}
	for _, l := range c.logsOf("tick skipped: the previous run still holds the lock") {
		busy[taskTick{l.Task, l.Tick.UTC()}] = true
	}
	policy := map[string]string{}
	for _, ts := range c.cfg.tasks {
		policy[ts.Name] = ts.Policy
	}
	for _, m := range rep.missedTicks() {
		if policy[m.Task] != "Forbid" || !busy[m] {
			t.Errorf("%s missed, and no replica found it busy under Forbid", m)
		}
	}
}

func TestLongTasksForbid(t *testing.T) {
	t.Parallel()
	tasks := []taskSpec{
		every("every1s-runs5s", time.Second, 5*time.Second, "Forbid"),
		cronEvery("cron2s-runs3s", 2, 3*time.Second, "Forbid"),
	}
	c := newCluster(t, clusterConfig{ttl: 2 * time.Second, renew: 600 * time.Millisecond, tasks: tasks})
	c.startN(3)
	up := time.Now()
	end := up.Add(runFor(30 * time.Second))
	sleepUntil(end)
	c.stopAll() // waits for the runs in flight: shutdown_timeout is 10s

	runs := c.runs()
	rep := c.report(up.Add(2*time.Second), end.Add(-2*time.Second),
		"misses are by design: under Forbid a tick is skipped while the previous run holds the lock; "+share(runs))
	checkRuns(t, rep, runs)
	c.checkLogs()
	if lost := c.logsOf("lease lost"); len(lost) > 0 {
		t.Errorf("%d leases lost although every renewal could reach the store: %+v", len(lost), lost)
	}
	if ov := overlapping(runs, func(r Run) time.Time { return r.End }); len(ov) > 0 {
		for _, p := range ov {
			t.Errorf("runs overlap: %s@%s on %s [%s, %s] and %s@%s on %s [%s, %s]",
				p[0].Task, p[0].Tick.Format(time.TimeOnly), p[0].Instance, p[0].Start.Format(time.StampMilli), p[0].End.Format(time.StampMilli),
				p[1].Task, p[1].Tick.Format(time.TimeOnly), p[1].Instance, p[1].Start.Format(time.StampMilli), p[1].End.Format(time.StampMilli))
		}
	}
	for _, ts := range tasks {
		var prev *Run
		n := 0
		for _, r := range runs {
			if r.Task != ts.Name {
				continue
			}
			n++
			if prev != nil {
				if r.Token <= prev.Token {
					t.Errorf("%s: token %d of the run started at %s is not above the previous run's %d",
						ts.Name, r.Token, r.Start.Format(time.StampMilli), prev.Token)
				}
				// The lock is released when a run ends, so the next tick
				// after the end is claimed: the gap is at most the period
				// (plus generous slack for process start-up).
				if gap := r.Start.Sub(prev.End); gap > ts.Period+2*time.Second {
					t.Errorf("%s: %v between the end of one run and the start of the next, want at most %v",
						ts.Name, gap.Round(time.Millisecond), ts.Period+2*time.Second)
				}
			}
			prev = &r
		}
		if want := int(runFor(30*time.Second) / (ts.Sleep + 2*ts.Period)); n < want {
			t.Errorf("%s: %d runs, want at least %d", ts.Name, n, want)
		}
	}
}
