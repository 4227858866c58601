package e2e

// The store goes away: redis-server restarted empty, or one replica cut off
// from it.

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

func TestStoreRestart(t *testing.T) {
	t.Parallel()
	var tasks []taskSpec
	for i := 1; i <= 6; i++ {
		tasks = append(tasks, every(fmt.Sprintf("every1s-%d", i), time.Second, 0, "Forbid"))
	}
	tasks = append(tasks, every("allow", time.Second, 0, "Allow"), cronEvery("cron2s", 2, 0, "Forbid"))
	c := newCluster(t, clusterConfig{ttl: 3 * time.Second, renew: time.Second, tasks: tasks})
	replicas := c.startN(3)
	up := time.Now()
	end := up.Add(max(runFor(35*time.Second), 20*time.Second))

	// Outages alternate: 3s down at an arbitrary moment, then 300ms down
	// starting 1-7ms after a tick, while the claims of that tick may be in
	// flight: the restarted store has forgotten the claims it answered.
	type outage struct{ down, up, resumed time.Time }
	var outages []outage
	next := up.Add(4 * time.Second)
	for i := 0; i == 0 || next.Add(12*time.Second).Before(end); i++ {
		downFor := 3 * time.Second
		if i%2 == 1 {
			downFor = 300 * time.Millisecond
			next = next.Truncate(time.Second).Add(time.Second + time.Duration(1+i/2%7)*time.Millisecond)
		}
		sleepUntil(next)
		var o outage
		o.down = time.Now()
		c.redis.Kill()
		time.Sleep(downFor)
		c.redis.Restart()
		o.up = time.Now()
		outages = append(outages, o)
		next = o.up.Add(10*time.Second + 1357*time.Millisecond)
	}
	end = later(end, outages[len(outages)-1].up.Add(10*time.Second))
	sleepUntil(end)
	for _, r := range replicas {
		if r.exited() {
			t.Errorf("replica %s exited while the store restarted: %v\n%s", r.name, r.err, tail(r.logPath, 20))
		}
	}
	c.stopAll()

	// Runs resume within 5s of the store's return, on every replica.
	runs := c.runs()
	for i := range outages {
		o := &outages[i]
		for _, r := range runs {
			if r.Start.After(o.up) {
				o.resumed = r.Start
				break
			}
		}
		if o.resumed.IsZero() || o.resumed.Sub(o.up) > 5*time.Second {
			t.Errorf("store back at %s; runs resumed at %s, want within 5s", o.up.Format(time.StampMilli), o.resumed.Format(time.StampMilli))
		}
	}
	last := outages[len(outages)-1]
	for _, r := range replicas {
		n := 0
		for _, run := range runs {
			if run.Replica == r.name && run.Start.After(last.up) {
				n++
			}
		}
		if n == 0 {
			t.Errorf("replica %s ran nothing after the store came back", r.name)
		}
	}

	// Every replica noticed that the store lost its records: its first
	// answer after each restart carries a new epoch.
	for i, o := range outages {
		until := end
		if i+1 < len(outages) {
			until = outages[i+1].down
		}
		for _, r := range replicas {
			seen := false
			for _, l := range r.logs() {
				if strings.HasPrefix(l.Msg, "the lock store lost its claim records") && l.Time.After(o.down) && l.Time.Before(until) {
					seen = true
				}
			}
			if !seen {
				t.Errorf("replica %s logged no %q after the store restarted at %s", r.name, "the lock store lost its claim records", o.up.Format(time.StampMilli))
			}
		}
	}

	// The restarted store has a new epoch, and refuses the ticks before it:
	// a tick whose claim it forgot is skipped, never run twice. Each tick
	// runs at most once, always; outside [down - 3s, resumed + 2s] of every
	// outage (or up + ttl + 2s, for Forbid ticks the store may keep busy for
	// a ttl after it lost its records), exactly once; inside, the misses
	// are reported.
	disturbed := func(tick time.Time) bool {
		for _, o := range outages {
			if !tick.Before(o.down.Add(-3*time.Second)) && !tick.After(later(o.resumed, o.up.Add(c.cfg.ttl)).Add(2*time.Second)) {
				return true
			}
		}
		return false
	}
	var notes []string
	for _, o := range outages {
		notes = append(notes, fmt.Sprintf("store down %s for %v, runs resumed %v after it was back",
			o.down.Format(time.TimeOnly), o.up.Sub(o.down).Round(time.Millisecond), o.resumed.Sub(o.up).Round(time.Millisecond)))
	}
	skipped := len(c.logsOf("tick skipped: the lock store lost its records"))
	guarded := len(c.logsOf("tick skipped: a run from before the lock store lost its records may still be going"))
	rep := c.report(up.Add(2*time.Second), end.Add(-2*time.Second), append(notes,
		"misses: ticks due while the store was down (claims retried until the deadline, then skipped), "+
			"and ticks whose claims the restarted store may have forgotten (before its new epoch: skipped, never run twice)",
		fmt.Sprintf("%d claims refused as from before the store's epoch (\"tick skipped: the lock store lost its records\"), "+
			"%d Forbid claims refused while a run from before the loss might still be going", skipped, guarded))...)
	if rep.Total().Expected == 0 {
		t.Fatal("no ticks judged")
	}
	var costMisses []string
	for _, tr := range rep.Tasks {
		for _, tick := range tr.Duplicated {
			near := ""
			if disturbed(tick) {
				near = ", near a store restart"
			}
			t.Errorf("%s ran more than once%s", taskTick{tr.Task, tick}, near)
		}
		for _, tick := range tr.Unexplained {
			if tt := (taskTick{tr.Task, tick}); disturbed(tick) {
				costMisses = append(costMisses, tt.String())
			} else {
				t.Errorf("%s missed, away from any store restart, and not skipped as busy", tt)
			}
		}
		if tr.Stray != 0 {
			t.Errorf("%s: %d runs of ticks that are not ticks of its schedule", tr.Task, tr.Stray)
		}
	}
	t.Logf("cost of %d store restarts: %d missed ticks %v", len(outages), len(costMisses), costMisses)
}

func TestPartition(t *testing.T) {
	t.Parallel()
	const ttl = 3 * time.Second
	tasks := []taskSpec{
		every("every2s-runs8s", 2*time.Second, 8*time.Second, "Forbid"),
		every("quick", time.Second, 0, "Forbid"),
	}
	long := tasks[0].Name
	c := newCluster(t, clusterConfig{ttl: ttl, renew: time.Second, tasks: tasks})
	px := startProxy(t, c.redis.Addr())
	// The replica behind the proxy starts alone, so that it runs the long
	// task first; the others join once it does.
	cutOff := c.start(withRedisURL(px.url()))
	if _, ok := c.waitRun(func(r Run) bool { return r.Task == long && r.Instance == cutOff.id }, 10*time.Second); !ok {
		t.Fatalf("%s did not run %s", cutOff.id, long)
	}
	c.startN(2)
	up := time.Now()
	end := up.Add(max(runFor(25*time.Second), 20*time.Second))

	// Cut the replica off while it runs the long task, with more than the
	// ttl of the run to go, for longer than the ttl; heal, and do it again
	// while there is time. The harness watches the run's process to see
	// when it is killed.
	type cut struct {
		at   time.Time
		run  Run       // the run in flight at the cut
		dead time.Time // when its process was gone; zero if it outlived the cut
	}
	var cuts []cut
	for time.Until(end) > 17*time.Second {
		run, ok := c.waitRun(func(r Run) bool {
			return r.Task == long && r.Instance == cutOff.id && r.End.IsZero() && alive(r.PID) &&
				time.Until(r.Start.Add(tasks[0].Sleep)) > ttl+time.Second &&
				(len(cuts) == 0 || r.Start.After(cuts[len(cuts)-1].at))
		}, time.Until(end.Add(-17*time.Second)))
		if !ok {
			break
		}
		px.Cut()
		ct := cut{at: time.Now(), run: run}
		ct.dead, _ = waitGone(run.PID, 12*time.Second)
		cuts = append(cuts, ct)
		sleepUntil(ct.at.Add(12 * time.Second))
		px.Heal()
		// Let the claims caught in the partition settle: one retried across
		// the heal counts its lease from its first attempt, so its run may
		// lose that lease soon whatever the next cut does.
		time.Sleep(ttl)
	}
	if len(cuts) == 0 {
		t.Fatalf("%s never ran %s long enough to be cut off mid-run", cutOff.id, long)
	}
	sleepUntil(end)
	c.stopAll()

	runs := c.runs()
	type taskToken struct {
		task  string
		token uint64
	}
	lostAt := map[taskToken]time.Time{} // when the scheduler reported the lease lost
	for _, l := range c.logsOf("lease lost") {
		lostAt[taskToken{l.Task, l.Token}] = l.Time
	}
	var notes []string
	for _, ct := range cuts {
		at := ct.at.Format(time.StampMilli)
		// The cut-off run is killed before its lease can have expired in
		// the store: within the ttl of the cut, since its last renewal came
		// before the cut. The scheduler says why.
		lost, logged := lostAt[taskToken{long, ct.run.Token}]
		switch {
		case ct.dead.IsZero():
			t.Errorf("cut at %s: the run in flight (token %d) was still running 12s later", at, ct.run.Token)
			continue
		case ct.dead.Sub(ct.at) > ttl:
			t.Errorf("cut at %s: the run in flight was killed %v later, want within the ttl %v", at, ct.dead.Sub(ct.at), ttl)
		case !logged:
			t.Errorf("cut at %s: no %q log for the run in flight (token %d)", at, "lease lost", ct.run.Token)
		}
		for _, r := range runs {
			if r.Task == long && r.Token == ct.run.Token && !r.End.IsZero() {
				t.Errorf("cut at %s: the run in flight (token %d) ran to its end; want it killed when its lease was lost", at, r.Token)
			}
		}
		// Another replica takes the task over, with a higher token, after
		// the cut-off run was killed.
		var next *Run
		for _, r := range runs {
			if r.Task == long && r.Instance != cutOff.id && r.Start.After(ct.at) {
				next = &r
				break
			}
		}
		switch {
		case next == nil:
			t.Errorf("cut at %s: no other replica ran %s after it", at, long)
			continue
		case next.Token <= ct.run.Token:
			t.Errorf("cut at %s: the next run's token %d is not above the cut-off run's %d", at, next.Token, ct.run.Token)
		case next.Start.Before(ct.dead):
			t.Errorf("cut at %s: %s started at %s on %s, before the cut-off run was killed at %s",
				at, long, next.Start.Format(time.StampMilli), next.Instance, ct.dead.Format(time.StampMilli))
		case next.Start.Sub(ct.at) > ttl+2*tasks[0].Period+2*time.Second:
			t.Errorf("cut at %s: the next run started only %v later", at, next.Start.Sub(ct.at))
		}
		notes = append(notes, fmt.Sprintf("cut at %s: run killed %v after the cut, %q logged %v after it, next run (%s) %v after it",
			ct.at.Format(time.TimeOnly), ct.dead.Sub(ct.at).Round(time.Millisecond), "lease lost",
			lost.Sub(ct.at).Round(time.Millisecond), next.Instance, next.Start.Sub(ct.at).Round(time.Millisecond)))
	}
	// The quick task misses only ticks whose claims the cut swallowed, and
	// ticks found busy until the cut-off replica's lock expired.
	rep := c.report(up.Add(2*time.Second), end.Add(-2*time.Second), append(notes,
		fmt.Sprintf("replica %s cut off from Redis (blackholed) %d times for 12s", cutOff.name, len(cuts)),
		fmt.Sprintf("%s misses are by design (Forbid, runs 8s every 2s); quick misses: claims swallowed by the cut, or busy until the lock expired", long))...)
	quick := rep.Tasks[1]
	if quick.Expected == 0 || quick.Dups != 0 {
		t.Errorf("quick: %d ticks, duplicated %v; want none duplicated", quick.Expected, quick.Duplicated)
	}
	for _, m := range quick.Unexplained {
		near := false
		for _, ct := range cuts {
			near = near || (!m.Before(ct.at.Add(-time.Second)) && !m.After(ct.at.Add(ttl+time.Second)))
		}
		if !near {
			t.Errorf("quick@%s missed, not within [cut-1s, cut+ttl+1s] of a cut, nor skipped as busy", m.Format(time.TimeOnly))
		}
	}
	if rep.Total().Stray != 0 {
		t.Errorf("%d runs of ticks that are not ticks of their schedule", rep.Total().Stray)
	}
}

// waitGone waits up to d for process pid to be gone, and says when it saw
// that.
func waitGone(pid int, d time.Duration) (time.Time, bool) {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if !alive(pid) {
			return time.Now(), true
		}
	}
	return time.Time{}, false
}

// alive reports whether process pid runs: it exists and is no zombie
// (killed, not yet reaped).
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// "pid (comm) S ...": the state follows the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

// waitRun waits up to d for a run that satisfies ok.
func (c *cluster) waitRun(ok func(Run) bool, d time.Duration) (Run, bool) {
	for deadline := time.Now().Add(d); ; time.Sleep(100 * time.Millisecond) {
		for _, r := range c.runs() {
			if ok(r) {
				return r, true
			}
		}
		if !time.Now().Before(deadline) {
			return Run{}, false
		}
	}
}
