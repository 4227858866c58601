package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/beatlock/beat/cli"
)

// writeConfig writes a schedule file into a fresh directory and returns
// its path.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "schedule.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// waitFor polls cond every 20ms until it holds or timeout passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// inProcess is `beat run` called in a goroutine, with its signals and logs
// under the test's control.
type inProcess struct {
	signals chan os.Signal
	stdout  *syncBuffer
	logs    *syncBuffer // stderr: JSON log records
	done    chan int    // Main's exit code
}

// startRun calls cli.Main(run args...) in a goroutine. When the test ends
// it cancels Main's context and waits (bounded) for Main to return, so no
// scheduler outlives its test.
func startRun(t *testing.T, env []string, args ...string) *inProcess {
	t.Helper()
	p := &inProcess{signals: make(chan os.Signal, 2), stdout: &syncBuffer{}, logs: &syncBuffer{}, done: make(chan int, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		p.done <- cli.Main(ctx, append([]string{"run"}, args...),
			cli.WithOutput(p.stdout, p.logs), cli.WithLookupEnv(fakeEnv(env...)), cli.WithSignals(p.signals))
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-p.done:
			p.done <- code
		case <-time.After(30 * time.Second):
			t.Errorf("Main did not return within 30s of its context's cancellation")
		}
	})
	return p
}

// wait waits up to timeout for Main to return, and returns its exit code.
func (p *inProcess) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case code := <-p.done:
		p.done <- code // for the cleanup
		return code
	case <-time.After(timeout):
		t.Fatalf("Main did not return within %v; logs:\n%s", timeout, p.logs)
		return -1
	}
}

// records parses the JSON log, one record a line. A line that is not a
// JSON object fails the test.
func (p *inProcess) records(t *testing.T) []map[string]any {
	t.Helper()
	return parseRecords(t, p.logs.String())
}

func parseRecords(t *testing.T, text string) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for line := range strings.Lines(text) {
		if !strings.HasSuffix(line, "\n") {
			break // a record being written right now
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not a JSON record: %v\n%s", err, line)
		}
		recs = append(recs, rec)
	}
	return recs
}

// withMsg returns the records whose msg starts with prefix.
func withMsg(recs []map[string]any, prefix string) []map[string]any {
	var out []map[string]any
	for _, r := range recs {
		if m, _ := r["msg"].(string); strings.HasPrefix(m, prefix) {
			out = append(out, r)
		}
	}
	return out
}

// countMsg counts the complete records whose msg starts with prefix,
// without failing on a half-written last line.
func (p *inProcess) countMsg(prefix string) int {
	n := 0
	for line := range strings.Lines(p.logs.String()) {
		var rec struct{ Msg string }
		if json.Unmarshal([]byte(line), &rec) == nil && strings.HasPrefix(rec.Msg, prefix) {
			n++
		}
	}
	return n
}

func TestRunMemoryBackend(t *testing.T) {
	const id = "test-replica-1"
	path := writeConfig(t, `
shutdown_timeout: 5s
lock:
  backend: memory
  ttl: 3s
  renew_interval: 1s
tasks:
  - name: say-hello
    schedule: "@every 1s"
    task: log
    args: {message: "hello from the test"}
`)
	p := startRun(t, []string{"BEAT_INSTANCE_ID", id}, "--config", path, "--log-format", "json")
	if !waitFor(10*time.Second, func() bool { return p.countMsg("run succeeded") > 0 }) {
		t.Fatalf("no \"run succeeded\" record within 10s; logs:\n%s", p.logs)
	}
	p.signals <- syscall.SIGTERM
	if code := p.wait(t, 10*time.Second); code != cli.ExitOK {
		t.Errorf("exit code %d, want %d", code, cli.ExitOK)
	}

	recs := p.records(t)
	if len(recs) == 0 {
		t.Fatal("no log records")
	}
	for _, r := range recs {
		if r["instance"] != id {
			t.Errorf("record without instance %q: %v", id, r)
		}
		if _, ok := r["time"]; !ok {
			t.Errorf("record without time: %v", r)
		}
	}
	for _, msg := range []string{"beat starting", "scheduler started", "run succeeded", "shutting down", "scheduler stopped"} {
		if len(withMsg(recs, msg)) == 0 {
			t.Errorf("no %q record; logs:\n%s", msg, p.logs)
		}
	}
	// The task's own line, written through the run's logger, names the task.
	hello := withMsg(recs, "hello from the test")
	if len(hello) == 0 {
		t.Errorf("the log task's message was not logged; logs:\n%s", p.logs)
	}
	for _, r := range hello {
		if r["task"] != "say-hello" {
			t.Errorf("task record without task=say-hello: %v", r)
		}
	}
	for _, r := range withMsg(recs, "shutting down") {
		if r["signal"] != "terminated" {
			t.Errorf("shutdown record names signal %v, want terminated: %v", r["signal"], r)
		}
	}
	// "scheduler stopped" is the last word: nothing is logged after it.
	if last := recs[len(recs)-1]; last["msg"] != "scheduler stopped" {
		t.Errorf("last record is %v, want \"scheduler stopped\"", last)
	}
	if p.stdout.String() != "" {
		t.Errorf("run wrote to stdout: %q", p.stdout)
	}
}

// TestRunStopsOnContext shows that a program embedding the CLI can stop
// `run` by cancelling Main's context instead of sending a signal.
func TestRunStopsOnContext(t *testing.T) {
	path := writeConfig(t, `
tasks:
  - name: say-hello
    schedule: "@every 1s"
    task: log
    args: {message: "hello"}
`)
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- cli.Main(ctx, []string{"run", "--config", path}, cli.WithOutput(&bytes.Buffer{}, logs),
			cli.WithLookupEnv(fakeEnv()), cli.WithSignals(make(chan os.Signal)))
	}()
	if !waitFor(10*time.Second, func() bool { return strings.Contains(logs.String(), "scheduler started") }) {
		t.Fatalf("not started within 10s; logs:\n%s", logs)
	}
	cancel()
	select {
	case code := <-done:
		if code != cli.ExitOK {
			t.Errorf("exit code %d, want 0", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("Main did not return within 10s of the cancellation; logs:\n%s", logs)
	}
	if !strings.Contains(logs.String(), "scheduler stopped") {
		t.Errorf("no \"scheduler stopped\" line; logs:\n%s", logs)
	}
	// The text format (the default) is used.
	if !strings.Contains(logs.String(), "level=INFO msg=\"beat starting\"") {
		t.Errorf("not the text log format; logs:\n%s", logs)
	}
}

func TestRunInvalidConfig(t *testing.T) {
	r := runMain(t, []string{"run", "--config", "../config/testdata/ttl_renew.yaml"}, nil)
	if r.code != cli.ExitFailure || !strings.Contains(r.stderr, "ttl_renew.yaml:3: ") {
		t.Errorf("want exit 1 and the file's problems, got %s", r)
	}
}

// freeAddr returns a local TCP address that nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestRunStoreUnreachable starts `run` against a Redis address where no
// server listens: it keeps going, skipping the ticks it cannot claim, and
// shuts down cleanly on SIGTERM.
func TestRunStoreUnreachable(t *testing.T) {
	url := "redis://" + freeAddr(t) + "/0"
	path := writeConfig(t, fmt.Sprintf(`
shutdown_timeout: 3s
lock:
  backend: redis
  ttl: 5s
  renew_interval: 1s
  redis:
    url: %q
tasks:
  - name: say-hello
    schedule: "@every 1s"
    task: log
    args: {message: "must not run"}
`, url))
	p := startRun(t, nil, "--config", path, "--log-format", "json")
	// Two skipped ticks show that the scheduler lives on after the first.
	if !waitFor(15*time.Second, func() bool { return p.countMsg("tick skipped") >= 2 }) {
		t.Fatalf("fewer than 2 \"tick skipped\" records within 15s; logs:\n%s", p.logs)
	}
	p.signals <- syscall.SIGTERM
	if code := p.wait(t, 15*time.Second); code != cli.ExitOK {
		t.Errorf("exit code %d, want %d", code, cli.ExitOK)
	}

	recs := p.records(t)
	if len(withMsg(recs, "the lock store does not answer yet")) != 1 {
		t.Errorf("want one start-up warning that the store does not answer; logs:\n%s", p.logs)
	}
	ticks := map[any]bool{}
	for _, r := range withMsg(recs, "tick skipped") {
		if r["task"] != "say-hello" || r["level"] != "ERROR" || !strings.Contains(fmt.Sprint(r["err"]), "redislock") {
			t.Errorf("skipped-tick record lacks task, level ERROR or the store's error: %v", r)
		}
		ticks[r["tick"]] = true
	}
	if len(ticks) < 2 {
		t.Errorf("skipped-tick records name %d distinct ticks, want at least 2: %v", len(ticks), ticks)
	}
	if n := len(withMsg(recs, "must not run")) + len(withMsg(recs, "run succeeded")); n != 0 {
		t.Errorf("the task ran %d times without a lock", n)
	}
	// It never held a lock, so its stop has nothing to release: no error
	// about a release that could not reach the store.
	if n := len(withMsg(recs, "shutdown incomplete")) + len(withMsg(recs, "releasing this instance's locks failed")); n != 0 {
		t.Errorf("a stop that held no lock reported a failed release; logs:\n%s", p.logs)
	}
	for _, r := range recs {
		if r["instance"] == nil || r["instance"] == "" {
			t.Errorf("record without instance: %v", r)
		}
	}
}
