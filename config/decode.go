package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/beatlock/beat/lock"
	"github.com/beatlock/beat/schedule"
	"github.com/beatlock/beat/scheduler"
)

var (
	topFields  = []string{"instance_id", "timezone", "shutdown_timeout", "max_concurrent_runs", "http", "lock", "tasks"}
	httpFields = []string{"listen"}
	taskFields = []string{"name", "schedule", "task", "args", "timezone", "timeout", "concurrency_policy", "starting_deadline", "suspend", "jitter"}
)

const scheduleExamples = `examples: "*/5 * * * *", "0 */5 * * * *", "@every 30s"`

// decoder walks the YAML tree, collecting every problem it meets.
type decoder struct {
	file     string
	types    TaskTypes
	env      func(string) (string, bool)
	problems []Problem
	warnings []Problem // what is valid but likely a mistake
	expanded int       // see expand
	stopped  bool      // see giveUp
	kept     int       // problems to keep once stopped
}

func parse(file string, data []byte, o options) (*Config, error) {
	d := &decoder{file: file, types: o.types, env: o.lookupEnv}
	cfg := d.config(data)
	if d.stopped {
		d.problems = d.problems[:d.kept]
	}
	if len(d.problems) > 0 {
		slices.SortStableFunc(d.problems, func(a, b Problem) int { return cmp.Compare(a.Line, b.Line) })
		return nil, &ValidationError{Problems: d.problems}
	}
	cfg.Warnings = d.warnings
	return cfg, nil
}

func (d *decoder) problem(line int, format string, args ...any) {
	d.problems = append(d.problems, Problem{File: d.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// origin is where a setting that the environment can override came from.
type origin struct {
	line int
	env  string // the variable, when it came from the environment
}

func (d *decoder) problemAt(o origin, format string, args ...any) {
	if o.env == "" {
		d.problem(o.line, format, args...)
		return
	}
	d.problems = append(d.problems, Problem{File: "env " + o.env, Msg: fmt.Sprintf(format, args...)})
}

// fromEnv returns the value of an overriding environment variable.
func (d *decoder) fromEnv(name string) (string, bool) {
	s, ok := d.env(name)
	return s, ok && s != ""
}

func (d *decoder) config(data []byte) *Config {
	cfg := &Config{
		File:            d.file,
		Timezone:        time.UTC,
		ShutdownTimeout: DefaultShutdownTimeout,
	}
	root, ok := d.document(data)
	if !ok {
		return cfg
	}
	f := d.fields(entry{value: root}, "", topFields)
	cfg.Timezone = d.zone(f["timezone"], time.UTC)
	cfg.InstanceID, _ = d.str(f["instance_id"], "instance_id")
	if cfg.InstanceID != "" {
		d.warnings = append(d.warnings, Problem{File: d.file, Line: f["instance_id"].line(), Msg: "instance_id is set in the file, " +
			"so every replica that reads it gets the same id: their log lines, runs (BEAT_INSTANCE_ID) and lock owners can no longer be told apart " +
			"(their locks still are: each process owns its own); leave it out for a random id per start, or set BEAT_INSTANCE_ID per replica (e.g. from the pod name)"})
	}
	if s, ok := d.fromEnv("BEAT_INSTANCE_ID"); ok {
		cfg.InstanceID = s
	}
	if v, ok := d.nonNegative(f["shutdown_timeout"], "shutdown_timeout"); ok {
		cfg.ShutdownTimeout = v
	}
	if n, ok := d.integer(f["max_concurrent_runs"], "max_concurrent_runs"); ok {
		if n < 0 {
			d.problem(f["max_concurrent_runs"].line(), "max_concurrent_runs must not be negative, got %d; 0 (the default) sets no bound", n)
		} else {
			cfg.MaxConcurrentRuns = n
		}
	}
	cfg.HTTP = d.http(f["http"])
	cfg.Lock = d.lock(f["lock"])
	cfg.Tasks = d.tasks(f["tasks"], cfg.Timezone)
	return cfg
}

var yamlLine = regexp.MustCompile(`(?s)^yaml: line (\d+): (.*)$`)

// document parses data into its root node; nil for an empty file.
func (d *decoder) document(data []byte) (*yaml.Node, bool) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc, next yaml.Node
	err := dec.Decode(&doc)
	if errors.Is(err, io.EOF) {
		return nil, true
	}
	if err == nil {
		if err = dec.Decode(&next); errors.Is(err, io.EOF) {
			err = nil
		} else if err == nil {
			d.problem(next.Line, "a second YAML document starts here; put all settings in one")
			return nil, false
		}
	}
	if err != nil {
		msg, line := strings.TrimPrefix(err.Error(), "yaml: "), 0
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = m[2]
		}
		d.problem(line, "invalid YAML: %s", msg)
		return nil, false
	}
	if len(doc.Content) == 0 {
		return nil, true
	}
	return doc.Content[0], true
}

func (d *decoder) http(e entry) HTTP {
	var h HTTP
	f := d.fields(e, "http", httpFields)
	at := origin{line: f["listen"].line()}
	if s, ok := d.str(f["listen"], "http.listen"); ok && f["listen"].present() {
		h.Listen = s
	}
	if s, ok := d.fromEnv("BEAT_HTTP_LISTEN"); ok {
		h.Listen, at = s, origin{env: "BEAT_HTTP_LISTEN"}
	}
	if h.Listen == "" {
		return h
	}
	if _, port, err := net.SplitHostPort(h.Listen); err != nil {
		d.problemAt(at, "http.listen %q is not host:port; write it like \":8080\" (every interface) or \"127.0.0.1:8080\", or leave it empty for no listener", h.Listen)
	} else if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && port != "0") {
		d.problemAt(at, "http.listen %q: port %q is not a number from 0 to 65535", h.Listen, port)
	}
	return h
}

func (d *decoder) tasks(e entry, zone *time.Location) []Task {
	n := resolve(e.value)
	switch {
	case isNull(n):
		d.problem(e.line(), "no tasks: add at least one under tasks:")
		return nil
	case n.Kind != yaml.SequenceNode:
		d.problem(e.line(), "tasks: expected a list of tasks, got %s", describe(n))
		return nil
	case len(n.Content) == 0:
		d.problem(e.line(), "no tasks: add at least one under tasks:")
		return nil
	}
	seen := map[string]int{}
	tasks := make([]Task, 0, len(n.Content))
	for _, c := range n.Content {
		tasks = append(tasks, d.task(c, zone, seen))
	}
	return tasks
}

func (d *decoder) task(n *yaml.Node, zone *time.Location, seen map[string]int) (t Task) {
	n = resolve(n)
	t = Task{Line: n.Line, Location: zone, Args: map[string]any{}}
	first := len(d.problems)
	defer func() {
		// Name the task in its problems, also those found before its name.
		for i := first; i < len(d.problems); i++ {
			d.problems[i].Task = t.Name
		}
	}()
	if n.Kind != yaml.MappingNode {
		d.problem(n.Line, "a task must be a mapping with name, schedule and task; got %s", describe(n))
		return t
	}
	f := d.fields(entry{value: n}, "task", taskFields)

	t.Name = d.name(f["name"], n.Line, seen)
	t.Location = d.zone(f["timezone"], zone)
	if s, ok := d.str(f["schedule"], "schedule"); ok {
		t.Spec = s
		if strings.TrimSpace(s) == "" {
			d.problem(f["schedule"].lineOr(n.Line), "missing schedule; %s", scheduleExamples)
		} else if sched, err := schedule.Parse(s, t.Location); err != nil {
			d.problem(f["schedule"].line(), "%v", err)
		} else {
			t.Schedule = sched
			t.Location, _ = schedule.SpecLocation(s, t.Location) // Parse accepted its zone
		}
	}
	typeOK := d.taskType(&t, f["task"], n.Line)
	args, argsOK := d.args(f["args"])
	t.Args = args
	if typeOK && argsOK && d.types != nil {
		if err := d.types.ValidateArgs(t.Type, args); err != nil {
			// A validator may report several problems at once (errors.Join);
			// each gets its own FILE:LINE line, like every other problem.
			for _, line := range strings.Split(err.Error(), "\n") {
				line = strings.TrimSpace(line)
				if line != "" && !strings.HasPrefix(line, "args") {
					line = "args: " + line
				}
				if line != "" {
					d.problem(f["args"].lineOr(n.Line), "%s", line)
				}
			}
		}
	}
	if s, ok := d.str(f["concurrency_policy"], "concurrency_policy"); ok {
		if p, err := lock.ParsePolicy(s); err != nil {
			d.problem(f["concurrency_policy"].line(), "%v", err)
		} else {
			t.ConcurrencyPolicy = p
		}
	}
	t.Timeout, _ = d.nonNegative(f["timeout"], "timeout")
	t.StartingDeadline, _ = d.nonNegative(f["starting_deadline"], "starting_deadline")
	if t.StartingDeadline > 0 && t.StartingDeadline < MinStartingDeadline {
		d.problem(f["starting_deadline"].line(), "starting_deadline %v is too short for a claim to reach the store in time; use at least %v, or leave it out (until the next tick, at most %v)", t.StartingDeadline, MinStartingDeadline, scheduler.DefaultStartingDeadline)
	}
	t.Jitter, _ = d.nonNegative(f["jitter"], "jitter")
	if err := scheduler.CheckTiming(t.Schedule, t.StartingDeadline, t.Jitter); err != nil {
		d.problem(f["jitter"].line(), "%v", err)
	}
	t.Suspend, _ = d.boolean(f["suspend"], "suspend")
	return t
}

// zone reads a time zone setting; absent, null or invalid gives def.
func (d *decoder) zone(e entry, def *time.Location) *time.Location {
	s, ok := d.str(e, "timezone")
	if !ok || !e.present() {
		return def
	}
	loc, err := schedule.LoadLocation(s)
	if err != nil {
		d.problem(e.line(), "timezone: %v", err)
		return def
	}
	return loc
}

func (d *decoder) name(e entry, taskLine int, seen map[string]int) string {
	s, ok := d.str(e, "name")
	switch {
	case !ok:
		return ""
	case s == "":
		d.problem(e.lineOr(taskLine), "missing name: every task needs a unique name")
		return ""
	case !utf8.ValidString(s) || strings.IndexFunc(s, unicode.IsControl) >= 0:
		d.problem(e.line(), "name must not contain control characters")
	case strings.Contains(s, "@"):
		d.problem(e.line(), "name must not contain '@', which beat keeps for the per-tick locks of concurrency_policy Allow; use another character, like '-'")
	case seen[s] > 0:
		d.problem(e.line(), "name is already used by the task at line %d; task names must be unique", seen[s])
	default:
		seen[s] = e.line()
	}
	return s
}

// taskType sets t.Type and reports whether it names a known type.
func (d *decoder) taskType(t *Task, e entry, taskLine int) bool {
	s, ok := d.str(e, "task")
	if !ok {
		return false
	}
	t.Type = s
	var known []string
	if d.types != nil {
		known = d.types.Names()
	}
	registered := "registered types: " + strings.Join(known, ", ")
	if len(known) == 0 {
		registered = "no task types are registered"
	}
	switch {
	case s == "" && d.types == nil:
		d.problem(e.lineOr(taskLine), "missing task: set it to the type of task to run")
	case s == "":
		d.problem(e.lineOr(taskLine), "missing task: set it to the type of task to run; %s", registered)
	case d.types != nil && !slices.Contains(known, s):
		d.problem(e.line(), "unknown task type %q; %s", s, registered)
	default:
		return true
	}
	return false
}
