package e2e

// The watcher: which processes of the recorded runs are alive, and when
// each run was last seen so. A run killed without an end record (its
// replica SIGKILLed, its lease lost) gets its death from here, to within a
// poll interval, so that the Judge can tell whether it overlapped the next
// run of its task or outlived its replica.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// pollEvery is how often the watcher looks at /proc.
const pollEvery = 50 * time.Millisecond

// procEntry is one live process: its pid and start time (in clock ticks
// since boot) name it even when the pid is recycled; pgrp is its process
// group.
type procEntry struct {
	id   procID
	pgrp int
}

type procID struct {
	pid   int
	start uint64
}

// readProcs lists the live processes; zombies (dead, not yet reaped) are
// not alive.
func readProcs() ([]procEntry, error) {
	d, err := os.Open("/proc")
	if err != nil {
		return nil, err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return nil, err
	}
	out := make([]procEntry, 0, len(names))
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + name + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		if p, ok := parseStat(pid, b); ok {
			out = append(out, p)
		}
	}
	return out, nil
}

// parseStat reads /proc/<pid>/stat: "pid (comm) state ppid pgrp session tty
// tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime
// priority nice threads itrealvalue starttime ...". ok is false for a
// zombie or dead process, or what cannot be parsed.
func parseStat(pid int, b []byte) (procEntry, bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procEntry{}, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" || f[0] == "x" {
		return procEntry{}, false
	}
	pgrp, err1 := strconv.Atoi(f[2])
	start, err2 := strconv.ParseUint(f[19], 10, 64)
	if err1 != nil || err2 != nil {
		return procEntry{}, false
	}
	return procEntry{id: procID{pid, start}, pgrp: pgrp}, true
}

// scanner makes one pass over /proc every pollEvery for all watchers of the
// test binary at once (scenarios run in parallel), while there are any.
var scanner = &procScanner{subs: map[*watcher]bool{}}

type procScanner struct {
	mu      sync.Mutex
	subs    map[*watcher]bool
	running bool
}

func (s *procScanner) add(w *watcher) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subs[w] = true
	if !s.running {
		s.running = true
		go s.loop()
	}
}

func (s *procScanner) remove(w *watcher) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.subs, w)
}

func (s *procScanner) loop() {
	for {
		s.mu.Lock()
		if len(s.subs) == 0 {
			s.running = false
			s.mu.Unlock()
			return
		}
		ws := make([]*watcher, 0, len(s.subs))
		for w := range s.subs {
			ws = append(ws, w)
		}
		s.mu.Unlock()
		begun := time.Now().Round(0)
		ps, err := readProcs()
		done := time.Now().Round(0)
		for _, w := range ws {
			w.pass(begun, done, ps, err)
		}
		time.Sleep(time.Until(begun.Add(pollEvery)))
	}
}

// watcher follows one record file: every run it records, the processes of
// the run's group (those whose environment names this file, the run's task
// and its fencing token, so that a recycled pid or process group is never
// taken for a run), and when the watcher last saw one of them alive.
type watcher struct {
	file string

	mu      sync.Mutex
	cond    *sync.Cond // signalled after each pass
	off     int64      // how far the record file has been read
	partial []byte     // a line not yet complete
	lives   map[runKey]*life
	byGroup map[int][]*life // by process group (the record's pid)
	active  []*life         // lives that may still have processes
	envs    map[procID]procIdentity
	err     error
	stopped bool
	// passes counts the passes over /proc; lastBegun is when the latest
	// began; maxGap is the longest time between the starts of two passes,
	// the watcher's true resolution.
	passes    int
	lastBegun time.Time
	maxGap    time.Duration
}

// life is what the watcher knows of one run.
type life struct {
	key        runKey
	start      time.Time // its start record
	seen, gone time.Time // see Run.Seen and Run.Gone
	members    []procID  // its processes found in the latest pass
	absent     int       // passes in a row that found none
}

// procIdentity is what a process's environment says it runs.
type procIdentity struct {
	file, task string
	token      uint64
}

// watchRuns starts watching the runs recorded in file.
func watchRuns(file string) *watcher {
	w := &watcher{file: file, lives: map[runKey]*life{}, byGroup: map[int][]*life{}, envs: map[procID]procIdentity{}}
	w.cond = sync.NewCond(&w.mu)
	scanner.add(w)
	return w
}

// stop ends the watching; what it knows stays readable.
func (w *watcher) stop() {
	scanner.remove(w)
	w.mu.Lock()
	w.stopped = true
	w.cond.Broadcast()
	w.mu.Unlock()
}

// settled is how many passes in a row must find none of a run's processes
// before the watcher stops looking for them (a grandchild can be missed by
// one pass: forked after /proc was listed, its parent gone before its stat
// was read).
const settled = 5

// pass takes in one pass over /proc that began at begun and ended at done.
func (w *watcher) pass(begun, done time.Time, ps []procEntry, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	defer w.cond.Broadcast()
	if w.stopped {
		return
	}
	if err != nil {
		w.err = errors.Join(w.err, err)
		return
	}
	w.readRecords()
	if !w.lastBegun.IsZero() {
		w.maxGap = max(w.maxGap, begun.Sub(w.lastBegun))
	}
	w.passes++
	w.lastBegun = begun

	present := map[*life][]procID{}
	live := make(map[procID]bool, len(ps))
	for _, p := range ps {
		live[p.id] = true
		cands := w.byGroup[p.pgrp]
		if len(cands) == 0 {
			continue
		}
		id, ok := w.identity(p.id)
		if !ok || id.file != w.file {
			continue
		}
		for _, l := range cands {
			if l.key.task == id.task && l.key.token == id.token {
				present[l] = append(present[l], p.id)
			}
		}
	}
	for id := range w.envs {
		if !live[id] {
			delete(w.envs, id)
		}
	}
	keep := w.active[:0]
	for _, l := range w.active {
		switch members := present[l]; {
		case len(members) > 0:
			// A process of the group lives, and the group has lived
			// without a break since its start record (a member forks the
			// next before it exits): it was alive when the pass began, or
			// when it wrote its start record if that came later.
			l.seen = later(l.seen, later(begun, l.start))
			l.gone, l.members, l.absent = time.Time{}, members, 0
		case l.start.Before(begun):
			// None found by a pass that began after the run started.
			if l.gone.IsZero() {
				l.gone = done
			}
			l.members = nil
			l.absent++
		}
		if l.absent < settled {
			keep = append(keep, l)
		}
	}
	w.active = keep
}

// identity reads (once per process) what its environment says it runs;
// ok is false for a process of no run.
func (w *watcher) identity(p procID) (procIdentity, bool) {
	if id, ok := w.envs[p]; ok {
		return id, id.file != ""
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", p.pid))
	if err != nil {
		return procIdentity{}, false // gone; do not remember
	}
	var id procIdentity
	var token string
	for kv := range bytes.SplitSeq(b, []byte{0}) {
		k, v, _ := strings.Cut(string(kv), "=")
		switch k {
		case "BEAT_E2E_FILE":
			id.file = v
		case "BEAT_TASK":
			id.task = v
		case "BEAT_FENCING_TOKEN":
			token = v
		}
	}
	if id.token, err = strconv.ParseUint(token, 10, 64); err != nil {
		id = procIdentity{}
	}
	w.envs[p] = id
	return id, id.file != ""
}

// readRecords reads the start records appended since the last pass.
func (w *watcher) readRecords() {
	f, err := os.Open(w.file)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			w.err = errors.Join(w.err, err)
		}
		return
	}
	defer f.Close()
	if _, err := f.Seek(w.off, io.SeekStart); err != nil {
		w.err = errors.Join(w.err, err)
		return
	}
	b, err := io.ReadAll(f)
	if err != nil {
		w.err = errors.Join(w.err, err)
		return
	}
	w.off += int64(len(b))
	b = append(w.partial, b...)
	last := bytes.LastIndexByte(b, '\n')
	w.partial = append([]byte(nil), b[last+1:]...)
	sc := bufio.NewScanner(bytes.NewReader(b[:last+1]))
	for sc.Scan() {
		rec, err := parseRecord(sc.Text())
		if err != nil {
			w.err = errors.Join(w.err, fmt.Errorf("%s: %w", w.file, err))
			continue
		}
		k := rec.run.key()
		if rec.kind != "start" || w.lives[k] != nil {
			continue
		}
		l := &life{key: k, start: rec.at, seen: rec.at}
		w.lives[k] = l
		w.byGroup[k.pid] = append(w.byGroup[k.pid], l)
		w.active = append(w.active, l)
	}
}

// sync waits for a pass that began after now, so that what the watcher
// says covers every run recorded so far and every process alive now.
func (w *watcher) sync() {
	at := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	for !w.stopped && !w.lastBegun.After(at) {
		w.cond.Wait()
	}
}

// fill sets Seen and Gone of the runs the watcher knows.
func (w *watcher) fill(runs []Run) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := range runs {
		if l := w.lives[runs[i].key()]; l != nil {
			runs[i].Seen, runs[i].Gone = l.seen, l.gone
		}
	}
}

// stats says how the watching went: passes, the longest gap between them,
// and any error.
func (w *watcher) stats() (passes int, maxGap time.Duration, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.passes, w.maxGap, w.err
}

// killAlive SIGKILLs every process of a run that the latest pass found
// alive, after checking that the pid still names the same process. It
// returns the runs that still had processes.
func (w *watcher) killAlive() []runKey {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []runKey
	for _, l := range w.active {
		if len(l.members) == 0 {
			continue
		}
		out = append(out, l.key)
		for _, p := range l.members {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.pid))
			if err != nil {
				continue
			}
			if e, ok := parseStat(p.pid, b); ok && e.id == p {
				_ = syscall.Kill(p.pid, syscall.SIGKILL)
			}
		}
	}
	return out
}

// TestWatcher runs a fake run (a shell that records its start, then waits
// for a background sleep, in a process group of its own), kills the shell
// alone and then the group, and checks what the watcher saw; and that a
// process whose environment names another token is not taken for a run
// whose record names its pid.
func TestWatcher(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc:", err)
	}
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "runs.log")
	w := watchRuns(file)
	defer w.stop()
	spec := taskSpec{Name: "t", Sleep: 30 * time.Second, Background: true}
	start := func(token int) *exec.Cmd {
		cmd := exec.Command(taskShell, "-c", spec.script())
		cmd.Env = append(baseEnv(), "BEAT_E2E_FILE="+file, "BEAT_TASK=t", "BEAT_SCHEDULED_AT=2026-01-02T03:04:05Z",
			"BEAT_INSTANCE_ID=i", "E2E_REPLICA=r", "BEAT_FENCING_TOKEN="+strconv.Itoa(token))
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait() })
		return cmd
	}
	run := func(token, pid int) Run {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			runs, _ := readRuns(file)
			for _, r := range runs {
				if r.Token == uint64(token) && r.PID == pid {
					w.sync()
					w.fill(runs)
					for _, r := range runs {
						if r.Token == uint64(token) && r.PID == pid {
							return r
						}
					}
				}
			}
		}
		t.Fatalf("no start record of token %d, pid %d", token, pid)
		return Run{}
	}
	cmd := start(7)
	pid := cmd.Process.Pid
	r := run(7, pid)
	if r.Replica != "r" || r.Instance != "i" || !r.Gone.IsZero() || r.Seen.Before(r.Start) {
		t.Fatalf("a live run: %v (seen %v, gone %v); want it seen alive", r, r.Seen, r.Gone)
	}
	// The shell dies; its background sleep lives on in the group.
	_ = syscall.Kill(pid, syscall.SIGKILL)
	_ = cmd.Wait()
	killed := time.Now()
	w.sync()
	r = run(7, pid)
	if !r.Gone.IsZero() || !r.Seen.After(killed) {
		t.Errorf("the group's leader killed, a grandchild alive: seen %s, gone %v; want seen after %s and not gone",
			r.Seen.Format(stampMicro), r.Gone, killed.Format(stampMicro))
	}
	// Now the whole group.
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	dead := time.Now()
	w.sync()
	w.sync()
	r = run(7, pid)
	if r.Gone.IsZero() || r.Seen.After(dead) || r.Gone.Before(dead) {
		t.Errorf("the group killed at %s: seen %s, gone %s; want seen before and gone after",
			dead.Format(stampMicro), r.Seen.Format(stampMicro), r.Gone.Format(stampMicro))
	}
	if _, gap, err := w.stats(); err != nil || gap <= 0 {
		t.Errorf("watcher stats: gap %v, err %v", gap, err)
	}

	// A run recorded with the pid of a process that is not it (a recycled
	// pid: its environment names another token) is never seen alive.
	other := start(8)
	now := time.Now()
	fake := fmt.Sprintf("R t 2026-01-02T03:04:05Z i r 9 %d start %d.%06d\n", other.Process.Pid, now.Unix(), now.Nanosecond()/1000)
	f, err := os.OpenFile(file, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(fake)
	f.Close()
	r = run(9, other.Process.Pid)
	w.sync()
	r = run(9, other.Process.Pid)
	if !r.Seen.Equal(r.Start) || r.Gone.IsZero() {
		t.Errorf("a run whose pid names another run's process: seen %s (start %s), gone %v; want never seen",
			r.Seen.Format(stampMicro), r.Start.Format(stampMicro), r.Gone)
	}
	if got := w.killAlive(); len(got) != 1 || got[0].token != 8 {
		t.Errorf("killAlive killed the processes of %v, want those of token 8 alone", got)
	}
	if _, err := other.Process.Wait(); err != nil {
		t.Fatal(err)
	}
}
