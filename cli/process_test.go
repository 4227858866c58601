//go:build linux

package cli_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/beatlock/beat/internal/beatbin"
	"github.com/beatlock/beat/internal/redistest"
)

// The beat binary, built once by the first test that needs it into a
// temporary directory that TestMain removes.
var (
	buildOnce sync.Once
	buildDir  string
	buildBin  string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// beatBinary builds cmd/beat (once per test binary) and returns its path.
func beatBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "beat-cli-test-"); buildErr != nil {
			return
		}
		buildBin = filepath.Join(buildDir, "beat")
		buildErr = beatbin.Build(buildBin)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

// beatProcess is a running `beat run` process.
type beatProcess struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan struct{} // closed when it has exited; then err is set
	err    error
}

// startBeat starts `beat run --config path --log-format json` with
// BEAT_INSTANCE_ID=id and no other BEAT_ variable of the test's own
// environment, after opts have changed the command. It is killed, if still
// running, when the test ends.
func startBeat(t *testing.T, path, id string, opts ...func(*exec.Cmd)) *beatProcess {
	t.Helper()
	bin := beatBinary(t)
	p := &beatProcess{stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, "run", "--config", path, "--log-format", "json")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BEAT_") {
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	p.cmd.Env = append(p.cmd.Env, "BEAT_INSTANCE_ID="+id)
	p.cmd.Stdout, p.cmd.Stderr = p.stderr, p.stderr
	for _, o := range opts {
		o(p.cmd)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("beat's output:\n%s", p.stderr)
		}
	})
	return p
}

// signal sends sig to the process and returns when it was sent.
func (p *beatProcess) signal(t *testing.T, sig os.Signal) time.Time {
	t.Helper()
	sent := time.Now()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("send %v: %v", sig, err)
	}
	return sent
}

// wait waits up to timeout for the process to exit and returns its exit
// code and when it was seen to exit.
func (p *beatProcess) wait(t *testing.T, timeout time.Duration) (int, time.Time) {
	t.Helper()
	select {
	case <-p.done:
		exited := time.Now()
		var exitErr *exec.ExitError
		if p.err != nil && !errors.As(p.err, &exitErr) {
			t.Fatalf("wait: %v", p.err)
		}
		return p.cmd.ProcessState.ExitCode(), exited
	case <-time.After(timeout):
		t.Fatalf("beat did not exit within %v", timeout)
		return -1, time.Time{}
	}
}

// liveGroupMembers lists the processes of process group pgid that are
// still alive (zombies, dead but not yet reaped, do not count).
func liveGroupMembers(t *testing.T, pgid int) []string {
	t.Helper()
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var live []string
	for _, d := range dirs {
		if _, err := strconv.Atoi(d.Name()); err != nil {
			continue
		}
		head, f, ok := liveStat(d.Name())
		if ok && len(f) >= 3 && f[2] == strconv.Itoa(pgid) {
			live = append(live, head+" state "+f[0])
		}
	}
	return live
}

// liveStat reads /proc/<pid>/stat: its "pid (comm)" head and the fields
// after it (state ppid pgrp ...; comm may hold spaces and parens). ok is
// false when the process is gone or a zombie (dead, not yet reaped).
func liveStat(pid string) (head string, fields []string, ok bool) {
	b, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
	if err != nil {
		return "", nil, false // exited meanwhile
	}
	s := string(b)
	end := strings.LastIndexByte(s, ')') + 1
	fields = strings.Fields(s[end:])
	if len(fields) == 0 || fields[0] == "Z" || fields[0] == "X" {
		return "", nil, false
	}
	return strings.TrimSpace(s[:end]), fields, true
}

// keysHeldBy lists the keys under prefix that name instance id: string
// keys (locks) whose value is id or one of its owners ("<id>/<session>"),
// and hashes with such a value, but for the record of the last run.
func keysHeldBy(t *testing.T, c *redis.Client, prefix, id string) []string {
	t.Helper()
	names := func(v string) bool { return v == id || strings.HasPrefix(v, id+"/") }
	ctx := context.Background()
	var held []string
	iter := c.Scan(ctx, 0, redisGlobEscape(prefix)+"*", 100).Iterator()
	for iter.Next(ctx) {
		key := iter.Val()
		typ, err := c.Type(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		switch typ {
		case "string":
			if v, err := c.Get(ctx, key).Result(); err == nil && names(v) {
				held = append(held, key)
			}
		case "hash":
			fields, err := c.HGetAll(ctx, key).Result()
			if err != nil {
				t.Fatal(err)
			}
			for f, v := range fields {
				// run_owner records who ran the last run: history, not a hold.
				if f != "run_owner" && names(v) {
					held = append(held, key)
				}
			}
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return held
}

// redisGlobEscape escapes the glob characters of s for SCAN MATCH; the
// test prefixes hold braces, which are not special, but be safe.
func redisGlobEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`, `]`, `\]`)
	return r.Replace(s)
}

// sleeperSetup is a beat process running a task that records its shell's
// pid, says "started" and sleeps 30s, under Forbid, on real Redis.
type sleeperSetup struct {
	redis      *redis.Client
	prefix, id string
	owner      string // the process's lock owner: "<id>/<session>"
	started    string // the file the task appends "started" to
	pgid       int    // the task's process group (its shell's pid)
	proc       *beatProcess
}

const sleeperTask = "sleeper"

func startSleeper(t *testing.T, shutdownTimeout time.Duration) *sleeperSetup {
	t.Helper()
	c := redistest.Client(t)
	s := &sleeperSetup{redis: c, prefix: redistest.Prefix(t, c), id: "cli-test-" + uuid.NewString()}
	dir := t.TempDir()
	s.started = filepath.Join(dir, "started")
	pidFile := filepath.Join(dir, "pid")
	script := fmt.Sprintf("echo $$ > '%s'; echo started >> '%s'; sleep 30", pidFile, s.started)
	path := writeConfig(t, fmt.Sprintf(`
shutdown_timeout: %s
lock:
  backend: redis
  ttl: 5s
  renew_interval: 1s
  redis:
    url: %q
    key_prefix: %q
tasks:
  - name: %s
    schedule: "@every 1s"
    task: exec
    args:
      command: [sh, -c, %q]
    concurrency_policy: Forbid
`, shutdownTimeout, redistest.URL(), s.prefix, sleeperTask, script))
	beatBinary(t) // build before starting the clock of any wait below
	s.proc = startBeat(t, path, s.id)
	// Whatever happens below, the task's processes do not outlive the test.
	t.Cleanup(func() {
		if b, err := os.ReadFile(pidFile); err == nil {
			if pgid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pgid > 1 {
				syscall.Kill(-pgid, syscall.SIGKILL)
			}
		}
	})

	if !waitFor(20*time.Second, func() bool {
		b, _ := os.ReadFile(s.started)
		return strings.Contains(string(b), "started")
	}) {
		t.Fatalf("the task did not start within 20s; beat's output:\n%s", s.proc.stderr)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	if s.pgid, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil || s.pgid <= 1 {
		t.Fatalf("pid file holds %q", b)
	}
	// exec gives the task a process group of its own, led by the shell.
	if pgid, err := syscall.Getpgid(s.pgid); err != nil || pgid != s.pgid {
		t.Errorf("the task's shell %d is in process group %d (%v), want a group of its own", s.pgid, pgid, err)
	}

	// While the task runs, its lock holds this process's owner (the
	// instance id and the process's session), and the owner index lists it.
	for _, r := range withMsg(parseRecords(t, s.proc.stderr.String()), "scheduler started") {
		s.owner, _ = r["lock_owner"].(string)
	}
	if !strings.HasPrefix(s.owner, s.id+"/") {
		t.Fatalf("lock_owner %q in \"scheduler started\"; want %q and a session", s.owner, s.id+"/")
	}
	ctx := context.Background()
	lockKey := s.prefix + "lock:" + sleeperTask
	if owner, err := c.Get(ctx, lockKey).Result(); err != nil || owner != s.owner {
		t.Fatalf("GET %s = %q, %v; want the process's owner %q", lockKey, owner, err, s.owner)
	}
	if n, err := c.Exists(ctx, s.ownerKey()).Result(); err != nil || n != 1 {
		t.Errorf("owner index %s: EXISTS = %d, %v; want 1 while the task runs", s.ownerKey(), n, err)
	}
	return s
}

func (s *sleeperSetup) ownerKey() string { return s.prefix + "owner:" + s.owner }

// checkCleanExit checks what must hold after any shutdown: the task's
// processes are gone, no key names this instance, the task ran once, and
// every log record is JSON carrying the instance.
func (s *sleeperSetup) checkCleanExit(t *testing.T) {
	t.Helper()
	// A killed group's members are reaped by their parents (or init)
	// shortly after; allow a moment for that.
	if !waitFor(2*time.Second, func() bool { return len(liveGroupMembers(t, s.pgid)) == 0 }) {
		t.Errorf("the task's process group %d still has live members after beat exited: %v", s.pgid, liveGroupMembers(t, s.pgid))
	}
	if held := keysHeldBy(t, s.redis, s.prefix, s.id); len(held) != 0 {
		t.Errorf("after exit, keys still name instance %s: %v", s.id, held)
	}
	if n, err := s.redis.Exists(context.Background(), s.ownerKey()).Result(); err != nil || n != 0 {
		t.Errorf("after exit, owner index %s: EXISTS = %d, %v; want 0", s.ownerKey(), n, err)
	}
	b, err := os.ReadFile(s.started)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "started"); n != 1 {
		t.Errorf("the task started %d times, want once (Forbid keeps later ticks out)", n)
	}
	recs := parseRecords(t, s.proc.stderr.String())
	for _, r := range recs {
		if r["instance"] != s.id {
			t.Errorf("record without instance %q: %v", s.id, r)
		}
	}
	if len(withMsg(recs, "scheduler stopped")) == 0 {
		t.Errorf("no \"scheduler stopped\" record")
	}
}

// TestProcessSIGTERM: on SIGTERM, beat waits shutdown_timeout for the
// running task, then kills its process group, releases its locks and exits 0.
func TestProcessSIGTERM(t *testing.T) {
	const shutdownTimeout = 3 * time.Second
	s := startSleeper(t, shutdownTimeout)
	// Let a tick pass while the run holds the lock: under Forbid it is
	// skipped, and checkCleanExit checks that the task started only once.
	if !waitFor(5*time.Second, func() bool {
		return strings.Contains(s.proc.stderr.String(), "tick skipped: the previous run still holds the lock")
	}) {
		t.Errorf("no tick was skipped as busy within 5s while the task held its lock")
	}

	sent := s.proc.signal(t, syscall.SIGTERM)
	code, exited := s.proc.wait(t, shutdownTimeout+20*time.Second)
	took := exited.Sub(sent)
	t.Logf("exited %v after SIGTERM (shutdown_timeout %v)", took.Round(time.Millisecond), shutdownTimeout)
	if code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	// The task ignores nothing but runs 30s: beat must wait the whole
	// shutdown_timeout for it, then cancel it, and not take much longer.
	if took < shutdownTimeout {
		t.Errorf("exited %v after SIGTERM: it did not wait shutdown_timeout (%v) for the running task", took, shutdownTimeout)
	}
	if took > shutdownTimeout+time.Second {
		t.Errorf("exited %v after SIGTERM, more than shutdown_timeout (%v) + 1s", took, shutdownTimeout)
	}
	s.checkCleanExit(t)
	recs := parseRecords(t, s.proc.stderr.String())
	if len(withMsg(recs, "shutdown timeout: cancelling the runs still going")) != 1 {
		t.Errorf("want one record that the shutdown timeout cancelled the run")
	}
	failed := withMsg(recs, "run failed")
	if len(failed) != 1 || !strings.Contains(fmt.Sprint(failed[0]["err"]), "process group killed") {
		t.Errorf("want one \"run failed\" record saying the process group was killed, got %v", failed)
	}
}

// TestProcessSecondSIGTERM: a second SIGTERM during the shutdown cancels the
// running task at once; beat exits 0 well before shutdown_timeout, with
// its locks released and its task's processes gone.
func TestProcessSecondSIGTERM(t *testing.T) {
	const shutdownTimeout = 10 * time.Second
	s := startSleeper(t, shutdownTimeout)

	first := s.proc.signal(t, syscall.SIGTERM)
	time.Sleep(200 * time.Millisecond)
	select {
	case <-s.proc.done:
		t.Fatalf("beat exited on the first SIGTERM, before its task finished")
	default:
	}
	second := s.proc.signal(t, syscall.SIGTERM)
	code, exited := s.proc.wait(t, shutdownTimeout+20*time.Second)
	t.Logf("exited %v after the second SIGTERM, %v after the first (shutdown_timeout %v)",
		exited.Sub(second).Round(time.Millisecond), exited.Sub(first).Round(time.Millisecond), shutdownTimeout)
	if code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	if took := exited.Sub(first); took > shutdownTimeout/2 {
		t.Errorf("exited %v after the first SIGTERM; a second SIGTERM must end the wait for shutdown_timeout (%v)", took, shutdownTimeout)
	}
	s.checkCleanExit(t)
	recs := parseRecords(t, s.proc.stderr.String())
	if len(withMsg(recs, "second signal")) != 1 {
		t.Errorf("want one record of the second signal")
	}
}

// TestProcessJSONLogsOnly: with --log-format json every line beat writes
// is a JSON record, which log shippers parse, even when the Redis client
// has things of its own to say (here: that it cannot dial the server).
func TestProcessJSONLogsOnly(t *testing.T) {
	path := writeConfig(t, fmt.Sprintf(`
lock:
  backend: redis
  redis:
    url: "redis://%s/0"
tasks:
  - name: hello
    schedule: "@every 1s"
    task: log
    args: {message: "hello"}
`, freeAddr(t)))
	p := startBeat(t, path, "json-only")
	if !waitFor(15*time.Second, func() bool { return strings.Contains(p.stderr.String(), "tick skipped") }) {
		t.Fatalf("no tick skipped within 15s")
	}
	p.signal(t, syscall.SIGINT)
	if code, _ := p.wait(t, 15*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGINT, want 0", code)
	}
	for line := range strings.Lines(p.stderr.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("not a JSON record: %q", line)
		} else if rec["instance"] != "json-only" {
			t.Errorf("record without the instance: %q", line)
		}
	}
}
