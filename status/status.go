// Package status reports, per task of a schedule, what the lock store holds
// of it: the holder of its lock and the time left on it, the last claimed
// tick and fencing token, and how the last run ended; and the records of
// tasks the schedule no longer has (stale). `beat status` and the /status
// endpoint print it.
package status

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/beatlock/beat/config"
	"github.com/beatlock/beat/lock"
)

// Report is the status of a schedule's tasks. Durations are in seconds.
type Report struct {
	Backend   string    `json:"backend"`
	StoreTime time.Time `json:"store_time"` // the store's clock when it answered
	Tasks     []Task    `json:"tasks"`
	// Stale are records of tasks that the schedule no longer has; prune
	// them once no replica runs an older schedule.
	Stale []Task `json:"stale,omitempty"`
}

// Task is one task's status.
type Task struct {
	Name      string     `json:"name"`
	Schedule  string     `json:"schedule,omitempty"`
	Suspended bool       `json:"suspended,omitempty"`
	Next      *time.Time `json:"next,omitempty"` // the next tick by the store's clock
	// Holder is the instance id that holds the task's lock (Owner adds
	// its process's session), LockLeftSeconds the time left on it.
	Holder          string     `json:"holder,omitempty"`
	Owner           string     `json:"owner,omitempty"`
	LockLeftSeconds float64    `json:"lock_left_seconds,omitempty"`
	LastClaimed     *time.Time `json:"last_claimed,omitempty"`
	FencingToken    uint64     `json:"fencing_token,omitempty"`
	LastSkipped     *time.Time `json:"last_skipped,omitempty"` // skipped as busy
	LastRun         *Run       `json:"last_run,omitempty"`
	// RecordError says why the store's record of the task cannot be read;
	// the fields above are then empty.
	RecordError string `json:"record_error,omitempty"`
}

// Run is how a task's last run ended.
type Run struct {
	Tick            time.Time `json:"tick"`
	Result          string    `json:"result"`
	DurationSeconds float64   `json:"duration_seconds"`
	Instance        string    `json:"instance"`
	Ended           time.Time `json:"ended"`
	FencingToken    uint64    `json:"fencing_token"`
	Error           string    `json:"error,omitempty"`
}

// Build asks ins for its records and reports them against cfg's tasks.
func Build(ctx context.Context, cfg *config.Config, ins lock.Inspector) (Report, error) {
	records, now, err := ins.Tasks(ctx)
	if err != nil {
		return Report{}, fmt.Errorf("read the lock store's records: %w", err)
	}
	byName := make(map[string]lock.TaskRecord, len(records))
	for _, r := range records {
		byName[r.Task] = r
	}
	rep := Report{Backend: cfg.Lock.Backend, StoreTime: now.UTC(), Tasks: make([]Task, 0, len(cfg.Tasks))}
	for _, t := range cfg.Tasks {
		st := fromRecord(byName[t.Name])
		st.Name, st.Schedule, st.Suspended = t.Name, t.Spec, t.Suspend
		if next := t.Schedule.Next(now); !t.Suspend && !next.IsZero() {
			next = next.UTC()
			st.Next = &next
		}
		rep.Tasks = append(rep.Tasks, st)
		delete(byName, t.Name)
	}
	for _, r := range records {
		if _, stale := byName[r.Task]; stale {
			st := fromRecord(r)
			st.Name = r.Task
			rep.Stale = append(rep.Stale, st)
		}
	}
	return rep, nil
}

func fromRecord(r lock.TaskRecord) Task {
	if r.Err != nil {
		return Task{RecordError: r.Err.Error()}
	}
	t := Task{FencingToken: r.Token, LastClaimed: instant(r.LastClaimed), LastSkipped: instant(r.LastSkipped)}
	if r.Holder != "" {
		t.Owner, t.Holder = r.Holder, Instance(r.Holder)
		t.LockLeftSeconds = r.LockLeft.Seconds()
	}
	if run := r.LastRun; run != nil {
		t.LastRun = &Run{Tick: run.Tick.UTC(), Result: run.Result, DurationSeconds: run.Duration.Seconds(),
			Instance: Instance(run.Owner), Ended: run.Ended.UTC(), FencingToken: run.Token, Error: run.Error}
	}
	return t
}

func instant(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// Instance is the instance id of a lock owner, "<instance id>/<session>".
func Instance(owner string) string {
	if i := strings.LastIndexByte(owner, '/'); i > 0 {
		return owner[:i]
	}
	return owner
}

// Find returns the named task's status, among the tasks and the stale.
func (r Report) Find(name string) (Task, bool) {
	for _, ts := range [][]Task{r.Tasks, r.Stale} {
		if i := slices.IndexFunc(ts, func(t Task) bool { return t.Name == name }); i >= 0 {
			return ts[i], true
		}
	}
	return Task{}, false
}

// WriteText writes the report as tables for a terminal.
func (r Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "lock store: %s, its clock %s\n\n", r.Backend, stamp(&r.StoreTime))
	fmt.Fprintln(tw, "TASK\tSCHEDULE\tNEXT\tHELD BY\tLOCK LEFT\tLAST CLAIMED\tTOKEN\tLAST RUN\tTOOK\tRAN ON")
	for _, t := range r.Tasks {
		next := stamp(t.Next)
		if t.Suspended {
			next = "suspended"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", printable(t.Name), t.Schedule, next, t.record())
	}
	if len(r.Stale) > 0 {
		fmt.Fprintln(tw, "\nSTALE: records of tasks not in the schedule (beat status --prune removes them)")
		for _, t := range r.Stale {
			fmt.Fprintf(tw, "%s\t-\t-\t%s\n", printable(t.Name), t.record())
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, t := range append(slices.Clip(r.Tasks), r.Stale...) {
		var line string
		switch {
		case t.RecordError != "":
			line = fmt.Sprintf("\n%s: the lock store's record cannot be read: %s\n", printable(t.Name), printable(t.RecordError))
		case t.LastRun != nil && t.LastRun.Error != "":
			line = fmt.Sprintf("\n%s: last run %s: %s\n", printable(t.Name), printable(t.LastRun.Result), printable(t.LastRun.Error))
		default:
			continue
		}
		if _, err := io.WriteString(w, line); err != nil {
			return err
		}
	}
	return nil
}

// printable quotes what the store holds when it would not print as it is
// (escape sequences, control characters): a terminal shows it, not obeys it.
func printable(s string) string {
	for _, r := range s {
		if r != '\n' && !unicode.IsPrint(r) {
			q := strconv.Quote(s)
			return q[1 : len(q)-1]
		}
	}
	return s
}

// record is the columns from HELD BY on.
func (t Task) record() string {
	if t.RecordError != "" {
		return "unreadable (below)"
	}
	holder, left := "-", "-"
	if t.Holder != "" {
		holder = printable(t.Holder)
		left = (time.Duration(t.LockLeftSeconds * float64(time.Second))).Round(time.Millisecond).String()
	}
	token := "-"
	if t.FencingToken != 0 {
		token = fmt.Sprint(t.FencingToken)
	}
	run, took, on := "-", "-", "-"
	if r := t.LastRun; r != nil {
		run = printable(r.Result) + " " + stamp(&r.Tick)
		took = "<1ms" // stores keep milliseconds
		if d := time.Duration(r.DurationSeconds * float64(time.Second)).Round(time.Millisecond); d > 0 {
			took = d.String()
		}
		on = printable(r.Instance)
	}
	return strings.Join([]string{holder, left, stamp(t.LastClaimed), token, run, took, on}, "\t")
}

func stamp(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
