package e2e

// Replicas that stay up: steady state, skewed clocks, long runs under Forbid.

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
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
		n[r.Replica]++
	}
	if len(n) > 10 {
		counts := slices.Sorted(maps.Values(n))
		return fmt.Sprintf("runs per replica: %d replicas ran %d to %d each", len(n), counts[0], counts[len(counts)-1])
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
	// Clocks 2s apart either way, within a max_clock_skew of 3s: every
	// replica takes part, and the store's clock says when a tick has come.
	c := newCluster(t, clusterConfig{ttl: 3 * time.Second, renew: time.Second, maxClockSkew: 3 * time.Second, tasks: quickTasks()})
	var ahead *replica
	for _, off := range []time.Duration{-2 * time.Second, 0, 2 * time.Second} {
		r := c.start(withClockOffset(off))
		if off > 0 {
			ahead = r
		}
	}
	up := time.Now()
	end := up.Add(runFor(30 * time.Second))
	sleepUntil(end)
	c.stopAll()

	runs := c.runs()
	rep := c.report(up.Add(3*time.Second), end.Add(-3*time.Second),
		share(runs)+" (clock offsets -2s, 0, +2s in that order; max_clock_skew 3s)",
		"claims fire when the lock store's clock reaches the tick (a claim that comes early waits: \"not yet\"), so no run starts early; "+
			"misses, if any, are Forbid ticks found busy")
	checkRuns(t, rep, runs)
	c.checkLogs()
	// The replica whose clock runs ahead is told to wait, so it cannot
	// claim a tick before it comes, nor a later tick before an earlier one
	// (which cost Forbid ticks before): every tick runs exactly once, none
	// before its time.
	exactlyOnce(t, rep)
	for _, r := range runs {
		if r.Start.Before(r.Tick) {
			t.Errorf("%v started %v before its tick", r, r.Tick.Sub(r.Start).Round(time.Millisecond))
		}
	}
	// Each replica fires its claims by the store's clock, as it measures it
	// from the store's answers, so a clock 2s off neither wins every tick
	// nor loses them all: every replica takes part.
	ran := map[string]int{}
	for _, r := range runs {
		ran[r.Replica]++
	}
	for _, r := range c.replicas {
		if ran[r.name] == 0 {
			t.Errorf("replica %s ran none of the %d runs", r.name, len(runs))
		}
	}
	waited := 0
	for _, l := range ahead.logs() {
		if strings.HasPrefix(l.Msg, "tick not yet due by the lock store's clock") {
			waited++
		}
	}
	t.Logf("replica %s, 2s ahead, waited for the store's clock %d times", ahead.name, waited)
}

func TestClockFarAhead(t *testing.T) {
	t.Parallel()
	const offset = 30 * time.Minute
	c := newCluster(t, clusterConfig{ttl: 3 * time.Second, renew: time.Second, tasks: quickTasks()})
	c.start()
	ahead := c.start(withClockOffset(offset))
	c.start()
	up := time.Now()
	end := up.Add(runFor(30 * time.Second))
	sleepUntil(end)
	c.stopAll()

	// The correct replicas run every tick exactly once; the one whose clock
	// is 30 minutes ahead runs nothing, records nothing (its claims are
	// refused) and says why, at ERROR. Nobody else logs an ERROR.
	runs := c.runs()
	rep := c.report(up.Add(2*time.Second), end.Add(-2*time.Second),
		share(runs)+fmt.Sprintf(" (%s's clock runs %v ahead; max_clock_skew 2s, the default)", ahead.name, offset))
	exactlyOnce(t, rep)
	checkRuns(t, rep, runs)
	for _, r := range runs {
		if r.Replica == ahead.name {
			t.Errorf("the replica whose clock runs %v ahead ran %v", offset, r)
		}
	}
	refused := c.checkLogsExcept(func(r *replica, l logLine) bool {
		return r == ahead && strings.HasPrefix(l.Msg, "tick skipped: this replica's clock is ahead of the lock store's")
	})
	if refused == 0 {
		t.Errorf("replica %s, %v ahead, never logged at ERROR that its clock is ahead of the lock store's", ahead.name, offset)
	}
	t.Logf("%s logged %d refused claims", ahead.name, refused)
	// Nothing in the store lies in the future: no claim record, no busy mark.
	for task, fields := range c.states() {
		for _, f := range []string{"tick", "busy"} {
			if ms, err := strconv.ParseInt(fields[f], 10, 64); err == nil && time.UnixMilli(ms).After(time.Now().Add(2*time.Second)) {
				t.Errorf("state of %s: %s is %s, in the future", task, f, time.UnixMilli(ms).UTC().Format(time.TimeOnly))
			}
		}
	}
}

func TestLongTasksForbid(t *testing.T) {
	t.Parallel()
	tasks := []taskSpec{
		every("every1s-runs5s", time.Second, 5*time.Second, "Forbid"),
		cronEvery("cron2s-runs3s", 2, 3*time.Second, "Forbid"),
		// Each tick replaces the run before it, whose renewal then fails:
		// it is killed at once, its lease being lost.
		every("every2s-runs3s-replace", 2*time.Second, 3*time.Second, "Replace"),
	}
	replace := tasks[2].Name
	c := newCluster(t, clusterConfig{ttl: 2 * time.Second, renew: 600 * time.Millisecond, tasks: tasks})
	c.startN(3)
	up := time.Now()
	end := up.Add(runFor(30 * time.Second))
	sleepUntil(end)
	c.stopAll() // waits for the runs in flight: shutdown_timeout is 10s

	// The report fails the test for overlapping runs: none under Forbid;
	// under Replace the old run must be gone within a renew interval (plus
	// a second of slack) of the new one's start.
	runs := c.runs()
	rep := c.report(up.Add(2*time.Second), end.Add(-2*time.Second),
		"misses are by design: under Forbid a tick is skipped while the previous run holds the lock; "+
			"every Replace run but the last is killed when the next tick takes its lock; "+share(runs))
	var forbidRuns []Run
	for _, r := range runs {
		if r.Task != replace {
			forbidRuns = append(forbidRuns, r)
		}
	}
	checkRuns(t, rep, forbidRuns)
	// Replace: every tick runs (nothing is busy), and a run that did not
	// end was replaced: a later tick came, and took its lock, while it was
	// still alive. (Not "a later run started": the new run's process may
	// well start after the old one is gone, on a loaded machine.)
	if tr := rep.Tasks[2]; tr.Expected == 0 || tr.Runs != tr.Expected || tr.Dups != 0 {
		t.Errorf("%s: %d ticks, %d runs, duplicated %v, missed %v; want each tick run once", replace, tr.Expected, tr.Runs, tr.Duplicated, tr.Missed)
	}
	for i, r := range runs {
		if r.Task != replace || !r.End.IsZero() {
			continue
		}
		replaced := false
		for _, next := range runs[i+1:] {
			replaced = replaced || (next.Task == replace && next.Tick.Before(r.until()))
		}
		if !replaced {
			t.Errorf("%v: killed, but not replaced by a later run", r)
		}
	}
	// A replaced run is said at WARN, with Replace as the reason; a lease
	// lost otherwise is an ERROR, which checkLogs fails on.
	c.checkLogs()
	replacedRuns := 0
	for _, l := range c.logsOf("run cancelled: it lost its lock") {
		if l.Task != replace {
			t.Errorf("run of %s (token %d) cancelled as replaced, but its policy is not Replace: %s", l.Task, l.Token, l.Err)
		}
		replacedRuns++
	}
	if replacedRuns == 0 {
		t.Errorf("no run of %s said it was replaced", replace)
	}
	t.Logf("%d runs of %s replaced (lost their lock)", replacedRuns, replace)
	for _, ts := range tasks[:2] {
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
