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
// leader of the run's process group:
//
//	R <task> <scheduled> <instance> <token> <pid> start|end <unix seconds.fraction>
func (ts taskSpec) script() string {
	s := `r() { echo "R $BEAT_TASK $BEAT_SCHEDULED_AT $BEAT_INSTANCE_ID $BEAT_FENCING_TOKEN $$ $1 ` + timeExpr + `" >> "$BEAT_E2E_FILE"; }; r start; `
	if ts.Sleep > 0 {
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

// Run is one run of a task, as its records tell it.
type Run struct {
	Task     string
	Tick     time.Time // BEAT_SCHEDULED_AT
	Instance string
	Token    uint64
	PID      int
	Start    time.Time
	End      time.Time // zero when the run never recorded its end (killed)
}

// readRuns reads a record file, in the order the runs started.
func readRuns(path string) ([]Run, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	type key struct {
		task, inst string
		tick       time.Time
		token      uint64
	}
	var runs []Run
	index := map[key]int{}
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		var r Run
		var kind string
		var err error
		f := strings.Fields(sc.Text())
		if len(f) != 8 || f[0] != "R" {
			return nil, fmt.Errorf("%s:%d: malformed record %q", path, line, sc.Text())
		}
		r.Task, r.Instance, kind = f[1], f[3], f[6]
		r.Tick, err = time.Parse(time.RFC3339Nano, f[2])
		if err == nil {
			r.Token, err = strconv.ParseUint(f[4], 10, 64)
		}
		if err == nil {
			r.PID, err = strconv.Atoi(f[5])
		}
		var at time.Time
		if err == nil {
			at, err = parseUnix(f[7])
		}
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		k := key{r.Task, r.Instance, r.Tick, r.Token}
		switch kind {
		case "start":
			r.Start = at
			index[k] = len(runs)
			runs = append(runs, r)
		case "end":
			i, ok := index[k]
			if !ok {
				return nil, fmt.Errorf("%s:%d: end of a run that never started", path, line)
			}
			runs[i].End = at
		default:
			return nil, fmt.Errorf("%s:%d: unknown record kind %q", path, line, kind)
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

// missedTicks lists every missed (task, tick).
func (r Report) missedTicks() []taskTick {
	var out []taskTick
	for _, tr := range r.Tasks {
		for _, t := range tr.Missed {
			out = append(out, taskTick{tr.Task, t})
		}
	}
	return out
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
		strconv.Itoa(tr.Misses), strconv.Itoa(tr.Busy), strconv.Itoa(tr.Stray), fmtDelay(tr.MinDelay) + " .. " + fmtDelay(tr.MaxDelay)}
}

var header = []string{"task", "expected", "runs", "dups", "misses", "of which busy", "stray", "start delay min .. max"}

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

// overlapping returns the pairs of runs of one task whose [Start, end)
// intervals intersect, the earlier-started first; end gives a run's end.
func overlapping(runs []Run, end func(Run) time.Time) [][2]Run {
	var out [][2]Run
	for i, a := range runs {
		for _, b := range runs[i+1:] {
			if a.Task == b.Task && b.Start.Before(end(a)) && a.Start.Before(end(b)) {
				out = append(out, [2]Run{a, b})
			}
		}
	}
	return out
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
	if got := overlapping(runs[:4], func(r Run) time.Time { return r.End }); len(got) != 0 {
		t.Errorf("overlapping: %v, want none", got)
	}
	if got := overlapping(runs[3:5], func(Run) time.Time { return at(10) }); len(got) != 1 {
		t.Errorf("overlapping with open ends: %v, want one pair", got)
	}
	if a.Busy != 0 || len(a.Unexplained) != 1 {
		t.Errorf("task a: %d busy, unexplained %v; want the miss unexplained without a busy report", a.Busy, a.Unexplained)
	}
	if !strings.Contains(rep.Markdown(), "| (all) | 6 | 6 | 1 | 1 | 0 | 1 |") {
		t.Errorf("markdown lacks the total row:\n%s", rep.Markdown())
	}
}

func TestRecords(t *testing.T) {
	path := t.TempDir() + "/runs.log"
	data := "R a 2026-01-02T03:04:05Z i1 7 100 start 1767323045.012000000\n" +
		"R a 2026-01-02T03:04:06Z i2 8 101 start 1767323046.5\n" +
		"R a 2026-01-02T03:04:05Z i1 7 100 end 1767323045.2\n"
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	runs, err := readRuns(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 || runs[0].Token != 7 || runs[0].End.Sub(runs[0].Start) != 188*time.Millisecond ||
		!runs[1].End.IsZero() || runs[1].PID != 101 || runs[1].Instance != "i2" {
		t.Errorf("readRuns = %+v", runs)
	}
	if err := os.WriteFile(path, []byte("R a bad\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readRuns(path); err == nil {
		t.Error("readRuns accepted a malformed record")
	}
}
