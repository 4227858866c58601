package e2e

// Replicas that freeze: SIGSTOP, as a paused VM, a stopped container or a
// long GC pause looks to the others, then SIGCONT.

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// startSlack is how late after its starting deadline a run may still
// start: the claim is sent before the deadline, and fork and exec of the
// supervisor and the shell take their time on a loaded two-core machine.
const startSlack = 1500 * time.Millisecond

func TestPause(t *testing.T) {
	t.Parallel()
	const ttl = 2 * time.Second
	var tasks []taskSpec
	for i := 1; i <= 3; i++ {
		ts := every(fmt.Sprintf("every1s-%d", i), time.Second, 0, "Forbid")
		ts.StartingDeadline = time.Second
		tasks = append(tasks, ts)
	}
	allow := every("allow", time.Second, 0, "Allow")
	allow.StartingDeadline = time.Second
	tasks = append(tasks, allow)
	for i := 1; i <= 2; i++ {
		// A deadline shorter than the period: half the time between ticks.
		ts := every(fmt.Sprintf("every2s-deadline1s-%d", i), 2*time.Second, 0, "Forbid")
		ts.StartingDeadline = time.Second
		tasks = append(tasks, ts)
	}
	// The long task runs past the ttl, in a background job: a replica
	// frozen while it runs cannot renew, and its supervisor must kill the
	// run (grandchild included) when the lease it last heard of ends,
	// before another replica can take the task.
	tasks = append(tasks, taskSpec{Name: "every2s-runs7s", Schedule: "@every 2s", Period: 2 * time.Second, Sleep: 7 * time.Second,
		Policy: "Forbid", Background: true, StartingDeadline: time.Second, KillGrace: "1s"})
	long := map[string]bool{"every2s-runs7s": true}
	c := newCluster(t, clusterConfig{ttl: ttl, renew: 600 * time.Millisecond, tasks: tasks})
	c.startN(3)
	up := time.Now()
	end := up.Add(runFor(30 * time.Second))
	rng := seeded(t)

	// One replica at a time is frozen for 1-6s, half the time the one that
	// runs the long task; 1-3s pass between freezes.
	midRun := 0
	for time.Until(end) > 9*time.Second {
		time.Sleep(time.Second + time.Duration(rng.Int64N(int64(2*time.Second))))
		victim, holder := c.victim(rng, long)
		if holder {
			midRun++
		}
		from := c.freeze(victim)
		sleepUntil(from.Add(time.Second + time.Duration(rng.Int64N(int64(5*time.Second)))))
		c.thaw(victim)
	}
	sleepUntil(end)
	c.stopAll()

	freezes := c.frozen()
	if len(freezes) == 0 {
		t.Fatal("no replica was frozen")
	}
	// near says whether an instant lies within [from - 1s, to + ttl + 1s] of
	// a freeze (of replica r, if not nil): the frozen replica may have
	// claimed a tick it could not start, and under Forbid its lock lives on
	// until its lease runs out.
	near := func(at time.Time, r *replica) bool {
		for _, f := range freezes {
			if (r == nil || f.r == r) && !at.Before(f.from.Add(-time.Second)) && !at.After(f.to.Add(ttl+time.Second)) {
				return true
			}
		}
		return false
	}
	var notes []string
	killedLong := 0
	for _, f := range freezes {
		notes = append(notes, fmt.Sprintf("%s frozen at %s for %v", f.r.name, f.from.Format(time.TimeOnly), f.to.Sub(f.from).Round(time.Millisecond)))
	}
	for _, r := range c.runs() {
		if long[r.Task] && r.End.IsZero() {
			killedLong++
		}
	}
	// The report fails the test for overlapping runs of the Forbid tasks
	// (a frozen replica's run counts until the watcher saw it die) and for
	// runs of a replica frozen past its lease that were alive more than
	// orphanSlack after the lease ended (bounded by freeze start + ttl).
	rep := c.report(up.Add(2*time.Second), end.Add(-2*time.Second), append(notes,
		fmt.Sprintf("%d freezes, %d of them of the replica running the long task; %d long runs killed", len(freezes), midRun, killedLong),
		"misses: ticks the frozen replica had claimed and could not start, and Forbid ticks found busy while its lease lived on")...)
	all := rep.Total()
	if all.Expected == 0 {
		t.Fatal("no ticks judged")
	}
	if all.Dups != 0 {
		t.Errorf("ticks run more than once: %v", all.Duplicated)
	}
	if all.Stray != 0 {
		t.Errorf("%d runs of ticks that are not ticks of their schedule", all.Stray)
	}
	var nearMisses []string
	for _, m := range rep.unexplained() {
		if near(m.Tick, nil) {
			nearMisses = append(nearMisses, m.String())
		} else {
			t.Errorf("%s missed, not within [freeze-1s, thaw+ttl+1s] of any freeze, nor skipped as busy", m)
		}
	}
	t.Logf("%d misses near a freeze: %v", len(nearMisses), nearMisses)

	// No run starts after its starting deadline (plus slack): a stale tick
	// claimed on resume would start about the freeze's length late.
	deadline := map[string]time.Duration{}
	for _, ts := range tasks {
		deadline[ts.Name] = ts.StartingDeadline
	}
	for _, r := range c.runs() {
		if late := r.Start.Sub(r.Tick); late > deadline[r.Task]+startSlack {
			t.Errorf("%v started %v after its tick; its starting deadline is %v", r, late.Round(time.Millisecond), deadline[r.Task])
		}
	}
	// A frozen replica may log errors about the ticks and runs the freeze
	// cost it (a lease lost, a claim answered too late to trust); no
	// replica logs one away from its own freezes.
	errs := c.checkLogsExcept(func(r *replica, l logLine) bool {
		for _, f := range freezes {
			if f.r == r && !l.Time.Before(f.from) && !l.Time.After(f.to.Add(ttl+2*time.Second)) {
				return true
			}
		}
		return false
	})
	var lost []string
	for _, l := range c.logsOf("lease lost") {
		lost = append(lost, l.Task)
	}
	t.Logf("%d ERROR lines from frozen replicas right after their freezes; leases lost: %s", errs, strings.Join(lost, ", "))
}
