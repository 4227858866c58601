package e2e

// The tasks' records, and the Judge that turns them into a report.

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"
)

// taskSpec is one task of a scenario's schedule. Its ticks fall on the
// multiples of Period since the Unix epoch, which is what "@every 1s" and
// "*/2 * * * * *" (in UTC) both mean; the judge computes them on its own
// rather than with the scheduler's code.
type taskSpec struct {
	Name     string
	Schedule string
	Period   time.Duration
	Sleep    time.Duration // how long each run takes, roughly
	Policy   string        // Forbid, Allow or Replace
	// Background runs the sleep as a background job the shell waits for
	// ("sleep N & wait"), so that the run has a grandchild in its group.
	Background bool
	// StartingDeadline sets starting_deadline; zero leaves beat's default.
	StartingDeadline time.Duration
	// KillGrace sets args.kill_grace, as YAML writes it; "" leaves the default.
	KillGrace string
}

// every is a task on "@every period".
func every(name string, period, sleep time.Duration, policy string) taskSpec {
	return taskSpec{Name: name, Schedule: "@every " + period.String(), Period: period, Sleep: sleep, Policy: policy}
}

// cronEvery is a task on the six-field cron "*/secs * * * * *"; secs divides 60.
func cronEvery(name string, secs int, sleep time.Duration, policy string) taskSpec {
	return taskSpec{Name: name, Schedule: fmt.Sprintf("*/%d * * * * *", secs), Period: time.Duration(secs) * time.Second, Sleep: sleep, Policy: policy}
}

// The shell the tasks run, and its expression for the time as "seconds.
// fraction". bash 5 has the time in $EPOCHREALTIME; a date process per
// record costs more than the rest of a quick run, and a loaded machine runs
// late. TestMain picks bash when it has that.
var (
	taskShell = "sh"
	timeExpr  = "$(date +%s.%N)"
)

func useBashClock() {
	out, err := exec.Command("bash", "-c", "echo $EPOCHREALTIME").Output()
	if _, perr := parseUnix(strings.TrimSpace(string(out))); err == nil && perr == nil {
		taskShell, timeExpr = "bash", "$EPOCHREALTIME"
	}
}

// script is the task's shell command. Each run appends a start record, and
// an end record when it was not killed; both carry the shell's pid, the
// leader of the run's process group, and the replica (the harness's name
// for the beat process, from E2E_REPLICA in its environment, which the
// task inherits: unlike the instance id, it differs between processes):
//
//	R <task> <scheduled> <instance> <replica> <token> <pid> start|end <unix seconds.fraction>
func (ts taskSpec) script() string {
	s := `r() { echo "R $BEAT_TASK $BEAT_SCHEDULED_AT $BEAT_INSTANCE_ID ${E2E_REPLICA:--} $BEAT_FENCING_TOKEN $$ $1 ` + timeExpr + `" >> "$BEAT_E2E_FILE"; }; r start; `
	switch {
	case ts.Sleep > 0 && ts.Background:
		s += fmt.Sprintf("sleep %g & wait; ", ts.Sleep.Seconds())
	case ts.Sleep > 0:
		s += fmt.Sprintf("sleep %g; ", ts.Sleep.Seconds())
	}
	return s + "r end"
}

// ticks returns the task's ticks in [from, to].
func (ts taskSpec) ticks(from, to time.Time) []time.Time {
	var out []time.Time
	p := ts.Period.Nanoseconds()
	first := (from.UnixNano() + p - 1) / p * p
	for n := first; n <= to.UnixNano(); n += p {
		out = append(out, time.Unix(0, n).UTC())
	}
	return out
}

// Run is one run of a task, as its records and the watcher tell it.
type Run struct {
	Task     string
	Tick     time.Time // BEAT_SCHEDULED_AT
	Instance string    // BEAT_INSTANCE_ID
	Replica  string    // the beat process that ran it (E2E_REPLICA)
	Token    uint64
	PID      int // the shell's pid: the leader of the run's process group
	Start    time.Time
	End      time.Time // zero when the run never recorded its end (killed)
	// Seen is the latest instant the watcher knew a process of the run's
	// group alive (Start at least): a run killed without an end record
	// died after Seen. Gone is when the watcher first found none of them
	// (its death lies in [Seen, Gone]); zero while one lives, or when no
	// watcher looked.
	Seen, Gone time.Time
}

// until is the last instant at which the run certainly still ran: its end
// record, or the last time the watcher saw one of its processes.
func (r Run) until() time.Time {
	u := r.Start
	for _, t := range []time.Time{r.End, r.Seen} {
		if t.After(u) {
			u = t
		}
	}
	return u
}

func (r Run) String() string {
	end := "no end record"
	if !r.End.IsZero() {
		end = "ended " + r.End.Format(stampMicro)
	}
	if !r.Seen.IsZero() && r.Seen.After(r.End) {
		end += ", last seen alive " + r.Seen.Format(stampMicro)
		if !r.Gone.IsZero() {
			end += ", gone by " + r.Gone.Format(stampMicro)
		} else {
			end += ", still alive"
		}
	}
	return fmt.Sprintf("%s@%s on %s (instance %s, token %d, pid %d; started %s, %s)",
		r.Task, r.Tick.Format(time.TimeOnly), r.Replica, r.Instance, r.Token, r.PID, r.Start.Format(stampMicro), end)
}

const stampMicro = "15:04:05.000000"

// runKey names one run: tokens rise per task, and the pid tells two runs
// apart even should a token ever be handed out twice.
type runKey struct {
	task  string
	token uint64
	pid   int
}

func (r Run) key() runKey { return runKey{r.Task, r.Token, r.PID} }

// record is one line of a record file.
type record struct {
	run  Run // Start is not set
	kind string
	at   time.Time
}

// parseRecord parses one line of a record file.
func parseRecord(line string) (record, error) {
	var rec record
	f := strings.Fields(line)
	if len(f) != 9 || f[0] != "R" {
		return rec, fmt.Errorf("malformed record %q", line)
	}
	r := &rec.run
	var err error
	r.Task, r.Instance, r.Replica, rec.kind = f[1], f[3], f[4], f[7]
	r.Tick, err = time.Parse(time.RFC3339Nano, f[2])
	if err == nil {
		r.Token, err = strconv.ParseUint(f[5], 10, 64)
	}
	if err == nil {
		r.PID, err = strconv.Atoi(f[6])
	}
	if err == nil {
		rec.at, err = parseUnix(f[8])
	}
	if err == nil && rec.kind != "start" && rec.kind != "end" {
		err = fmt.Errorf("unknown record kind %q", rec.kind)
	}
	return rec, err
}

// readRuns reads a record file, in the order the runs started.
func readRuns(path string) ([]Run, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var runs []Run
	index := map[runKey]int{}
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		rec, err := parseRecord(sc.Text())
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		k := rec.run.key()
		switch rec.kind {
		case "start":
			if _, dup := index[k]; dup {
				return nil, fmt.Errorf("%s:%d: a second start of one run (task, token, pid)", path, line)
			}
			rec.run.Start = rec.at
			index[k] = len(runs)
			runs = append(runs, rec.run)
		case "end":
			i, ok := index[k]
			if !ok {
				return nil, fmt.Errorf("%s:%d: end of a run that never started", path, line)
			}
			runs[i].End = rec.at
		}
	}
	slices.SortStableFunc(runs, func(a, b Run) int { return a.Start.Compare(b.Start) })
	return runs, sc.Err()
}

// parseUnix parses "seconds.fraction" as date +%s.%N and $EPOCHREALTIME
// print it.
func parseUnix(s string) (time.Time, error) {
	sec, frac, _ := strings.Cut(s, ".")
	secs, err := strconv.ParseInt(sec, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q: %w", s, err)
	}
	frac = (frac + "000000000")[:9]
	nanos, err := strconv.ParseInt(frac, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q: %w", s, err)
	}
	return time.Unix(secs, nanos), nil
}

// TaskReport is the verdict on one task's ticks in a window.
type TaskReport struct {
	Task     string
	Expected int // ticks in the window
	Runs     int // runs of those ticks
	// Dups counts runs beyond the first of a tick; Duplicated lists those ticks.
	Dups       int
	Duplicated []time.Time
	// Misses counts ticks that never ran; Missed lists them.
	Misses int
	Missed []time.Time
	// Busy counts the misses that Forbid explains: some replica found the
	// tick busy, and the task's previous run had not ended a second before
	// the tick (or never recorded its end). Unexplained lists the others.
	Busy        int
	Unexplained []time.Time
	// Stray counts runs in the window whose tick is not a tick of the
	// schedule at all.
	Stray int
	// MinDelay and MaxDelay bound start minus scheduled time (negative:
	// started early, as a replica whose clock runs ahead does).
	MinDelay, MaxDelay time.Duration
	// Overlaps and Orphans are filled by Report.checkEdges, from every run
	// of the task (not only those of the window).
	Overlaps []Overlap
	Orphans  []Orphan
}

// Report is the verdict on one scenario.
type Report struct {
	Scenario string
	Tasks    []TaskReport
	Notes    []string // what the scenario says about its figures
}

// busySlack is how long before a tick the previous run may have recorded
// its end and still have held the lock when the tick was claimed: its
// process exits, the scheduler reaps it and releases the lock after that.
const busySlack = time.Second

// Judge compares the runs with the ticks each task has in [from, to].
// busy holds the ticks that some replica reported skipping because the
// previous run held the lock (concurrency_policy Forbid).
func Judge(specs []taskSpec, runs []Run, busy map[taskTick]bool, from, to time.Time) Report {
	var rep Report
	for _, ts := range specs {
		tr := TaskReport{Task: ts.Name}
		count := map[time.Time]int{}
		first := true
		var prev []Run // the task's runs, for the busy test
		for _, r := range runs {
			if r.Task == ts.Name {
				prev = append(prev, r)
			}
			if r.Task != ts.Name || r.Tick.Before(from) || r.Tick.After(to) {
				continue
			}
			if r.Tick.UnixNano()%ts.Period.Nanoseconds() != 0 {
				tr.Stray++
				continue
			}
			tr.Runs++
			count[r.Tick.UTC()]++
			d := r.Start.Sub(r.Tick)
			if first || d < tr.MinDelay {
				tr.MinDelay = d
			}
			if first || d > tr.MaxDelay {
				tr.MaxDelay = d
			}
			first = false
		}
		for _, tick := range ts.ticks(from, to) {
			tr.Expected++
			switch n := count[tick]; {
			case n == 0:
				tr.Misses++
				tr.Missed = append(tr.Missed, tick)
				if ts.Policy == "Forbid" && busy[taskTick{ts.Name, tick}] && stillRunning(prev, tick) {
					tr.Busy++
				} else {
					tr.Unexplained = append(tr.Unexplained, tick)
				}
			case n > 1:
				tr.Dups += n - 1
				tr.Duplicated = append(tr.Duplicated, tick)
			}
		}
		rep.Tasks = append(rep.Tasks, tr)
	}
	return rep
}

// stillRunning reports whether a run of the latest tick before tick, among
// runs (one task's), may still have held the task's lock at tick.
func stillRunning(runs []Run, tick time.Time) bool {
	var last time.Time
	for _, r := range runs {
		if r.Tick.Before(tick) && r.Tick.After(last) {
			last = r.Tick
		}
	}
	for _, r := range runs {
		if r.Tick.Equal(last) && (r.End.IsZero() || r.End.After(tick.Add(-busySlack))) {
			return true
		}
	}
	return false
}

// Total adds up the tasks.
func (r Report) Total() TaskReport {
	t := TaskReport{Task: "(all)"}
	first := true
	for _, tr := range r.Tasks {
		t.Expected += tr.Expected
		t.Runs += tr.Runs
		t.Dups += tr.Dups
		t.Duplicated = append(t.Duplicated, tr.Duplicated...)
		t.Misses += tr.Misses
		t.Missed = append(t.Missed, tr.Missed...)
		t.Busy += tr.Busy
		t.Unexplained = append(t.Unexplained, tr.Unexplained...)
		t.Stray += tr.Stray
		t.Overlaps = append(t.Overlaps, tr.Overlaps...)
		t.Orphans = append(t.Orphans, tr.Orphans...)
		if tr.Runs == 0 {
			continue
		}
		if first || tr.MinDelay < t.MinDelay {
			t.MinDelay = tr.MinDelay
		}
		if first || tr.MaxDelay > t.MaxDelay {
			t.MaxDelay = tr.MaxDelay
		}
		first = false
	}
	return t
}

// unexplained lists every missed (task, tick) that Forbid does not explain.
func (r Report) unexplained() []taskTick {
	var out []taskTick
	for _, tr := range r.Tasks {
		for _, t := range tr.Unexplained {
			out = append(out, taskTick{tr.Task, t})
		}
	}
	return out
}

type taskTick struct {
	Task string
	Tick time.Time
}

func (tt taskTick) String() string { return tt.Task + "@" + tt.Tick.Format(time.TimeOnly) }

func (tr TaskReport) row() []string {
	return []string{tr.Task, strconv.Itoa(tr.Expected), strconv.Itoa(tr.Runs), strconv.Itoa(tr.Dups),
		strconv.Itoa(len(tr.Overlaps)), strconv.Itoa(len(tr.Orphans)),
		strconv.Itoa(tr.Misses), strconv.Itoa(tr.Busy), strconv.Itoa(tr.Stray), fmtDelay(tr.MinDelay) + " .. " + fmtDelay(tr.MaxDelay)}
}

var header = []string{"task", "expected", "runs", "dups", "overlaps", "orphans", "misses", "of which busy", "stray", "start delay min .. max"}

func fmtDelay(d time.Duration) string { return d.Round(time.Millisecond).String() }

// Table renders the report as aligned text.
func (r Report) Table() string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, row := range append([][]string{header}, r.rows()...) {
		fmt.Fprintln(w, strings.Join(row, "\t")+"\t")
	}
	w.Flush()
	for _, n := range r.Notes {
		b.WriteString(n + "\n")
	}
	return b.String()
}

func (r Report) rows() [][]string {
	var rows [][]string
	for _, tr := range r.Tasks {
		rows = append(rows, tr.row())
	}
	return append(rows, r.Total().row())
}

// Markdown renders the report as a markdown section.
func (r Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "### %s\n\n| %s |\n|%s\n", r.Scenario, strings.Join(header, " | "), strings.Repeat("---|", len(header)))
	for _, row := range r.rows() {
		fmt.Fprintf(&b, "| %s |\n", strings.Join(row, " | "))
	}
	b.WriteString("\n")
	for _, n := range r.Notes {
		b.WriteString(n + "\n\n")
	}
	return b.String()
}

var reportMu sync.Mutex

// appendReport appends the report to the file named by $BEAT_E2E_REPORT, if set.
func appendReport(r Report) error {
	path := os.Getenv("BEAT_E2E_REPORT")
	if path == "" {
		return nil
	}
	reportMu.Lock()
	defer reportMu.Unlock()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(r.Markdown())
	return errors.Join(err, f.Close())
}

// Overlap is two runs of one Forbid or Replace task that ran at the same
// time: B started while A, which started first, certainly still ran (it
// recorded its end, or the watcher saw one of its processes, after B's
// start), by more than the policy allows.
type Overlap struct {
	A, B Run
	By   time.Duration // how long A certainly ran after B started
}

func (o Overlap) String() string {
	return fmt.Sprintf("%s overlap by %v: %v and %v", o.A.Task, o.By.Round(time.Millisecond), o.A, o.B)
}

// overlaps returns the pairs of runs of a task that overlap. Under Forbid
// no overlap is allowed: the lock is held until the run's last process is
// gone. Under Replace the older run is cancelled once its renewal finds the
// lock taken, and killed at once (its lease is lost): it may run on for up
// to replaceGrace after the newer run started. Allow runs are not checked.
// A killed run's end is the last time the watcher saw it alive, which is
// at most its death: an overlap reported is certain, and one shorter than
// the watcher's poll interval can go unseen.
func overlaps(specs []taskSpec, runs []Run, replaceGrace time.Duration) []Overlap {
	var out []Overlap
	for _, ts := range specs {
		var allowed time.Duration
		switch ts.Policy {
		case "Forbid":
		case "Replace":
			allowed = replaceGrace
		default:
			continue
		}
		var mine []Run
		for _, r := range runs {
			if r.Task == ts.Name {
				mine = append(mine, r)
			}
		}
		slices.SortStableFunc(mine, func(a, b Run) int { return a.Start.Compare(b.Start) })
		for i, a := range mine {
			for _, b := range mine[i+1:] {
				by := a.until().Sub(b.Start)
				if by <= 0 {
					break // so do all later runs: they started later still
				}
				if by > allowed {
					out = append(out, Overlap{A: a, B: b, By: by})
				}
			}
		}
	}
	return out
}

// fate is what befell a replica that could not end its runs itself
// (SIGKILL, or SIGSTOP for longer than its leases): every run it had going
// must be gone by By, its supervisor having killed the run's process group.
type fate struct {
	Replica string
	What    string    // "SIGKILL", "SIGSTOP for 4.2s"
	At      time.Time // the kill, or the start of the freeze
	By      time.Time
}

// Orphan is a run that outlived the deadline its replica's fate set.
type Orphan struct {
	Run  Run
	Fate fate
	By   time.Duration // how long after Fate.By it certainly still ran
}

func (o Orphan) String() string {
	return fmt.Sprintf("orphan: %v still ran %v after the deadline of its replica's %s at %s (%s + %v)",
		o.Run, o.By.Round(time.Millisecond), o.Fate.What, o.Fate.At.Format(stampMicro),
		o.Fate.At.Format(stampMicro), o.Fate.By.Sub(o.Fate.At).Round(time.Millisecond))
}

// orphans returns the runs of replicas with a fate that ran past its
// deadline. A run the replica started after the deadline (after a thaw) is
// none of the fate's business.
func orphans(runs []Run, fates []fate) []Orphan {
	var out []Orphan
	for _, f := range fates {
		for _, r := range runs {
			if r.Replica == f.Replica && r.Start.Before(f.By) && r.until().After(f.By) {
				out = append(out, Orphan{Run: r, Fate: f, By: r.until().Sub(f.By)})
			}
		}
	}
	return out
}

// deathNote says how soon after their replicas' fates the runs they had
// going (started before, not ended before) were gone: by the end of the
// first pass that found none of their processes, counted from the kill
// (or the start of the freeze); and when they were last seen alive.
func deathNote(runs []Run, fates []fate) string {
	type span struct {
		n          int
		seen, gone time.Duration
	}
	by := map[string]*span{}
	var kinds []string
	for _, f := range fates {
		kind, _, _ := strings.Cut(f.What, " ")
		for _, r := range runs {
			if r.Replica != f.Replica || !r.Start.Before(f.At) || (!r.End.IsZero() && !r.End.After(f.At)) || !r.Gone.After(f.At) {
				continue // not going at the fate (ended, or found gone, before it), or never found gone
			}
			sp := by[kind]
			if sp == nil {
				sp = &span{seen: r.Seen.Sub(f.At), gone: r.Gone.Sub(f.At)}
				by[kind] = sp
				kinds = append(kinds, kind)
			}
			sp.n++
			sp.seen = max(sp.seen, r.Seen.Sub(f.At))
			sp.gone = max(sp.gone, r.Gone.Sub(f.At))
		}
	}
	var parts []string
	for _, k := range kinds {
		sp := by[k]
		parts = append(parts, fmt.Sprintf("%d runs going at a %s were gone at most %v after it (last seen alive at most %v after it)",
			sp.n, k, sp.gone.Round(time.Millisecond), sp.seen.Round(time.Millisecond)))
	}
	return strings.Join(parts, "; ")
}

// checkEdges files the overlaps and orphans among runs under their tasks.
func (rep *Report) checkEdges(specs []taskSpec, runs []Run, fates []fate, replaceGrace time.Duration) {
	byTask := map[string]*TaskReport{}
	for i := range rep.Tasks {
		byTask[rep.Tasks[i].Task] = &rep.Tasks[i]
	}
	for _, o := range overlaps(specs, runs, replaceGrace) {
		if tr := byTask[o.A.Task]; tr != nil {
			tr.Overlaps = append(tr.Overlaps, o)
		}
	}
	for _, o := range orphans(runs, fates) {
		if tr := byTask[o.Run.Task]; tr != nil {
			tr.Orphans = append(tr.Orphans, o)
		}
	}
}

// checkRuns fails the test for stray runs and for runs without an end
// record: in a scenario where no replica is killed, every run must finish.
func checkRuns(t *testing.T, rep Report, runs []Run) {
	t.Helper()
	if s := rep.Total().Stray; s > 0 {
		t.Errorf("%d runs of ticks that are not ticks of their schedule", s)
	}
	for _, r := range runs {
		if r.End.IsZero() {
			t.Errorf("run of %s@%s on %s (token %d) never recorded its end", r.Task, r.Tick.Format(time.TimeOnly), r.Instance, r.Token)
		}
	}
}

func TestJudge(t *testing.T) {
	base := time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)
	at := func(s float64) time.Time { return base.Add(time.Duration(s * float64(time.Second))) }
	specs := []taskSpec{every("a", time.Second, 0, "Forbid"), cronEvery("b", 2, 0, "Forbid")}
	runs := []Run{
		{Task: "a", Tick: at(0), Start: at(0.01), End: at(0.02)},
		{Task: "a", Tick: at(1), Start: at(1.05), End: at(1.06)},
		{Task: "a", Tick: at(1), Start: at(1.5), End: at(1.6)}, // duplicate
		// a@2 missed
		{Task: "a", Tick: at(3), Start: at(2.9), End: at(3.1)}, // early
		{Task: "a", Tick: at(9), Start: at(9)},                 // outside the window
		{Task: "b", Tick: at(0), Start: at(0.2)},
		{Task: "b", Tick: at(2.5), Start: at(2.5)}, // not a tick of b
		{Task: "b", Tick: at(2), Start: at(2.3)},
	}
	rep := Judge(specs, runs, nil, at(0), at(3.5))
	a, b, all := rep.Tasks[0], rep.Tasks[1], rep.Total()
	if a.Expected != 4 || a.Runs != 4 || a.Dups != 1 || a.Misses != 1 || !a.Missed[0].Equal(at(2)) || !a.Duplicated[0].Equal(at(1)) {
		t.Errorf("task a: %+v, want 4 expected, 4 runs, 1 dup (at 1s), 1 miss (at 2s)", a)
	}
	if a.MinDelay != -100*time.Millisecond || a.MaxDelay != 500*time.Millisecond {
		t.Errorf("task a: delays %v .. %v, want -100ms .. 500ms", a.MinDelay, a.MaxDelay)
	}
	if b.Expected != 2 || b.Runs != 2 || b.Stray != 1 || b.Misses != 0 || b.Dups != 0 {
		t.Errorf("task b: %+v, want 2 expected, 2 runs, 1 stray", b)
	}
	if all.Expected != 6 || all.Runs != 6 || all.Dups != 1 || all.Misses != 1 || all.MaxDelay != 500*time.Millisecond {
		t.Errorf("total: %+v", all)
	}
	// a@2 is explained when a replica found it busy and the previous run
	// had not ended a second before (a@1's last run ended 0.4s before).
	busy := map[taskTick]bool{{"a", at(2)}: true}
	if a := Judge(specs, runs, busy, at(0), at(3.5)).Tasks[0]; a.Busy != 1 || len(a.Unexplained) != 0 {
		t.Errorf("task a, a@2 found busy: %d busy, unexplained %v; want 1 busy", a.Busy, a.Unexplained)
	}
	// Not when the previous run (a@0 here) ended long before: then the
	// lock was held past its run.
	if a := Judge(specs, runs[:1], busy, at(0), at(3.5)).Tasks[0]; a.Busy != 0 || len(a.Unexplained) != 3 {
		t.Errorf("task a, a@2 found busy 1.98s after the previous run ended: %d busy, unexplained %v; want 0", a.Busy, a.Unexplained)
	}
	if a.Busy != 0 || len(a.Unexplained) != 1 {
		t.Errorf("task a: %d busy, unexplained %v; want the miss unexplained without a busy report", a.Busy, a.Unexplained)
	}
	if !strings.Contains(rep.Markdown(), "| (all) | 6 | 6 | 1 | 0 | 0 | 1 | 0 | 1 |") {
		t.Errorf("markdown lacks the total row:\n%s", rep.Markdown())
	}
}

func TestOverlaps(t *testing.T) {
	base := time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)
	at := func(s float64) time.Time { return base.Add(time.Duration(s * float64(time.Second))) }
	specs := []taskSpec{
		every("forbid", 2*time.Second, 0, "Forbid"),
		every("replace", 2*time.Second, 0, "Replace"),
		every("allow", 2*time.Second, 0, "Allow"),
	}
	for _, tc := range []struct {
		name string
		runs []Run
		want int // overlapping pairs
	}{
		{"ended before the next", []Run{
			{Task: "forbid", Token: 1, Start: at(0), End: at(1.9)},
			{Task: "forbid", Token: 2, Start: at(2), End: at(3)},
		}, 0},
		{"ended after the next started", []Run{
			{Task: "forbid", Token: 1, Start: at(0), End: at(2.7)},
			{Task: "forbid", Token: 2, Start: at(2), End: at(3)},
		}, 1},
		// Killed without an end record: its death counts, as the watcher
		// last saw it. The orphan of the issue: alive 0.7s into the next run.
		{"killed, dead before the next", []Run{
			{Task: "forbid", Token: 1, Start: at(0), Seen: at(1.95), Gone: at(2)},
			{Task: "forbid", Token: 2, Start: at(2), End: at(3)},
		}, 0},
		{"killed, alive after the next started", []Run{
			{Task: "forbid", Token: 1, Start: at(0), Seen: at(2.7), Gone: at(2.75)},
			{Task: "forbid", Token: 2, Start: at(2), End: at(3)},
		}, 1},
		// A run that recorded its end but whose grandchild lived on.
		{"ended, a process alive after", []Run{
			{Task: "forbid", Token: 1, Start: at(0), End: at(1), Seen: at(2.5)},
			{Task: "forbid", Token: 2, Start: at(2), End: at(3)},
		}, 1},
		// Every later run that started while the first still ran.
		{"three at once", []Run{
			{Task: "forbid", Token: 1, Start: at(0), Seen: at(6)},
			{Task: "forbid", Token: 2, Start: at(2), End: at(2.5)},
			{Task: "forbid", Token: 3, Start: at(4), End: at(4.5)},
		}, 2},
		// Replace: the old run may go on a while after the new one started.
		{"replaced within the grace", []Run{
			{Task: "replace", Token: 1, Start: at(0), Seen: at(2.9)},
			{Task: "replace", Token: 2, Start: at(2), End: at(3)},
		}, 0},
		{"replaced, but alive past the grace", []Run{
			{Task: "replace", Token: 1, Start: at(0), Seen: at(3.5)},
			{Task: "replace", Token: 2, Start: at(2), End: at(3)},
		}, 1},
		{"Allow may overlap", []Run{
			{Task: "allow", Token: 1, Start: at(0), End: at(5)},
			{Task: "allow", Token: 2, Start: at(2), End: at(3)},
		}, 0},
		{"different tasks", []Run{
			{Task: "forbid", Token: 1, Start: at(0), End: at(5)},
			{Task: "replace", Token: 2, Start: at(2), End: at(3)},
		}, 0},
	} {
		got := overlaps(specs, tc.runs, time.Second)
		if len(got) != tc.want {
			t.Errorf("%s: %d overlaps %v, want %d", tc.name, len(got), got, tc.want)
		}
	}
	o := overlaps(specs, []Run{
		{Task: "forbid", Token: 1, Start: at(0), Seen: at(2.7), Gone: at(2.75)},
		{Task: "forbid", Token: 2, Start: at(2), End: at(3)},
	}, time.Second)
	if len(o) != 1 || o[0].By != 700*time.Millisecond || o[0].A.Token != 1 || o[0].B.Token != 2 ||
		!strings.Contains(o[0].String(), "last seen alive 03:04:02.700000, gone by 03:04:02.750000") {
		t.Errorf("overlap = %v, want token 1 before 2, by 700ms, with its death", o)
	}
}

func TestOrphans(t *testing.T) {
	base := time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)
	at := func(s float64) time.Time { return base.Add(time.Duration(s * float64(time.Second))) }
	kill := fate{Replica: "r1", What: "SIGKILL", At: at(10), By: at(11.5)}
	runs := []Run{
		{Replica: "r1", Task: "a", Token: 1, Start: at(1), End: at(2)},                 // ended long before
		{Replica: "r1", Task: "a", Token: 2, Start: at(9), Seen: at(10.05)},            // killed with it
		{Replica: "r1", Task: "b", Token: 3, Start: at(9), Seen: at(12.3)},             // outlived it
		{Replica: "r1", Task: "c", Token: 4, Start: at(9.5), End: at(12)},              // ran to its end
		{Replica: "r2", Task: "a", Token: 5, Start: at(9), Seen: at(30)},               // another replica's
		{Replica: "r1", Task: "a", Token: 6, Start: at(20), End: at(21), Seen: at(21)}, // after the deadline
	}
	got := orphans(runs, []fate{kill})
	if len(got) != 2 || got[0].Run.Token != 3 || got[0].By != 800*time.Millisecond || got[1].Run.Token != 4 {
		t.Errorf("orphans = %v, want tokens 3 (by 800ms) and 4", got)
	}
	if len(got) > 0 && !strings.Contains(got[0].String(), "SIGKILL at 03:04:10.000000") {
		t.Errorf("orphan reads %q; want it to name the kill", got[0])
	}
	// The report files them under their tasks, and counts them.
	rep := Judge([]taskSpec{every("a", time.Second, 0, "Forbid"), every("b", time.Second, 0, "Forbid"),
		every("c", time.Second, 0, "Allow")}, runs, nil, at(0), at(1))
	rep.checkEdges(nil, runs, []fate{kill}, time.Second)
	if n := []int{len(rep.Tasks[0].Orphans), len(rep.Tasks[1].Orphans), len(rep.Tasks[2].Orphans)}; n[0] != 0 || n[1] != 1 || n[2] != 1 {
		t.Errorf("orphans per task %v, want [0 1 1]", n)
	}
	if len(rep.Total().Orphans) != 2 || !strings.Contains(rep.Table(), "orphans") {
		t.Errorf("report:\n%s", rep.Table())
	}
	runs[1].Gone, runs[2].Gone = at(10.1), at(12.35)
	if got, want := deathNote(runs, []fate{kill}), "2 runs going at a SIGKILL were gone at most 2.35s after it (last seen alive at most 2.3s after it)"; got != want {
		t.Errorf("deathNote = %q, want %q", got, want)
	}
}

func TestRecords(t *testing.T) {
	path := t.TempDir() + "/runs.log"
	data := "R a 2026-01-02T03:04:05Z i1 r1 7 100 start 1767323045.012000000\n" +
		"R a 2026-01-02T03:04:06Z i2 r2 8 101 start 1767323046.5\n" +
		"R a 2026-01-02T03:04:05Z i1 r1 7 100 end 1767323045.2\n"
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	runs, err := readRuns(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 || runs[0].Token != 7 || runs[0].End.Sub(runs[0].Start) != 188*time.Millisecond ||
		!runs[1].End.IsZero() || runs[1].PID != 101 || runs[1].Instance != "i2" || runs[1].Replica != "r2" {
		t.Errorf("readRuns = %+v", runs)
	}
	if err := os.WriteFile(path, []byte("R a bad\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readRuns(path); err == nil {
		t.Error("readRuns accepted a malformed record")
	}
	// The task's own script writes what readRuns reads.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(taskShell, "-c", taskSpec{Name: "a", Sleep: time.Millisecond, Background: true}.script())
	cmd.Env = append(baseEnv(), "BEAT_E2E_FILE="+path, "BEAT_TASK=a", "BEAT_SCHEDULED_AT=2026-01-02T03:04:05Z",
		"BEAT_INSTANCE_ID=i", "E2E_REPLICA=r", "BEAT_FENCING_TOKEN=9")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	runs, err = readRuns(path)
	if err != nil || len(runs) != 1 || runs[0].Replica != "r" || runs[0].Token != 9 || runs[0].PID != cmd.Process.Pid ||
		runs[0].End.Before(runs[0].Start) || runs[0].End.IsZero() {
		t.Errorf("the script's records read as %+v, %v", runs, err)
	}
}
