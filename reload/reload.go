// Package reload keeps a running scheduler on the schedule file: it reloads
// the file when asked (SIGHUP) and when its content changes (a ConfigMap
// that Kubernetes updates by swapping a symlink, an editor's save), checks
// it as `beat validate` does, and applies its tasks without a restart.
//
// An invalid file changes nothing: its problems are logged, each as
// FILE:LINE, and the schedule loaded before keeps running. Settings that a
// running process cannot change (the lock store, the listener, the
// instance id) are reported as needing a restart; the tasks are applied
// all the same.
package reload

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/beatlock/beat/config"
	"github.com/beatlock/beat/scheduler"
	"github.com/beatlock/beat/tasks"
)

// Lookup finds a registered task type's function (tasks.Registry.Lookup).
type Lookup func(typ string) (tasks.Func, bool)

// Tasks turns a loaded file's tasks into the scheduler's.
func Tasks(cfg *config.Config, lookup Lookup) []scheduler.Task {
	ts := make([]scheduler.Task, len(cfg.Tasks))
	for i, t := range cfg.Tasks {
		fn, _ := lookup(t.Type) // loading checked that it exists
		ts[i] = scheduler.Task{
			Name: t.Name, Schedule: t.Schedule, Func: fn, Type: t.Type, Args: t.Args,
			Timeout: t.Timeout, Policy: t.ConcurrencyPolicy, StartingDeadline: t.StartingDeadline,
			Suspend: t.Suspend, Jitter: t.Jitter,
		}
	}
	return ts
}

// Scheduler is what a Reloader updates (scheduler.Scheduler).
type Scheduler interface {
	Update(ctx context.Context, ts []scheduler.Task) error
}

// Result is what became of one reload.
type Result struct {
	At time.Time
	// Err is why the file was rejected; nil when it was applied (or had
	// not changed). A *config.ValidationError lists its problems.
	Err error
	// Unchanged is set when the file held what is running already.
	Unchanged bool
	// Added, Removed and Changed name the tasks.
	Added, Removed, Changed []string
	// RestartRequired lists the settings that differ from those the
	// process started with and take effect only at a restart.
	RestartRequired []string
}

// Reloader reloads one schedule file into one scheduler.
type Reloader struct {
	path     string
	load     func(path string) (*config.Config, error)
	lookup   Lookup
	sched    Scheduler
	log      *slog.Logger
	interval time.Duration
	observe  func(Result)

	started *config.Config // what the process started with

	requests   chan string // reloads asked for (SIGHUP): at most one waits
	unreadable bool        // Watch could not read the file last time

	mu       sync.Mutex // one reload at a time; guards the fields below
	current  *config.Config
	seen     [sha256.Size]byte // the content last loaded, applied or not
	rejected bool              // the last reload was rejected
}

// Option configures a Reloader.
type Option func(*Reloader)

// WithLogger sets where reloads are logged (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(r *Reloader) { r.log = l } }

// WithInterval sets how often Watch reads the file to see whether it
// changed (default 2s).
func WithInterval(d time.Duration) Option { return func(r *Reloader) { r.interval = d } }

// WithObserver calls f with the result of every reload that was applied
// or rejected (not of those that found the file unchanged).
func WithObserver(f func(Result)) Option { return func(r *Reloader) { r.observe = f } }

// New returns a Reloader of the file that cfg was loaded from, into sched,
// which runs cfg's tasks. load loads a file as the process did at start
// (the same task types and environment).
func New(cfg *config.Config, load func(path string) (*config.Config, error), lookup Lookup, sched Scheduler, opts ...Option) *Reloader {
	r := &Reloader{path: cfg.File, load: load, lookup: lookup, sched: sched, log: slog.Default(),
		interval: 2 * time.Second, started: cfg, current: cfg, requests: make(chan string, 1)}
	for _, o := range opts {
		o(r)
	}
	if data, err := os.ReadFile(r.path); err == nil {
		r.seen = sha256.Sum256(data)
	}
	return r
}

// Current returns the configuration running now.
func (r *Reloader) Current() *config.Config {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.current
}

// Request asks Watch for a reload, saying why (a signal). Requests that
// come while one waits are one: a storm of signals is one reload.
func (r *Reloader) Request(why string) {
	select {
	case r.requests <- why:
	default:
	}
}

// Watch reloads the file when asked (Request) and whenever its content
// changes, until ctx is done. It reads the file every interval rather than
// watching for events: a ConfigMap update replaces a symlink two levels
// up, which file events on the file itself never see, and reading a small
// file is cheap.
func (r *Reloader) Watch(ctx context.Context) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case why := <-r.requests:
			r.Reload(ctx, why)
			continue
		case <-t.C:
		}
		data, err := os.ReadFile(r.path)
		if err != nil {
			// Mid-swap, or gone: said once, and the next read tells.
			if !r.unreadable {
				r.log.Warn("cannot read the schedule file; the schedule loaded before keeps running", "file", r.path, "err", err)
			}
			r.unreadable = true
			continue
		}
		r.unreadable = false
		r.mu.Lock()
		changed := sha256.Sum256(data) != r.seen
		r.mu.Unlock()
		if changed {
			r.Reload(ctx, "the file changed")
		}
	}
}

// Reload loads the file and applies it, saying why in the log (a signal,
// the file changed), and returns what became of it. Once ctx is done (beat
// is stopping) it does nothing.
func (r *Reloader) Reload(ctx context.Context, why string) Result {
	if err := ctx.Err(); err != nil {
		return Result{At: time.Now(), Err: err}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	res := r.reload(ctx)
	log := r.log.With("file", r.path, "trigger", why)
	switch {
	case res.Err != nil:
		const msg = "schedule reload rejected; the schedule loaded before keeps running"
		var verr *config.ValidationError
		if !errors.As(res.Err, &verr) {
			log.Error(msg, "err", res.Err)
			break
		}
		for _, p := range verr.Problems {
			log.Error("schedule reload: problem", "problem", p.String())
		}
		log.Error(msg, "problems", len(verr.Problems))
	case res.Unchanged:
		log.Info("schedule reload: nothing changed")
	default:
		var attrs []any
		for _, l := range []struct {
			key   string
			names []string
		}{{"added", res.Added}, {"removed", res.Removed}, {"changed", res.Changed}} {
			if len(l.names) > 0 {
				attrs = append(attrs, l.key, l.names)
			}
		}
		log.Info("schedule reloaded", attrs...)
	}
	if len(res.RestartRequired) > 0 && res.Err == nil {
		log.Warn("settings changed that take effect only at a restart; restart beat to apply them (the tasks were reloaded)", "settings", res.RestartRequired)
	}
	// A file that holds what runs is news after a rejected one: the
	// rejection is over.
	if r.observe != nil && (!res.Unchanged || r.rejected) {
		r.observe(res)
	}
	r.rejected = res.Err != nil
	return res
}

func (r *Reloader) reload(ctx context.Context) Result {
	res := Result{At: time.Now()}
	data, err := os.ReadFile(r.path)
	if err != nil {
		res.Err = err // names the file
		return res
	}
	r.seen = sha256.Sum256(data)
	cfg, err := r.load(r.path)
	if err != nil {
		res.Err = err
		return res
	}
	res.Added, res.Removed, res.Changed = diffTasks(r.current.Tasks, cfg.Tasks)
	res.RestartRequired = restartRequired(r.started, cfg)
	if len(res.Added)+len(res.Removed)+len(res.Changed) == 0 {
		res.Unchanged = slices.Equal(res.RestartRequired, restartRequired(r.started, r.current))
		r.current = cfg
		return res
	}
	if err := r.sched.Update(ctx, Tasks(cfg, r.lookup)); err != nil {
		res.Err = fmt.Errorf("apply: %w", err)
		return res
	}
	r.current = cfg
	return res
}

// diffTasks names the tasks added, removed and changed from old to new.
func diffTasks(old, new []config.Task) (added, removed, changed []string) {
	before := make(map[string]config.Task, len(old))
	for _, t := range old {
		before[t.Name] = t
	}
	for _, t := range new {
		o, ok := before[t.Name]
		switch {
		case !ok:
			added = append(added, t.Name)
		case !sameTask(o, t):
			changed = append(changed, t.Name)
		}
		delete(before, t.Name)
	}
	for name := range before {
		removed = append(removed, name)
	}
	slices.Sort(removed)
	return added, removed, changed
}

// sameTask compares what a task does and when, not where it was written.
func sameTask(a, b config.Task) bool {
	return a.Spec == b.Spec && a.Location.String() == b.Location.String() && a.Type == b.Type &&
		reflect.DeepEqual(a.Args, b.Args) && a.Timeout == b.Timeout &&
		a.ConcurrencyPolicy == b.ConcurrencyPolicy && a.StartingDeadline == b.StartingDeadline &&
		a.Suspend == b.Suspend && a.Jitter == b.Jitter
}

// restartRequired names the settings of cfg that differ from those the
// process started with and that it cannot change while it runs.
func restartRequired(started, cfg *config.Config) []string {
	var out []string
	add := func(name string, differs bool) {
		if differs {
			out = append(out, name)
		}
	}
	add("instance_id", started.InstanceID != cfg.InstanceID)
	add("shutdown_timeout", started.ShutdownTimeout != cfg.ShutdownTimeout)
	add("max_concurrent_runs", started.MaxConcurrentRuns != cfg.MaxConcurrentRuns)
	add("http.listen", started.HTTP != cfg.HTTP)
	a, b := started.Lock, cfg.Lock
	add("lock.backend", a.Backend != b.Backend)
	add("lock.ttl", a.TTL != b.TTL)
	add("lock.renew_interval", a.RenewInterval != b.RenewInterval)
	add("lock.max_clock_skew", a.MaxClockSkew != b.MaxClockSkew)
	ra, rb := a.Redis, b.Redis
	add("lock.redis.url", ra.URL != rb.URL)
	add("lock.redis.addrs", !slices.Equal(ra.Addrs, rb.Addrs))
	add("lock.redis.mode", ra.Mode != rb.Mode)
	add("lock.redis.sentinel_master", ra.SentinelMaster != rb.SentinelMaster)
	add("lock.redis.username", ra.Username != rb.Username)
	add("lock.redis.password", ra.Password != rb.Password)
	add("lock.redis.key_prefix", ra.KeyPrefix != rb.KeyPrefix)
	add("lock.redis.tls", ra.TLS != rb.TLS)
	add("lock.redis.min_replicas", ra.MinReplicas != rb.MinReplicas)
	add("lock.postgres.url", a.Postgres.URL != b.Postgres.URL)
	add("lock.postgres.table", a.Postgres.Table != b.Postgres.Table)
	return out
}
