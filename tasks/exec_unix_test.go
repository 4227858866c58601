//go:build unix

package tasks_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/beatlock/beat/tasks"
)

func execRun(t *testing.T, args map[string]any) (tasks.Func, tasks.Run, *logCapture) {
	t.Helper()
	return builtinRun(t, "exec", args)
}

func TestExecEnvironment(t *testing.T) {
	t.Setenv("BEAT_TEST_INHERITED", "from-parent")
	t.Setenv("BEAT_TASK", "stale value inherited from the parent")
	outFile := filepath.Join(t.TempDir(), "env")
	fn, run, _ := execRun(t, map[string]any{
		"command": []any{"sh", "-c", `printf '%s\n' "$BEAT_TASK" "$BEAT_SCHEDULED_AT" "$BEAT_INSTANCE_ID" "$BEAT_FENCING_TOKEN" "$EXTRA" "$BEAT_TEST_INHERITED" > "$OUT"`},
		"env":     map[string]any{"OUT": outFile, "EXTRA": "with spaces = and equals"},
	})
	if err := fn(context.Background(), run); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(outFile)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"backup", "2026-11-27T13:00:05Z", "pod-a", "42", "with spaces = and equals", "from-parent"}
	lines := strings.Split(strings.TrimSuffix(string(got), "\n"), "\n")
	names := []string{"BEAT_TASK", "BEAT_SCHEDULED_AT", "BEAT_INSTANCE_ID", "BEAT_FENCING_TOKEN", "EXTRA (args.env)", "BEAT_TEST_INHERITED (process env)"}
	if len(lines) != len(want) {
		t.Fatalf("child wrote %q, want %d lines", got, len(want))
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("%s = %q, want %q", names[i], lines[i], want[i])
		}
	}
}

func TestExecDir(t *testing.T) {
	dir := t.TempDir()
	wantDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	fn, run, _ := execRun(t, map[string]any{
		"command": []any{"sh", "-c", "pwd -P > out"},
		"dir":     dir,
	})
	if err := fn(context.Background(), run); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatalf("the child did not run in args.dir: %v", err)
	}
	if strings.TrimSpace(string(got)) != wantDir {
		t.Errorf("child ran in %q, want %q", got, wantDir)
	}
}

func TestExecResult(t *testing.T) {
	tests := []struct {
		name    string
		args    map[string]any
		wantErr string   // "|"-separated parts; empty: success
		notIn   []string // must not appear in the error
	}{
		{name: "exit 0 succeeds", args: map[string]any{"command": []any{"true"}}},
		{
			name:    "non-zero exit fails with code and stderr",
			args:    map[string]any{"command": []any{"sh", "-c", "echo starting; echo 'oops: disk full' >&2; exit 3"}},
			wantErr: `exec task "backup": "sh" exited with code 3; stderr:` + "\noops: disk full",
			notIn:   []string{"starting", "exit status"},
		},
		{
			name:    "silent failure says so",
			args:    map[string]any{"command": []any{"false"}},
			wantErr: `"false" exited with code 1; it wrote nothing to stderr`,
		},
		{
			name:    "only the last stderr lines are quoted",
			args:    map[string]any{"command": []any{"sh", "-c", "i=1; while [ $i -le 100 ]; do echo line$i >&2; i=$((i+1)); done; exit 2"}},
			wantErr: "code 2|\nline91\n|line100",
			notIn:   []string{"line90\n"},
		},
		{
			name:    "killed by a signal",
			args:    map[string]any{"command": []any{"sh", "-c", "kill -9 $$"}},
			wantErr: `"sh" was terminated (signal: killed)`,
		},
		{
			name:    "missing program",
			args:    map[string]any{"command": []any{"beat-test-no-such-program"}},
			wantErr: `start "beat-test-no-such-program"|check that args.command[0] names an installed program`,
		},
		{
			name:    "missing dir",
			args:    map[string]any{"command": []any{"true"}, "dir": "/nonexistent/beat-test"},
			wantErr: "args.dir exists",
		},
		{
			name:    "invalid args fail the run",
			args:    map[string]any{"command": "echo hi"},
			wantErr: `exec task "backup": args.command: got the string "echo hi"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fn, run, _ := execRun(t, tt.args)
			err := fn(context.Background(), run)
			checkErr(t, err, tt.wantErr)
			for _, s := range tt.notIn {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error contains %q: %v", s, err)
				}
			}
		})
	}
}

// The stderr of a failed run is in its error; it is logged apart only when
// the error holds part of it.
func TestExecStderrNotLoggedTwice(t *testing.T) {
	tests := []struct {
		name       string
		script     string
		wantLogged bool
	}{
		{"failed, short stderr: in the error only", "echo 'oops' >&2; exit 3", false},
		{"failed, long stderr: logged too", "i=1; while [ $i -le 100 ]; do echo line$i >&2; i=$((i+1)); done; exit 2", true},
		{"succeeded: logged", "echo 'note' >&2", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fn, run, logs := execRun(t, map[string]any{"command": []any{"sh", "-c", tt.script}})
			_ = fn(context.Background(), run)
			logged := false
			for _, r := range logs.records(t) {
				if r["msg"] == "exec output" && r["stream"] == "stderr" {
					logged = true
				}
			}
			if logged != tt.wantLogged {
				t.Errorf("stderr logged apart: %v; want %v", logged, tt.wantLogged)
			}
		})
	}
}

func TestExecCancelledBeforeStart(t *testing.T) {
	errLost := errors.New("test: lease lost")
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errLost)
	marker := filepath.Join(t.TempDir(), "ran")
	fn, run, _ := execRun(t, map[string]any{"command": []any{"touch", marker}})
	err := fn(ctx, run)
	if !errors.Is(err, errLost) {
		t.Fatalf("err = %v, want it to wrap the context's cause", err)
	}
	if _, statErr := os.Stat(marker); statErr == nil {
		t.Error("the command ran although its context was already cancelled")
	}
}

// TestExecCancelKillsProcessGroup starts a shell that backgrounds a
// grandchild, cancels the run, and checks that the grandchild died too.
func TestExecCancelKillsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	ready := filepath.Join(dir, "ready")
	if err := syscall.Mkfifo(ready, 0o600); err != nil {
		t.Skipf("cannot make a FIFO to synchronise with the child: %v", err)
	}
	// The child reports the grandchild's pid through the FIFO; the read
	// returns when the shell has written it, so no polling is needed.
	pidc := make(chan []byte, 1)
	go func() {
		b, _ := os.ReadFile(ready)
		pidc <- b
	}()
	t.Cleanup(func() {
		// Unblock the reader if the child never opened the FIFO.
		if f, err := os.OpenFile(ready, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	})

	errLost := errors.New("test: lease lost")
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	fn, run, _ := execRun(t, map[string]any{
		"command": []any{"sh", "-c", `sleep 600 & echo $! > "$READY"; wait`},
		"env":     map[string]any{"READY": ready},
	})
	done := make(chan error, 1)
	go func() { done <- fn(ctx, run) }()

	var pid int
	select {
	case b := <-pidc:
		var err error
		if pid, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
			t.Fatalf("child reported pid %q: %v", b, err)
		}
	case err := <-done:
		t.Fatalf("run ended before it was cancelled: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("child did not report its grandchild's pid within 30s")
	}

	cancelled := time.Now()
	cancel(errLost)
	// Generous for a loaded machine, yet well below both the grandchild's
	// sleep and what a hung pipe would cost.
	const returnBound = 20 * time.Second
	select {
	case err := <-done:
		if !errors.Is(err, errLost) {
			t.Errorf("err = %v, want it to wrap the cancellation cause", err)
		}
		checkErr(t, err, "process group killed")
	case <-time.After(returnBound):
		t.Fatalf("run did not return within %v of cancellation", returnBound)
	}
	t.Logf("run returned %v after cancellation", time.Since(cancelled))

	deadline := time.Now().Add(10 * time.Second)
	for !processGone(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("grandchild %d still alive 10s after the run returned; the process group was not killed", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// processGone reports whether pid has exited. A killed orphan stays a zombie
// until its new parent reaps it, and some container inits never do, so a
// zombie counts as gone.
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	_, after, ok := bytes.Cut(stat, []byte(") "))
	return ok && len(after) > 0 && after[0] == 'Z'
}

func TestExecOutputBounded(t *testing.T) {
	const line = "0123456789abcdef\n"
	const limit = 64 << 10
	big := strings.Repeat(line, (1<<20)/len(line)+1)[:1<<20]
	tests := []struct {
		name        string
		command     []any
		stream      string
		full        string // what the child wrote to stream
		wantDropped bool
	}{
		{"small stdout kept whole", []any{"sh", "-c", "echo hello; echo world"}, "stdout", "hello\nworld\n", false},
		{"small stderr kept whole", []any{"sh", "-c", "echo problem >&2"}, "stderr", "problem\n", false},
		{"1 MiB stdout bounded", []any{"sh", "-c", "yes 0123456789abcdef | head -c 1048576"}, "stdout", big, true},
		{"1 MiB stderr bounded", []any{"sh", "-c", "yes 0123456789abcdef | head -c 1048576 >&2"}, "stderr", big, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fn, run, logs := execRun(t, map[string]any{"command": tt.command})
			if err := fn(context.Background(), run); err != nil {
				t.Fatal(err)
			}
			var rec map[string]any
			for _, r := range logs.find(t, "exec output") {
				if r["stream"] == tt.stream {
					if rec != nil {
						t.Fatalf("two %s records", tt.stream)
					}
					rec = r
				}
			}
			if rec == nil {
				t.Fatalf("no %q record for %s; got %v", "exec output", tt.stream, logs.records(t))
			}
			output, _ := rec["output"].(string)
			dropped, _ := rec["dropped_bytes"].(float64)
			if len(output) > limit {
				t.Errorf("kept %d bytes, want at most %d", len(output), limit)
			}
			if !strings.HasSuffix(tt.full, output) {
				t.Errorf("kept output is not the end of what the child wrote: %.80q…", output)
			}
			if int(dropped)+len(output) != len(tt.full) {
				t.Errorf("dropped_bytes %v + kept %d != %d written", dropped, len(output), len(tt.full))
			}
			if tt.wantDropped {
				if dropped == 0 || len(output) < limit-len(line) {
					t.Errorf("kept %d bytes, dropped %v; want about %d kept and the rest counted", len(output), dropped, limit)
				}
				if !strings.HasPrefix(output, line) {
					t.Errorf("kept output starts mid-line: %.40q", output)
				}
			} else if dropped != 0 || output != tt.full {
				t.Errorf("output %q (dropped %v), want %q whole", output, dropped, tt.full)
			}
		})
	}
}
