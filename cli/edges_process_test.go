//go:build linux

package cli_test

// Process-level tests of the edges of the guarantee (issue 7): the real
// binary, real signals, a real Redis where the fault needs one.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/beatlock/beat/internal/redistest"
)

// recordingTask is the YAML of an exec task that appends
// "<BEAT_SCHEDULED_AT> <pid> start" to file, runs body, then appends
// "<BEAT_SCHEDULED_AT> <pid> end".
func recordingTask(name, schedule, policy, file, body string, extra string) string {
	script := fmt.Sprintf(`echo "$BEAT_SCHEDULED_AT $$ start" >> %q; %s; echo "$BEAT_SCHEDULED_AT $$ end" >> %q`, file, body, file)
	return fmt.Sprintf(`
  - name: %s
    schedule: %q
    task: exec
    concurrency_policy: %s
    args:
      command: [sh, -c, %q]%s
`, name, schedule, policy, script, extra)
}

// runRecord is one line a recordingTask wrote.
type runRecord struct {
	tick  string
	pid   int
	event string
}

func readRecords(t *testing.T, file string) []runRecord {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []runRecord
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) != 3 {
			t.Fatalf("record %q: want 3 fields", line)
		}
		pid, _ := strconv.Atoi(f[1])
		out = append(out, runRecord{tick: f[0], pid: pid, event: f[2]})
	}
	return out
}

// startsPerTick counts the "start" records of each tick.
func startsPerTick(recs []runRecord) map[string]int {
	n := map[string]int{}
	for _, r := range recs {
		if r.event == "start" {
			n[r.tick]++
		}
	}
	return n
}

// alive reports whether pid is a live process (not a zombie).
func alive(pid int) bool {
	_, _, ok := liveStat(strconv.Itoa(pid))
	return ok
}

// TestProcessTaskDiesWithBeat: an exec run does not outlive its beat. A
// beat killed with SIGKILL (as by the OOM killer) takes the task's shell
// and the job it started in the background with it at once, instead of
// leaving them running past the lease while another replica starts the
// next run (issue 7, item 1); so does a SIGKILL to beat's whole process
// group (supervisord's killasgroup, `timeout -s KILL`). After a SIGSTOP to
// the group (beat frozen), the task dies when its lease ends, before
// another replica could take the task.
func TestProcessTaskDiesWithBeat(t *testing.T) {
	for _, tc := range []struct {
		name     string
		sig      syscall.Signal
		group    bool          // to beat's process group, not beat alone
		within   time.Duration // how soon the task must be gone
		leaseTTL time.Duration
	}{
		{"SIGKILL to beat", syscall.SIGKILL, false, 5 * time.Second, 30 * time.Second},
		{"SIGKILL to beat's group", syscall.SIGKILL, true, 5 * time.Second, 30 * time.Second},
		{"SIGSTOP to beat's group", syscall.SIGSTOP, true, 2*time.Second + 3*time.Second, 2 * time.Second}, // the lease's end, and slack
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			pids := filepath.Join(dir, "pids")
			script := fmt.Sprintf(`sleep 60 & echo "$$ $!" > %q; wait`, pids)
			path := writeConfig(t, fmt.Sprintf(`
lock: {ttl: %s, renew_interval: 500ms}
tasks:
  - name: long
    schedule: "@every 1s"
    task: exec
    args:
      command: [sh, -c, %q]
`, tc.leaseTTL, script))
			p := startBeat(t, path, "dies-with-beat", func(c *exec.Cmd) { c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} })
			var shell, sleeper int
			if !waitFor(20*time.Second, func() bool {
				b, _ := os.ReadFile(pids)
				n, _ := fmt.Sscan(string(b), &shell, &sleeper)
				return n == 2
			}) {
				t.Fatalf("the task did not start; beat's output:\n%s", p.stderr)
			}
			// However this test ends, nothing it started outlives it; this
			// runs after the assertions below.
			t.Cleanup(func() {
				syscall.Kill(-shell, syscall.SIGKILL)
				syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
				syscall.Kill(-p.cmd.Process.Pid, syscall.SIGCONT)
			})
			if !alive(shell) || !alive(sleeper) {
				t.Fatalf("shell %d or background job %d not running before the signal", shell, sleeper)
			}
			target := p.cmd.Process.Pid
			if tc.group {
				target = -target
			}
			sent := time.Now()
			if err := syscall.Kill(target, tc.sig); err != nil {
				t.Fatal(err)
			}
			if !waitFor(tc.within, func() bool { return !alive(shell) && !alive(sleeper) }) {
				t.Errorf("%v after %s: the task's shell alive %v, its background job alive %v; want both gone",
					tc.within, tc.name, alive(shell), alive(sleeper))
			}
			t.Logf("the task's shell and its background job were gone %v after %s", time.Since(sent).Round(time.Millisecond), tc.name)
		})
	}
}

// TestProcessSignalsDoNotEndBeat: SIGHUP reloads the schedule, SIGUSR1 and
// SIGUSR2 are logged and ignored; beat keeps running its schedule, and a
// later SIGTERM still shuts it down cleanly (issue 7, item 2; issue 8).
func TestProcessSignalsDoNotEndBeat(t *testing.T) {
	said := map[syscall.Signal]string{syscall.SIGHUP: "schedule reload: nothing changed", syscall.SIGUSR1: "signal ignored", syscall.SIGUSR2: "signal ignored"}
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			runs := filepath.Join(t.TempDir(), "runs")
			path := writeConfig(t, "tasks:"+recordingTask("tick", "@every 1s", "Forbid", runs, "true", ""))
			p := startBeat(t, path, "signals")
			if !waitFor(15*time.Second, func() bool { return len(readRecords(t, runs)) > 0 }) {
				t.Fatalf("no run; beat's output:\n%s", p.stderr)
			}
			p.signal(t, sig)
			if !waitFor(5*time.Second, func() bool { return strings.Contains(p.stderr.String(), said[sig]) }) {
				t.Errorf("no %q line after %v", said[sig], sig)
			}
			before := len(startsPerTick(readRecords(t, runs)))
			if !waitFor(10*time.Second, func() bool { return len(startsPerTick(readRecords(t, runs))) >= before+2 }) {
				t.Errorf("ticks stopped running after %v", sig)
			}
			select {
			case <-p.done:
				t.Fatalf("beat exited on %v: %v", sig, p.err)
			default:
			}
			p.signal(t, syscall.SIGTERM)
			if code, _ := p.wait(t, 15*time.Second); code != 0 {
				t.Errorf("exit code %d after SIGTERM, want 0", code)
			}
			if !strings.Contains(p.stderr.String(), "scheduler stopped") {
				t.Error("no \"scheduler stopped\": the shutdown sequence did not run")
			}
		})
	}
}

// TestProcessSameInstanceID: two processes wrongly given the same instance
// id; when one stops, the other's run keeps its lock and is not cancelled,
// and no second run of the Forbid task starts while it runs (issue 7,
// item 3).
func TestProcessSameInstanceID(t *testing.T) {
	c := redistest.Client(t)
	prefix := redistest.Prefix(t, c)
	runs := filepath.Join(t.TempDir(), "runs")
	path := writeConfig(t, fmt.Sprintf(`
lock:
  backend: redis
  ttl: 2s
  renew_interval: 500ms
  redis: {url: %q, key_prefix: %q}
tasks:`, redistest.URL(), prefix)+recordingTask("long", "@every 1s", "Forbid", runs, "sleep 8", ""))
	id := "shared-" + uuid.NewString()
	a, b := startBeat(t, path, id), startBeat(t, path, id)
	t.Cleanup(func() {
		for _, r := range readRecords(t, runs) {
			syscall.Kill(-r.pid, syscall.SIGKILL)
		}
	})
	if !waitFor(20*time.Second, func() bool { return len(readRecords(t, runs)) > 0 }) {
		t.Fatalf("no run started")
	}
	holder, err := c.Get(context.Background(), prefix+"lock:long").Result()
	if err != nil {
		t.Fatal(err)
	}
	other := b
	if !strings.Contains(a.stderr.String(), `"lock_owner":"`+holder+`"`) {
		other = a
	}
	other.signal(t, syscall.SIGTERM)
	if code, _ := other.wait(t, 30*time.Second); code != 0 {
		t.Errorf("the stopped process exited %d, want 0", code)
	}
	time.Sleep(3 * time.Second) // past the ttl: a released lock would have been taken again
	if now, err := c.Get(context.Background(), prefix+"lock:long").Result(); err != nil || now != holder {
		t.Errorf("after the other process stopped: lock = %q, %v; want still %q", now, err, holder)
	}
	if n := len(startsPerTick(readRecords(t, runs))); n != 1 {
		t.Errorf("%d runs started; want 1 (the first still runs, Forbid)", n)
	}
	for _, p := range []*beatProcess{a, b} {
		if strings.Contains(p.stderr.String(), "lease lost") {
			t.Errorf("a run lost its lease:\n%s", p.stderr)
		}
	}
}

// TestProcessPausedPastDeadline: a beat frozen with SIGSTOP past a tick and
// its starting deadline does not run that tick when it resumes; it reports
// it missed and runs the next one (issue 7, item 4).
func TestProcessPausedPastDeadline(t *testing.T) {
	runs := filepath.Join(t.TempDir(), "runs")
	path := writeConfig(t, "tasks:"+recordingTask("t", "@every 3s", "Forbid", runs, "true", "\n    starting_deadline: 1s"))
	p := startBeat(t, path, "paused")
	if !waitFor(15*time.Second, func() bool { return len(readRecords(t, runs)) > 0 }) {
		t.Fatalf("no run; beat's output:\n%s", p.stderr)
	}
	// Freeze it from 1s before the next tick to 2.5s after: past the tick's
	// 1s starting deadline.
	next := time.Now().Truncate(3 * time.Second).Add(3 * time.Second)
	if time.Until(next) < 1500*time.Millisecond {
		next = next.Add(3 * time.Second)
	}
	time.Sleep(time.Until(next.Add(-time.Second)))
	p.signal(t, syscall.SIGSTOP)
	time.Sleep(time.Until(next.Add(2500 * time.Millisecond)))
	p.signal(t, syscall.SIGCONT)
	after := next.Add(3 * time.Second).UTC().Format(time.RFC3339)
	if !waitFor(10*time.Second, func() bool { return startsPerTick(readRecords(t, runs))[after] > 0 }) {
		t.Errorf("the tick after the pause (%s) did not run", after)
	}
	paused := next.UTC().Format(time.RFC3339)
	if n := startsPerTick(readRecords(t, runs))[paused]; n != 0 {
		t.Errorf("the tick %s, due while beat was frozen, ran %d times after its deadline", paused, n)
	}
	if !strings.Contains(p.stderr.String(), "starting deadline") {
		t.Errorf("no missed-tick line names the starting deadline:\n%s", p.stderr)
	}
}

// TestProcessMemoryRestartRunsNoTickTwice: a beat on the in-memory store,
// restarted just after a tick, does not run that tick again (issue 7,
// item 7).
func TestProcessMemoryRestartRunsNoTickTwice(t *testing.T) {
	runs := filepath.Join(t.TempDir(), "runs")
	path := writeConfig(t, "tasks:"+recordingTask("t", "@every 4s", "Forbid", runs, "true", ""))
	first := startBeat(t, path, "restart-1")
	if !waitFor(15*time.Second, func() bool {
		recs := readRecords(t, runs)
		return len(recs) > 0 && recs[len(recs)-1].event == "end"
	}) {
		t.Fatalf("no run; beat's output:\n%s", first.stderr)
	}
	first.signal(t, syscall.SIGTERM)
	if code, _ := first.wait(t, 15*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	second := startBeat(t, path, "restart-2")
	if !waitFor(15*time.Second, func() bool { return len(startsPerTick(readRecords(t, runs))) >= 2 }) {
		t.Fatalf("no run after the restart; its output:\n%s", second.stderr)
	}
	for tick, n := range startsPerTick(readRecords(t, runs)) {
		if n != 1 {
			t.Errorf("tick %s ran %d times across the restart", tick, n)
		}
	}
	if !strings.Contains(second.stderr.String(), "not caught up") {
		t.Errorf("the restarted beat did not say why it skipped the last tick:\n%s", second.stderr)
	}
}
