package e2e

// Processes: the beat binary (built once), redis-servers, beat replicas, and
// the clusters of replicas that one scenario runs.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/beatlock/beat/internal/beatbin"
	"github.com/beatlock/beat/internal/pgtest"
	"github.com/beatlock/beat/internal/redistest"
)

var (
	long     = flag.Bool("long", false, "run each scenario for 10 minutes instead of its short version")
	duration = flag.Duration("duration", 0, "run each scenario this long (overrides both the short versions and -long)")
)

var (
	beatBin    string // the beat binary, built with -tags beattest in TestMain
	skipReason string // why the scenarios skip, when they do
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if _, err := exec.LookPath("redis-server"); err != nil {
		msg := "e2e: redis-server is not on PATH; install Redis (e.g. apt-get install redis-server) to run the process-level tests"
		if os.Getenv("BEAT_TEST_REDIS_REQUIRED") == "1" {
			fmt.Fprintln(os.Stderr, msg+"; BEAT_TEST_REDIS_REQUIRED=1 makes this a failure")
			return 1
		}
		skipReason = msg
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "beat-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	useBashClock()
	if bin := os.Getenv("BEAT_E2E_BINARY"); bin != "" {
		// A binary built elsewhere (with -tags beattest), e.g. from an
		// older commit, to see what the scenarios say of it.
		beatBin = bin
		return m.Run()
	}
	beatBin = filepath.Join(dir, "beat")
	if err := beatbin.Build(beatBin, "beattest"); err != nil { // BEAT_TEST_CLOCK_OFFSET
		fmt.Fprintln(os.Stderr, "e2e: building beat:", err)
		return 1
	}
	return m.Run()
}

// runFor is how long a scenario runs: normal by default, about 12s (at
// least) with -short, 10 minutes with -long, or what -duration says.
func runFor(normal time.Duration) time.Duration {
	switch {
	case *duration > 0:
		return *duration
	case *long:
		return 10 * time.Minute
	case testing.Short():
		return max(normal*2/5, 12*time.Second)
	}
	return normal
}

// process is a child process whose stdout and stderr go to a file.
type process struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
	err     error         // its exit status; read after done
}

func startProcess(logPath string, env []string, name string, args ...string) (*process, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr, cmd.Env = f, f, env
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL and waits for the process to exit.
func (p *process) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// wait waits up to d for the process to exit, and reports whether it did.
func (p *process) wait(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// baseEnv is the test's environment without any BEAT_ variable, so that a
// developer's own settings cannot leak into the replicas.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BEAT_") {
			env = append(env, kv)
		}
	}
	return env
}

// replica is one beat process.
type replica struct {
	*process
	name  string // the harness's name for it, unique per process (E2E_REPLICA)
	id    string // its instance id: its name, unless a scenario shares one
	owner string // its lock owner, "<id>/<session>", as it logged at start
}

// logLine is one JSON log record of a replica.
type logLine struct {
	Time      time.Time `json:"time"`
	Level     string    `json:"level"`
	Msg       string    `json:"msg"`
	Instance  string    `json:"instance"`
	Task      string    `json:"task"`
	Tick      time.Time `json:"tick"`
	Token     uint64    `json:"token"`
	Err       string    `json:"err"`
	LockOwner string    `json:"lock_owner"`
}

// logs reads the replica's log records so far; lines that are not JSON
// (a panic, say) are returned with Level "RAW".
func (r *replica) logs() []logLine {
	b, _ := os.ReadFile(r.logPath)
	var out []logLine
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l logLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			l = logLine{Level: "RAW", Msg: sc.Text()}
		}
		out = append(out, l)
	}
	return out
}

// waitLog waits up to d for a log record whose message starts with msg.
func (r *replica) waitLog(msg string, d time.Duration) (logLine, bool) {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(25 * time.Millisecond) {
		for _, l := range r.logs() {
			if strings.HasPrefix(l.Msg, msg) {
				return l, true
			}
		}
		if r.exited() {
			break
		}
	}
	return logLine{}, false
}

// clusterConfig is the part of schedule.yaml a scenario chooses.
type clusterConfig struct {
	backend         string // "redis" (default) or "postgres"
	ttl, renew      time.Duration
	shutdownTimeout time.Duration // default 10s
	maxClockSkew    time.Duration // lock.max_clock_skew; zero leaves beat's default (2s)
	tasks           []taskSpec
}

// cluster is one scenario's world: its redis-server, key prefix, schedule,
// record file and every replica it started.
type cluster struct {
	t       *testing.T
	name    string
	dir     string
	cfg     clusterConfig
	redis   *redistest.Server // the redis backend's server
	table   string            // the postgres backend's tables
	prefix  string
	runFile string // where the tasks record their runs
	config  string // the schedule file
	watch   *watcher

	mu       sync.Mutex
	replicas []*replica
	fates    []fate   // replicas killed, or frozen past their leases
	freezes  []freeze // every SIGSTOP, with its SIGCONT
}

// freeze is one SIGSTOP of a replica, until its SIGCONT (zero while frozen).
type freeze struct {
	r        *replica
	from, to time.Time
}

// orphanSlack is how long a run may outlive its replica's death (or, for a
// frozen replica, its lease): the supervisor kills the run's group at once,
// and the watcher sees it within a poll; the rest is slack for a loaded
// machine.
const orphanSlack = 1500 * time.Millisecond

// newCluster sets up a scenario, or skips it when redis-server is missing.
// Everything it starts is killed when the test ends, pass or fail.
func newCluster(t *testing.T, cfg clusterConfig) *cluster {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	if cfg.shutdownTimeout == 0 {
		cfg.shutdownTimeout = 10 * time.Second
	}
	name := strings.ToLower(strings.NewReplacer("/", "-", " ", "_").Replace(t.Name()))
	dir := t.TempDir()
	if os.Getenv("BEAT_E2E_KEEP") != "" { // keep logs and records for a post-mortem
		var err error
		if dir, err = os.MkdirTemp("", "beat-e2e-"+name+"-"); err != nil {
			t.Fatal(err)
		}
		t.Logf("BEAT_E2E_KEEP: logs and records in %s", dir)
	}
	c := &cluster{
		t: t, name: name, dir: dir, cfg: cfg,
		prefix:  "{e2e-" + name + "}:",
		runFile: filepath.Join(dir, "runs.log"),
		config:  filepath.Join(dir, "schedule.yaml"),
	}
	switch cfg.backend {
	case "", "redis":
		c.redis = redistest.StartServer(t, dir)
	case "postgres":
		pgtest.Config(t) // skips (or fails, if required) without PostgreSQL
		c.table = pgtest.Table(t)
	default:
		t.Fatalf("unknown backend %q", cfg.backend)
	}
	if err := os.WriteFile(c.config, []byte(c.scheduleYAML()), 0o644); err != nil {
		t.Fatal(err)
	}
	if c.table != "" {
		if out, err := exec.Command(beatBin, "migrate", "--config", c.config).CombinedOutput(); err != nil {
			t.Fatalf("beat migrate: %v\n%s", err, out)
		}
	}
	c.watch = watchRuns(c.runFile)
	t.Cleanup(c.cleanup)
	return c
}

func (c *cluster) scheduleYAML() string {
	var b strings.Builder
	backend := "redis"
	if c.table != "" {
		backend = "postgres"
	}
	fmt.Fprintf(&b, "timezone: UTC\nshutdown_timeout: %s\nlock:\n  backend: %s\n  ttl: %s\n  renew_interval: %s\n",
		c.cfg.shutdownTimeout, backend, c.cfg.ttl, c.cfg.renew)
	if c.cfg.maxClockSkew > 0 {
		fmt.Fprintf(&b, "  max_clock_skew: %s\n", c.cfg.maxClockSkew)
	}
	if c.table != "" {
		fmt.Fprintf(&b, "  postgres:\n    url: %q\n    table: %q\ntasks:\n", pgtest.URL(), c.table)
	} else {
		fmt.Fprintf(&b, "  redis:\n    url: %q\n    key_prefix: %q\ntasks:\n", c.redis.URL(), c.prefix)
	}
	for _, ts := range c.cfg.tasks {
		fmt.Fprintf(&b, "  - name: %q\n    schedule: %q\n    task: exec\n    concurrency_policy: %s\n    timeout: 1m\n",
			ts.Name, ts.Schedule, ts.Policy)
		if ts.StartingDeadline > 0 {
			fmt.Fprintf(&b, "    starting_deadline: %s\n", ts.StartingDeadline)
		}
		fmt.Fprintf(&b, "    args:\n      command: [%s, -c, %q]\n      env: {BEAT_E2E_FILE: %q, LC_ALL: C}\n", taskShell, ts.script(), c.runFile)
		if ts.KillGrace != "" {
			fmt.Fprintf(&b, "      kill_grace: %s\n", ts.KillGrace)
		}
	}
	return b.String()
}

// replicaOption changes how one replica starts.
type replicaOption func(env []string) []string

// withInstanceID gives the replica this instance id instead of its name.
func withInstanceID(id string) replicaOption {
	return func(env []string) []string { return append(env, "BEAT_INSTANCE_ID="+id) }
}

// withClockOffset skews the replica's clock (BEAT_TEST_CLOCK_OFFSET).
func withClockOffset(d time.Duration) replicaOption {
	return func(env []string) []string { return append(env, "BEAT_TEST_CLOCK_OFFSET="+d.String()) }
}

// withRedisURL points the replica at another address (a proxy).
func withRedisURL(url string) replicaOption {
	return func(env []string) []string { return append(env, "BEAT_REDIS_URL="+url) }
}

// start starts a replica, named for the scenario and a number, with its
// name as its instance id unless an option says otherwise, and waits until
// its scheduler runs. Its name reaches its tasks as E2E_REPLICA.
func (c *cluster) start(opts ...replicaOption) *replica {
	c.t.Helper()
	c.mu.Lock()
	name := fmt.Sprintf("%s-%d", c.name, len(c.replicas)+1)
	c.mu.Unlock()
	env := append(baseEnv(), "BEAT_INSTANCE_ID="+name, "E2E_REPLICA="+name)
	for _, o := range opts {
		env = o(env)
	}
	id := name
	for _, kv := range env { // the last one counts, as in exec.Cmd
		if v, ok := strings.CutPrefix(kv, "BEAT_INSTANCE_ID="); ok {
			id = v
		}
	}
	p, err := startProcess(filepath.Join(c.dir, name+".log"), env, beatBin, "run", "--config", c.config, "--log-format", "json", "--log-level", "debug")
	if err != nil {
		c.t.Fatalf("starting replica %s: %v", name, err)
	}
	r := &replica{process: p, name: name, id: id}
	c.mu.Lock()
	c.replicas = append(c.replicas, r)
	c.mu.Unlock()
	l, ok := r.waitLog("scheduler started", 15*time.Second)
	if !ok {
		c.t.Fatalf("replica %s did not start:\n%s", name, tail(r.logPath, 20))
	}
	r.owner = l.LockOwner
	if !strings.HasPrefix(r.owner, id+"/") {
		c.t.Errorf("replica %s: lock owner %q, want %q followed by a session", name, r.owner, id+"/")
	}
	return r
}

// startN starts n replicas and returns when all of them run.
func (c *cluster) startN(n int, opts ...replicaOption) []*replica {
	c.t.Helper()
	rs := make([]*replica, n)
	for i := range rs {
		rs[i] = c.start(opts...)
	}
	return rs
}

// all returns every replica started so far.
func (c *cluster) all() []*replica {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*replica(nil), c.replicas...)
}

// live returns the replicas still running.
func (c *cluster) live() []*replica {
	var out []*replica
	for _, r := range c.all() {
		if !r.exited() {
			out = append(out, r)
		}
	}
	return out
}

// crash kills a replica with SIGKILL, as a node failure would. Its runs
// must be gone within orphanSlack.
func (c *cluster) crash(r *replica) time.Time {
	at := time.Now()
	r.kill()
	c.mu.Lock()
	c.fates = append(c.fates, fate{Replica: r.name, What: "SIGKILL", At: at, By: at.Add(orphanSlack)})
	c.mu.Unlock()
	return at
}

// freeze stops a replica with SIGSTOP, as a paused VM or a stopped
// container would be, until thaw.
func (c *cluster) freeze(r *replica) time.Time {
	c.t.Helper()
	at := time.Now()
	if err := r.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		c.t.Fatalf("SIGSTOP %s: %v", r.name, err)
	}
	c.mu.Lock()
	c.freezes = append(c.freezes, freeze{r: r, from: at})
	c.mu.Unlock()
	return at
}

// thaw resumes a frozen replica with SIGCONT. When the freeze outlasted its
// leases (the ttl, from its last renewal, which came before the freeze)
// plus orphanSlack, its supervisors must have killed every run it had going
// by then.
func (c *cluster) thaw(r *replica) time.Time {
	c.t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		c.t.Fatalf("SIGCONT %s: %v", r.name, err)
	}
	at := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.freezes {
		if f := &c.freezes[i]; f.r == r && f.to.IsZero() {
			f.to = at
			if by := f.from.Add(c.cfg.ttl + orphanSlack); at.After(by) {
				c.fates = append(c.fates, fate{Replica: r.name, What: fmt.Sprintf("SIGSTOP for %v", at.Sub(f.from).Round(time.Millisecond)),
					At: f.from, By: by})
			}
		}
	}
	return at
}

// frozen returns the freezes so far.
func (c *cluster) frozen() []freeze {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]freeze(nil), c.freezes...)
}

// stop sends SIGTERM and fails the test unless the replica exits with
// status 0 within its shutdown timeout plus a margin.
func (c *cluster) stop(r *replica) {
	c.t.Helper()
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	if !r.wait(c.cfg.shutdownTimeout + 10*time.Second) {
		c.t.Errorf("replica %s did not exit within %v of SIGTERM", r.name, c.cfg.shutdownTimeout+10*time.Second)
		r.kill()
		return
	}
	if r.err != nil {
		c.t.Errorf("replica %s: after SIGTERM: %v, want exit status 0", r.name, r.err)
	}
}

// stopAll stops every live replica with SIGTERM, all at once.
func (c *cluster) stopAll() {
	c.t.Helper()
	var wg sync.WaitGroup
	for _, r := range c.live() {
		wg.Go(func() { c.stop(r) })
	}
	wg.Wait()
}

// cleanup runs after the test has judged: it kills whatever still runs,
// replicas first, then the processes of runs that the watcher still sees
// alive (which the judge has already counted if they were orphans). On
// failure it shows the tail of every replica's log.
func (c *cluster) cleanup() {
	for _, r := range c.all() {
		if !r.exited() {
			r.kill()
		}
	}
	c.watch.sync()
	if left := c.watch.killAlive(); len(left) > 0 {
		c.t.Logf("cleanup: killed the processes of %d runs still alive after the test: %v", len(left), left)
	}
	c.watch.stop()
	if c.t.Failed() {
		for _, r := range c.all() {
			c.t.Logf("--- replica %s (instance %s, owner %s; %s), last lines:\n%s", r.name, r.id, r.owner, r.logPath, tail(r.logPath, 25))
		}
		c.t.Logf("--- records (%s), last lines:\n%s", c.runFile, tail(c.runFile, 25))
	}
}

// runs reads the records of the runs so far, with what the watcher saw of
// their processes up to now.
func (c *cluster) runs() []Run {
	c.t.Helper()
	c.watch.sync()
	runs, err := readRuns(c.runFile)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		c.t.Fatal(err)
	}
	c.watch.fill(runs)
	return runs
}

// report judges the runs of ticks in [from, to], and every run for
// overlaps and orphans; it fails the test for each overlap and orphan,
// logs the table and, with -long, appends it to $BEAT_E2E_REPORT.
func (c *cluster) report(from, to time.Time, notes ...string) Report {
	c.t.Helper()
	busy := map[taskTick]bool{}
	for _, l := range c.logsOf("tick skipped: the previous run still holds the lock") {
		busy[taskTick{l.Task, l.Tick.UTC()}] = true
	}
	runs := c.runs()
	rep := Judge(c.cfg.tasks, runs, busy, from, to)
	c.mu.Lock()
	fates := append([]fate(nil), c.fates...)
	c.mu.Unlock()
	rep.checkEdges(c.cfg.tasks, runs, fates, c.cfg.renew+time.Second)
	rep.Scenario = c.t.Name()
	passes, gap, err := c.watch.stats()
	if err != nil {
		c.t.Errorf("watcher: %v", err)
	}
	rep.Notes = append(notes, fmt.Sprintf("watcher: %d passes over /proc, at most %v apart; %d replicas killed or frozen past their leases",
		passes, gap.Round(time.Millisecond), len(fates)))
	if n := deathNote(runs, fates); n != "" {
		rep.Notes = append(rep.Notes, n)
	}
	all := rep.Total()
	for _, o := range all.Overlaps {
		c.t.Errorf("%v", o)
	}
	for _, o := range all.Orphans {
		c.t.Errorf("%v", o)
	}
	c.t.Logf("ticks in [%s, %s]:\n%s", from.Format(time.TimeOnly), to.Format(time.TimeOnly), rep.Table())
	if *long || *duration > 0 {
		if err := appendReport(rep); err != nil {
			c.t.Error(err)
		}
	}
	return rep
}

// logsOf returns the records of every replica whose message starts with msg.
func (c *cluster) logsOf(msg string) []logLine {
	var out []logLine
	for _, r := range c.all() {
		for _, l := range r.logs() {
			if strings.HasPrefix(l.Msg, msg) {
				out = append(out, l)
			}
		}
	}
	return out
}

// checkLogs fails the test for every record at level ERROR or worse, and
// every line that is not a log record, in any replica's log.
func (c *cluster) checkLogs() {
	c.t.Helper()
	c.checkLogsExcept(nil)
}

// checkLogsExcept is checkLogs, but ERROR records for which allowed says
// true pass; it returns how many did.
func (c *cluster) checkLogsExcept(allowed func(*replica, logLine) bool) int {
	c.t.Helper()
	n := 0
	for _, r := range c.all() {
		for _, l := range r.logs() {
			switch {
			case l.Level == "ERROR" && allowed != nil && allowed(r, l):
				n++
			case l.Level == "ERROR" || l.Level == "RAW":
				c.t.Errorf("replica %s logged %s at %s: %q (task %q, tick %s, err %q)", r.name, l.Level,
					l.Time.Format(stampMicro), l.Msg, l.Task, l.Tick.Format(time.TimeOnly), l.Err)
			}
		}
	}
	return n
}

// seeded returns a random source for a scenario's faults, and logs its
// seed so that a failing run can be told apart from the next.
func seeded(t *testing.T) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	t.Logf("random seed %d", seed)
	return rand.New(rand.NewPCG(seed, seed))
}

// sleepUntil sleeps until t.
func sleepUntil(t time.Time) { time.Sleep(time.Until(t)) }

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
