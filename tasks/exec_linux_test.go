package tasks_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/beatlock/beat/internal/supervisor"
	"github.com/beatlock/beat/tasks"
)

// deathBound is how long a killed process may take to be gone. Generous:
// death after SIGKILL takes milliseconds, but the machine may be loaded.
const deathBound = 10 * time.Second

// hangGuard bounds a run that should end long before it; only a hang
// exceeds it.
const hangGuard = 30 * time.Second

// process is one process as /proc shows it. Its start time tells it from a
// later process that reuses its pid.
type process struct {
	pid, ppid, pgid, sid int
	start                string
}

// procStat reads /proc/<pid>/stat; ok is false if there is no such process.
func procStat(pid int) (p process, state byte, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return process{}, 0, false
	}
	// The command name in parentheses may hold spaces; fields are counted
	// from the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return process{}, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return process{}, 0, false
	}
	p.pid = pid
	p.ppid, _ = strconv.Atoi(f[1])
	p.pgid, _ = strconv.Atoi(f[2])
	p.sid, _ = strconv.Atoi(f[3])
	p.start = f[19]
	return p, f[0][0], true
}

func mustProcess(t *testing.T, pid int, what string) process {
	t.Helper()
	p, state, ok := procStat(pid)
	if !ok || state == 'Z' {
		t.Fatalf("%s (pid %d) is not running", what, pid)
	}
	return p
}

// gone reports whether p has exited. A killed orphan stays a zombie until
// its new parent reaps it, and some container inits never do, so a zombie
// counts as gone; so does a pid now used by another process.
func (p process) gone() bool {
	now, state, ok := procStat(p.pid)
	return !ok || now.start != p.start || state == 'Z'
}

func (p process) kill() {
	if !p.gone() {
		syscall.Kill(p.pid, syscall.SIGKILL)
	}
}

// waitGone polls until every process in ps is gone or deathBound passes,
// and returns those still alive.
func waitGone(ps map[string]process) []string {
	deadline := time.Now().Add(deathBound)
	for {
		var alive []string
		for name, p := range ps {
			if !p.gone() {
				alive = append(alive, fmt.Sprintf("%s (pid %d)", name, p.pid))
			}
		}
		if len(alive) == 0 || time.Now().After(deadline) {
			return alive
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// killAfterTest kills ps when the test ends, so that a failed test leaves
// nothing behind. It runs after the test's assertions.
func killAfterTest(t *testing.T, ps map[string]process) {
	t.Cleanup(func() {
		for _, p := range ps {
			p.kill()
		}
	})
}

// fifo makes a named pipe in dir. A child writes to it when it is ready;
// read returns what it wrote as soon as it has, so no polling is needed.
func fifo(t *testing.T, dir, name string) (path string, read func(what string) string) {
	t.Helper()
	path = filepath.Join(dir, name)
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	var once sync.Once
	got := make(chan []byte, 1)
	t.Cleanup(func() {
		// Unblock the reader if no writer ever came.
		if f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	})
	return path, func(what string) string {
		t.Helper()
		once.Do(func() {
			go func() {
				b, _ := os.ReadFile(path)
				got <- b
			}()
		})
		select {
		case b := <-got:
			return strings.TrimSpace(string(b))
		case <-time.After(hangGuard):
			t.Fatalf("%s: nothing written to %s within %v", what, name, hangGuard)
			return ""
		}
	}
}

func atoiFields(t *testing.T, s string, n int) []int {
	t.Helper()
	f := strings.Fields(s)
	if len(f) != n {
		t.Fatalf("got %q, want %d numbers", s, n)
	}
	out := make([]int, n)
	for i := range f {
		v, err := strconv.Atoi(f[i])
		if err != nil || v <= 1 {
			t.Fatalf("got %q, want %d pids", s, n)
		}
		out[i] = v
	}
	return out
}

// buildExecBeat compiles testdata/execbeat, a program that imports package
// tasks as beat does and runs one exec task until it is killed.
func buildExecBeat(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to build the test program: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "execbeat")
	cmd := exec.Command(goTool, "build", "-o", bin, "./testdata/execbeat")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./testdata/execbeat: %v\n%s", err, out)
	}
	return bin
}

// TestExecNothingOutlivesBeat SIGKILLs a program that runs an exec task,
// as the OOM killer would beat, and checks that the task's shell, its
// background job and a descendant that left the process group with setsid
// all die, and the supervisor with them; also when beat dies in the middle
// of a graceful stop with an hour of grace left.
func TestExecNothingOutlivesBeat(t *testing.T) {
	bin := buildExecBeat(t)
	// The shell traps TERM without exiting, and its background job ignores
	// TERM, so only SIGKILL ends them.
	const script = `trap 'echo term > "$TERMED"' TERM
sh -c 'trap "" TERM; echo $$ > "$JOB"; exec sleep 60' &
read bg < "$JOB"
setsid sh -c 'echo $$ > "$ESC"; exec sleep 60' &
read esc < "$ESC"
echo "$$ $bg $esc $PPID" > "$READY"
while kill -0 "$bg" 2>/dev/null; do wait "$bg"; done`
	tests := []struct {
		name         string
		stopFirst    bool // cancel the run (SIGTERM, an hour's grace) before killing beat
		wantTermSeen bool
	}{
		{name: "while the task runs"},
		{name: "during a graceful stop", stopFirst: true, wantTermSeen: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			ready, readReady := fifo(t, dir, "ready")
			job, _ := fifo(t, dir, "job")
			esc, _ := fifo(t, dir, "esc")
			termed, readTermed := fifo(t, dir, "termed")
			beat := exec.Command(bin, "1h", "sh", "-c", script)
			beat.Env = append(os.Environ(), "READY="+ready, "JOB="+job, "ESC="+esc, "TERMED="+termed)
			// A file, not a pipe: the supervisor inherits beat's stderr, and
			// Wait would wait for a pipe as long as the supervisor lives,
			// hanging this test instead of failing it if it never exits.
			beatErr, err := os.Create(filepath.Join(dir, "execbeat.stderr"))
			if err != nil {
				t.Fatal(err)
			}
			defer beatErr.Close()
			beat.Stderr = beatErr
			if err := beat.Start(); err != nil {
				t.Fatal(err)
			}
			beatDone := make(chan struct{})
			go func() { beat.Wait(); close(beatDone) }()
			t.Cleanup(func() { beat.Process.Kill(); <-beatDone })

			pids := atoiFields(t, readReady("the task's pids"), 4)
			ps := map[string]process{
				"the task's shell":      mustProcess(t, pids[0], "the task's shell"),
				"its background job":    mustProcess(t, pids[1], "its background job"),
				"its setsid descendant": mustProcess(t, pids[2], "its setsid descendant"),
				"the supervisor":        mustProcess(t, pids[3], "the supervisor"),
			}
			killAfterTest(t, ps)
			shell, bg, escaped, sup := ps["the task's shell"], ps["its background job"], ps["its setsid descendant"], ps["the supervisor"]

			// The situation is the one this test claims to cover.
			if shell.pgid != shell.pid || bg.pgid != shell.pid {
				t.Fatalf("shell in group %d, background job in %d; want both in the shell's own group %d", shell.pgid, bg.pgid, shell.pid)
			}
			if escaped.sid != escaped.pid || escaped.pgid == shell.pgid {
				t.Fatalf("the setsid descendant is in session %d, group %d; want a session of its own, outside group %d", escaped.sid, escaped.pgid, shell.pgid)
			}
			if cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", sup.pid)); string(cmdline) != supervisor.Marker+"\x00" {
				t.Fatalf("the shell's parent %d runs %q, want the supervisor", sup.pid, cmdline)
			}
			if sup.ppid != beat.Process.Pid {
				t.Fatalf("the supervisor's parent is %d, want the program running the task (%d)", sup.ppid, beat.Process.Pid)
			}
			logRSS(t, sup.pid)

			if tt.stopFirst {
				if err := beat.Process.Signal(syscall.SIGUSR1); err != nil {
					t.Fatal(err)
				}
				// The shell has seen SIGTERM: the stop is under way, with
				// an hour of grace left, when beat dies.
				if got := readTermed("the TERM trap"); got != "term" {
					t.Fatalf("the TERM trap wrote %q", got)
				}
			}
			if err := beat.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			<-beatDone
			if alive := waitGone(ps); len(alive) > 0 {
				t.Errorf("%d of the processes started for the task outlived the SIGKILLed program by %v: %s\nits stderr:\n%s",
					len(alive), deathBound, strings.Join(alive, ", "), readFile(beatErr.Name()))
			}
		})
	}
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// logRSS reports the supervisor's resident memory: not asserted, since it
// depends on the binary, but worth seeing next to each change.
func logRSS(t *testing.T, pid int) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return
	}
	var fields []string
	for line := range strings.Lines(string(b)) {
		for _, k := range []string{"VmRSS:", "RssAnon:", "RssFile:", "Threads:"} {
			if v, ok := strings.CutPrefix(line, k); ok {
				fields = append(fields, k+" "+strings.Join(strings.Fields(v), " "))
			}
		}
	}
	t.Logf("supervisor %d: %s", pid, strings.Join(fields, ", "))
}

// TestExecCancelGrace cancels runs whose shells trap or ignore SIGTERM and
// checks the order of events: SIGTERM to the group first, SIGKILL only
// after the grace, which is kill_grace bounded by tasks.LeaseLeft.
func TestExecCancelGrace(t *testing.T) {
	// A trapped TERM interrupts wait, so the shell waits again; only while
	// its job lives, so that a shell left behind by a failed test cannot
	// spin.
	const waitForJob = `while kill -0 "$job" 2>/dev/null; do wait "$job"; done`
	// Each job reports its pid only once it has been exec'd, with its own
	// signal dispositions: a SIGTERM that reached a job while it was still a
	// forked copy of the trapping shell would be caught there and lost (so
	// the job would wait for SIGKILL); dash shows that in about 1 of 6 tries.
	const (
		// The shell notes SIGTERM in $MARK and exits 0; its job dies of it.
		trapsTERM = `trap 'echo term >> "$MARK"; exit 0' TERM
sh -c 'echo $$ > "$SYNC"; exec sleep 60' &`
		// The shell notes SIGTERM and carries on; its job ignores it.
		ignoresTERM = `trap 'echo term >> "$MARK"' TERM
sh -c 'trap "" TERM; echo $$ > "$SYNC"; exec sleep 60' &`
	)
	tests := []struct {
		name      string
		script    string
		killGrace any           // args.kill_grace
		leaseLeft time.Duration // tasks.LeaseLeft once cancelled (1h before); negative: not set
		wantGrace time.Duration
		wantMark  string // what the TERM trap wrote
		wantEnded string // how the shell ended
	}{
		{"TERM trapped: clean exit", trapsTERM, "1h", -1, time.Hour, "term\n", "exit status 0"},
		{"TERM ignored: SIGKILL after kill_grace", ignoresTERM, "300ms", -1, 300 * time.Millisecond, "term\n", "signal: killed"},
		{"kill_grace 0: SIGKILL at once", trapsTERM, 0, -1, 0, "", "signal: killed"},
		{"kill_grace \"0s\": SIGKILL at once", trapsTERM, "0s", -1, 0, "", "signal: killed"},
		{"lease left shorter than kill_grace wins", ignoresTERM, "1h", 300 * time.Millisecond, 300 * time.Millisecond, "term\n", "signal: killed"},
		{"kill_grace shorter than the lease left wins", ignoresTERM, "300ms", time.Hour, 300 * time.Millisecond, "term\n", "signal: killed"},
		{"lease already gone: SIGKILL at once", trapsTERM, "1h", 0, 0, "", "signal: killed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			mark := filepath.Join(dir, "mark")
			ready, readReady := fifo(t, dir, "ready")
			sync, _ := fifo(t, dir, "sync")
			fn, run, logs := execRun(t, map[string]any{
				"command":    []any{"sh", "-c", tt.script + "\nread job < \"$SYNC\"\necho \"$$ $job\" > \"$READY\"\n" + waitForJob},
				"env":        map[string]any{"MARK": mark, "READY": ready, "SYNC": sync},
				"kill_grace": tt.killGrace,
			})
			errCancel := errors.New("test: lease lost")
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			if tt.leaseLeft >= 0 {
				base := ctx
				ctx = tasks.WithLease(ctx, leaseFunc(func() time.Duration {
					if base.Err() == nil {
						return time.Hour
					}
					return tt.leaseLeft
				}))
			}
			done := make(chan error, 1)
			go func() { done <- fn(ctx, run) }()
			pids := atoiFields(t, readReady("the task's pids"), 2)
			ps := map[string]process{
				"the shell": mustProcess(t, pids[0], "the shell"),
				"its job":   mustProcess(t, pids[1], "its job"),
			}
			killAfterTest(t, ps)

			cancelled := time.Now()
			cancel(errCancel)
			var err error
			select {
			case err = <-done:
			case <-time.After(hangGuard):
				t.Fatalf("the run did not return within %v of its cancellation", hangGuard)
			}
			elapsed := time.Since(cancelled)
			if !errors.Is(err, errCancel) {
				t.Errorf("err = %v, want it to wrap the cancellation's cause", err)
			}
			checkErr(t, err, `"sh" cancelled, its process group killed`)
			// SIGKILL came no earlier than the grace allowed.
			if tt.wantEnded == "signal: killed" && elapsed < tt.wantGrace {
				t.Errorf("the run returned %v after cancellation, before the grace of %v was over", elapsed, tt.wantGrace)
			}
			got, _ := os.ReadFile(mark)
			if string(got) != tt.wantMark {
				t.Errorf("the TERM trap wrote %q, want %q", got, tt.wantMark)
			}
			recs := logs.find(t, "exec cancelled")
			if len(recs) != 1 {
				t.Fatalf("want one \"exec cancelled\" record, got %v", logs.records(t))
			}
			if g, _ := recs[0]["grace"].(float64); time.Duration(g) != tt.wantGrace {
				t.Errorf("grace = %v, want %v", time.Duration(g), tt.wantGrace)
			}
			if e := recs[0]["ended"]; e != tt.wantEnded {
				t.Errorf("the shell ended with %q, want %q", e, tt.wantEnded)
			}
			// The run returns once everything is gone, so no waiting here.
			for name, p := range ps {
				if !p.gone() {
					t.Errorf("%s (pid %d) outlived the run", name, p.pid)
				}
			}
		})
	}
}

// TestExecLeftoversEnded: when the command exits by itself, what it left
// behind is ended before the run returns: SIGTERM, then SIGKILL after
// kill_grace, and, on Linux, also what left its process group.
func TestExecLeftoversEnded(t *testing.T) {
	tests := []struct {
		name      string
		script    string // must write the leftover's pid to $PIDS
		killGrace string
		wantErr   string
		minTime   time.Duration
	}{
		{
			name:      "background job ends on SIGTERM",
			script:    `sleep 60 & echo $! > "$PIDS"; exit 0`,
			killGrace: "1h",
		},
		{
			name:      "job that ignores SIGTERM is killed after kill_grace",
			script:    `sh -c 'trap "" TERM; echo $$ > "$ESC"; exec sleep 60' & read p < "$ESC"; echo "$p" > "$PIDS"; exit 0`,
			killGrace: "300ms",
			minTime:   300 * time.Millisecond,
		},
		{
			name:      "job that left the group with setsid is killed",
			script:    `setsid sh -c 'set -- $(cat /proc/$$/stat); echo "$1 $6" > "$ESC"; exec sleep 60' & read p < "$ESC"; echo "$p" > "$PIDS"; exit 0`,
			killGrace: "1h",
		},
		{
			name:      "the exit code still decides",
			script:    `sleep 60 & echo $! > "$PIDS"; exit 3`,
			killGrace: "1h",
			wantErr:   `"sh" exited with code 3`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			pidFile := filepath.Join(dir, "pids")
			esc, _ := fifo(t, dir, "esc")
			fn, run, logs := execRun(t, map[string]any{
				"command":    []any{"sh", "-c", tt.script},
				"env":        map[string]any{"PIDS": pidFile, "ESC": esc},
				"kill_grace": tt.killGrace,
			})
			start := time.Now()
			done := make(chan error, 1)
			go func() { done <- fn(context.Background(), run) }()
			var err error
			select {
			case err = <-done:
			case <-time.After(hangGuard):
				t.Fatalf("the run did not return within %v", hangGuard)
			}
			elapsed := time.Since(start)
			checkErr(t, err, tt.wantErr)
			b, rerr := os.ReadFile(pidFile)
			if rerr != nil {
				t.Fatalf("the leftover's pid: %v", rerr)
			}
			f := strings.Fields(string(b))
			if len(f) == 2 && f[0] != f[1] {
				t.Fatalf("the setsid job %s is in session %s, want one of its own", f[0], f[1])
			}
			pid, _ := strconv.Atoi(f[0])
			if pid <= 1 {
				t.Fatalf("pid file holds %q", b)
			}
			// The run returned, so the leftover must be gone already; a
			// surviving one has a stat file whose environment is the run's.
			if _, state, ok := procStat(pid); ok && state != 'Z' && isRunOf(pid, run) {
				syscall.Kill(pid, syscall.SIGKILL)
				t.Fatalf("leftover %d still runs after the run returned", pid)
			}
			if elapsed < tt.minTime {
				t.Errorf("the run returned after %v, before kill_grace (%v) was over", elapsed, tt.minTime)
			}
			if recs := logs.find(t, "exec cancelled"); len(recs) != 0 {
				t.Errorf("a run that was not cancelled logged %v", recs)
			}
		})
	}
}

// isRunOf reports whether pid carries run's BEAT_* environment, i.e. is a
// process of that run rather than a later one that reused its pid.
func isRunOf(pid int, run tasks.Run) bool {
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return false
	}
	for _, kv := range run.Env() {
		if !bytes.Contains(env, []byte(kv+"\x00")) {
			return false
		}
	}
	return true
}

// startedSignal is a slog handler that closes its channel at the "exec
// started" record, by when beat knows the command's pid, and keeps its pids.
type startedSignal struct {
	once    sync.Once
	started chan struct{}
	pids    map[string]int64
}

func (h *startedSignal) Enabled(context.Context, slog.Level) bool { return true }
func (h *startedSignal) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *startedSignal) WithGroup(string) slog.Handler            { return h }

func (h *startedSignal) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "exec started" {
		h.once.Do(func() {
			h.pids = map[string]int64{}
			r.Attrs(func(a slog.Attr) bool {
				h.pids[a.Key] = a.Value.Int64()
				return true
			})
			close(h.started)
		})
	}
	return nil
}

// TestExecSupervisorKilled: when the supervisor dies without reporting,
// the run fails saying so and beat kills the command's group itself.
func TestExecSupervisorKilled(t *testing.T) {
	dir := t.TempDir()
	ready, readReady := fifo(t, dir, "ready")
	fn, run, _ := execRun(t, map[string]any{
		"command": []any{"sh", "-c", `sleep 60 & echo "$PPID $$ $!" > "$READY"; wait`},
		"env":     map[string]any{"READY": ready},
	})
	hook := &startedSignal{started: make(chan struct{})}
	run.Logger = slog.New(hook)
	done := make(chan error, 1)
	go func() { done <- fn(context.Background(), run) }()
	pids := atoiFields(t, readReady("the task's pids"), 3)
	sup := mustProcess(t, pids[0], "the supervisor")
	// Only once beat has the command's pid can it kill its group.
	select {
	case <-hook.started:
	case <-time.After(hangGuard):
		t.Fatal("no \"exec started\" record")
	}
	if hook.pids["pid"] != int64(pids[1]) || hook.pids["supervisor_pid"] != int64(sup.pid) {
		t.Errorf("\"exec started\" record has pids %v, want pid %d, supervisor_pid %d", hook.pids, pids[1], sup.pid)
	}
	ps := map[string]process{
		"the shell": mustProcess(t, pids[1], "the shell"),
		"its job":   mustProcess(t, pids[2], "its job"),
	}
	killAfterTest(t, ps)
	if err := syscall.Kill(sup.pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		checkErr(t, err, fmt.Sprintf("exec supervisor (pid %d) ended (signal: killed) without reporting|process group %d was killed", sup.pid, pids[1]))
	case <-time.After(hangGuard):
		t.Fatalf("the run did not return within %v of the supervisor's death", hangGuard)
	}
	if alive := waitGone(ps); len(alive) > 0 {
		t.Errorf("outlived the killed supervisor: %s", strings.Join(alive, ", "))
	}
}

// TestExecSupervisorIgnoresSignals sends the supervisor the signals a
// Ctrl-C or a signal to beat's whole process group would: it must neither
// die nor pass them on, and it writes nothing to the task's output.
func TestExecSupervisorIgnoresSignals(t *testing.T) {
	dir := t.TempDir()
	ready, readReady := fifo(t, dir, "ready")
	goOn := filepath.Join(dir, "go")
	if err := syscall.Mkfifo(goOn, 0o600); err != nil {
		t.Fatal(err)
	}
	// Every signal the supervisor ignores is trapped by the shell, so that
	// one passed on would show in its output.
	fn, run, logs := execRun(t, map[string]any{
		"command": []any{"sh", "-c", `ignored=$(sed -n 's/^SigIgn:[[:space:]]*//p' /proc/self/status)
for s in INT HUP TERM QUIT USR1 USR2 PIPE; do trap "echo got $s" $s; done
echo "$PPID $$ $ignored" > "$READY"
read x < "$GO"
echo "told $x"`},
		"env": map[string]any{"READY": ready, "GO": goOn},
	})
	done := make(chan error, 1)
	go func() { done <- fn(context.Background(), run) }()
	f := strings.Fields(readReady("the task's pids"))
	if len(f) != 3 {
		t.Fatalf("the task wrote %q, want two pids and a signal mask", f)
	}
	pids := atoiFields(t, f[0]+" "+f[1], 2)
	sup := mustProcess(t, pids[0], "the supervisor")
	shell := mustProcess(t, pids[1], "the shell")
	killAfterTest(t, map[string]process{"the shell": shell})

	signals := []syscall.Signal{syscall.SIGINT, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGPIPE}
	// The supervisor catches these; the task must not inherit them ignored,
	// as it would if the supervisor ignored them (signal.Ignore).
	ignored, err := strconv.ParseUint(f[2], 16, 64)
	if err != nil {
		t.Fatalf("SigIgn %q: %v", f[2], err)
	}
	for _, sig := range signals {
		if ignored&(1<<(sig-1)) != 0 {
			t.Errorf("the task starts with %v ignored (SigIgn %s)", sig, f[2])
		}
	}
	for _, sig := range signals {
		if err := syscall.Kill(sup.pid, sig); err != nil {
			t.Fatalf("kill %v: %v", sig, err)
		}
	}
	// Wait until the supervisor has taken every signal (none pending), so
	// that the checks below see their effect, if any.
	deadline := time.Now().Add(deathBound)
	for signalsPending(sup.pid) && !sup.gone() {
		if time.Now().After(deadline) {
			t.Fatalf("signals still pending at the supervisor after %v", deathBound)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if sup.gone() || shell.gone() {
		t.Fatalf("after %v: supervisor gone %v, shell gone %v; want both running", signals, sup.gone(), shell.gone())
	}

	w, err := os.OpenFile(goOn, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.WriteString("ok\n")
	w.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run failed: %v", err)
		}
	case <-time.After(hangGuard):
		t.Fatalf("the run did not return within %v", hangGuard)
	}
	var stdout []string
	for _, r := range logs.find(t, "exec output") {
		if r["stream"] != "stdout" {
			t.Errorf("unexpected %v output: %q", r["stream"], r["output"])
			continue
		}
		stdout = append(stdout, fmt.Sprint(r["output"]))
	}
	if len(stdout) != 1 || stdout[0] != "told ok\n" {
		t.Errorf("stdout = %q, want only the task's %q", stdout, "told ok\n")
	}
}

// signalsPending reports whether pid has signals not yet delivered.
func signalsPending(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(b)) {
		for _, k := range []string{"SigPnd:", "ShdPnd:"} {
			if v, ok := strings.CutPrefix(line, k); ok && strings.Trim(strings.TrimSpace(v), "0") != "" {
				return true
			}
		}
	}
	return false
}

// TestExecStartErrors: a program the kernel refuses to run reads as it
// did when beat ran it directly, and nothing reaches the task's output.
func TestExecStartErrors(t *testing.T) {
	dir := t.TempDir()
	notExecutable := filepath.Join(dir, "plain")
	garbage := filepath.Join(dir, "garbage")
	if err := os.WriteFile(notExecutable, []byte("#!/bin/sh\necho hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(garbage, []byte{0x7f, 'E', 'L', 'F', 0, 1, 2, 3}, 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    map[string]any
		wantErr string
	}{
		{"not executable", map[string]any{"command": []any{notExecutable}},
			fmt.Sprintf(`exec task "backup": start %q: fork/exec %s: permission denied; check that args.command[0] names an installed program`, notExecutable, notExecutable)},
		{"a directory", map[string]any{"command": []any{dir}},
			fmt.Sprintf(`start %q: fork/exec %s: permission denied`, dir, dir)},
		{"not a program", map[string]any{"command": []any{garbage}},
			fmt.Sprintf(`start %q: fork/exec %s: exec format error`, garbage, garbage)},
		{"dir is a file", map[string]any{"command": []any{"true"}, "dir": notExecutable},
			fmt.Sprintf(`start "true": fork/exec %s: not a directory`, mustLookPath(t, "true"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fn, run, logs := execRun(t, tt.args)
			err := fn(context.Background(), run)
			checkErr(t, err, tt.wantErr)
			if recs := logs.find(t, "exec output"); len(recs) != 0 {
				t.Errorf("output logged for a command that never ran: %v", recs)
			}
		})
	}
}

func mustLookPath(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("no %s: %v", name, err)
	}
	return p
}

// TestExecLeaseWatchdog: when the run's lease is not renewed, the
// supervisor kills the command by itself when the lease ends, although the
// run was never cancelled: a beat frozen by SIGSTOP or a paused VM cannot
// cancel it, and another replica may run the task after that. (The e2e
// pause scenario freezes a real beat.)
func TestExecLeaseWatchdog(t *testing.T) {
	dir := t.TempDir()
	ready, readReady := fifo(t, dir, "ready")
	fn, run, _ := execRun(t, map[string]any{
		"command": []any{"sh", "-c", `sleep 60 & echo "$$ $!" > "$READY"; wait`},
		"env":     map[string]any{"READY": ready},
	})
	const lease = 700 * time.Millisecond
	started := time.Now()
	end := started.Add(lease) // never renewed
	ctx := tasks.WithLease(context.Background(), leaseFunc(func() time.Duration { return time.Until(end) }))
	done := make(chan error, 1)
	go func() { done <- fn(ctx, run) }()
	pids := atoiFields(t, readReady("the task's pids"), 2)
	ps := map[string]process{
		"the shell": mustProcess(t, pids[0], "the shell"),
		"its job":   mustProcess(t, pids[1], "its job"),
	}
	killAfterTest(t, ps)
	var err error
	select {
	case err = <-done:
	case <-time.After(hangGuard):
		t.Fatalf("the run was not ended within %v although its lease of %v ran out", hangGuard, lease)
	}
	if took := time.Since(started); took < lease {
		t.Errorf("the run ended %v after it started, before its lease of %v ran out", took, lease)
	}
	checkErr(t, err, "signal: killed")
	for name, p := range ps {
		if !p.gone() {
			t.Errorf("%s (pid %d) outlived the lease", name, p.pid)
		}
	}
}

// leaseFunc is a tasks.Lease whose Left is the function and which never
// changes by itself (no renewals).
type leaseFunc func() time.Duration

func (f leaseFunc) Left() time.Duration    { return f() }
func (leaseFunc) Changed() <-chan struct{} { return nil }
