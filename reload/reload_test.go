package reload_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beatlock/beat/config"
	"github.com/beatlock/beat/reload"
	"github.com/beatlock/beat/scheduler"
	"github.com/beatlock/beat/tasks"
)

const base = `lock: {ttl: 30s}
tasks:
  - {name: a, schedule: "@every 10s", task: noop}
  - {name: b, schedule: "@hourly", task: noop}
`

// recordingScheduler keeps the task names of each Update.
type recordingScheduler struct {
	mu      sync.Mutex
	updates [][]string
	err     error
}

func (r *recordingScheduler) Update(ctx context.Context, ts []scheduler.Task) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	var names []string
	for _, t := range ts {
		names = append(names, t.Name)
	}
	r.updates = append(r.updates, names)
	return nil
}

func (r *recordingScheduler) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.updates)
}

var registry = func() *tasks.Registry {
	r := tasks.NewRegistry()
	if err := r.Register("noop", func(context.Context, tasks.Run) error { return nil }); err != nil {
		panic(err)
	}
	return r
}()

func load(path string) (*config.Config, error) {
	return config.Load(path, config.WithTaskTypes(registry), config.WithLookupEnv(func(string) (string, bool) { return "", false }))
}

func start(t *testing.T, path string, opts ...reload.Option) (*reload.Reloader, *recordingScheduler) {
	t.Helper()
	cfg, err := load(path)
	if err != nil {
		t.Fatal(err)
	}
	sched := &recordingScheduler{}
	opts = append([]reload.Option{reload.WithLogger(slog.New(slog.DiscardHandler))}, opts...)
	return reload.New(cfg, load, registry.Lookup, sched, opts...), sched
}

func write(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReload(t *testing.T) {
	tests := []struct {
		name                      string
		file                      string
		wantErr                   string
		added, removed, changed   []string
		restart                   []string
		wantUpdate, wantUnchanged bool
	}{
		{name: "same file", file: base, wantUnchanged: true},
		{name: "comment only", file: "# edited\n" + base, wantUnchanged: true},
		{name: "task added, removed and changed",
			file:  "tasks:\n  - {name: a, schedule: \"@every 20s\", task: noop}\n  - {name: c, schedule: \"@daily\", task: noop}\n",
			added: []string{"c"}, removed: []string{"b"}, changed: []string{"a"}, wantUpdate: true},
		{name: "args changed", file: strings.Replace(base, "task: noop}\n  - {name: b", "task: noop, args: {message: hi}}\n  - {name: b", 1),
			changed: []string{"a"}, wantUpdate: true},
		{name: "store settings need a restart", file: strings.Replace(base, "ttl: 30s", "ttl: 40s, backend: redis", 1),
			restart: []string{"lock.backend", "lock.ttl", "lock.renew_interval"}},
		{name: "invalid file", file: "tasks:\n  - {name: a, schedule: \"@every 10s\", task: nope}\n  - {name: a, schedule: bad, task: noop}\n",
			wantErr: `schedule.yaml:2: task "a": unknown task type "nope"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "schedule.yaml")
			write(t, path, base)
			var observed []reload.Result
			r, sched := start(t, path, reload.WithObserver(func(res reload.Result) { observed = append(observed, res) }))
			write(t, path, tt.file)
			res := r.Reload(context.Background(), "test")
			if got := errString(res.Err); !strings.Contains(got, tt.wantErr) || (tt.wantErr == "") != (got == "") {
				t.Fatalf("Err = %q; want %q", got, tt.wantErr)
			}
			if !slices.Equal(res.Added, tt.added) || !slices.Equal(res.Removed, tt.removed) || !slices.Equal(res.Changed, tt.changed) {
				t.Errorf("added %v removed %v changed %v; want %v %v %v", res.Added, res.Removed, res.Changed, tt.added, tt.removed, tt.changed)
			}
			if !slices.Equal(res.RestartRequired, tt.restart) {
				t.Errorf("restart required %v; want %v", res.RestartRequired, tt.restart)
			}
			if res.Unchanged != tt.wantUnchanged {
				t.Errorf("Unchanged = %v; want %v", res.Unchanged, tt.wantUnchanged)
			}
			if got := sched.count() == 1; got != tt.wantUpdate {
				t.Errorf("scheduler updated: %v; want %v", got, tt.wantUpdate)
			}
			if want := !tt.wantUnchanged; (len(observed) == 1) != want {
				t.Errorf("observed %d results; want one: %v", len(observed), want)
			}
			cur := r.Current()
			if tt.wantErr != "" && len(cur.Tasks) != 2 {
				t.Errorf("after a rejected file, Current() has %d tasks; want the 2 loaded before", len(cur.Tasks))
			}
		})
	}
}

func TestReloadSchedulerRefuses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "schedule.yaml")
	write(t, path, base)
	r, sched := start(t, path)
	sched.err = scheduler.ErrStopped
	write(t, path, strings.Replace(base, "@hourly", "@daily", 1))
	res := r.Reload(context.Background(), "test")
	if !errors.Is(res.Err, scheduler.ErrStopped) {
		t.Errorf("Err = %v; want the scheduler's", res.Err)
	}
	if r.Current().Tasks[1].Spec != "@hourly" {
		t.Error("a file the scheduler refused became Current()")
	}
}

// Kubernetes updates a mounted ConfigMap by writing a new directory and
// swapping the ..data symlink that the file's own symlink goes through.
func TestWatchSeesSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	version := func(name, text string) {
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(dir, name, "schedule.yaml"), text)
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(name, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	version("..v1", base)
	path := filepath.Join(dir, "schedule.yaml")
	if err := os.Symlink("..data/schedule.yaml", path); err != nil {
		t.Fatal(err)
	}
	results := make(chan reload.Result, 10)
	r, sched := start(t, path, reload.WithInterval(10*time.Millisecond), reload.WithObserver(func(res reload.Result) { results <- res }))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Watch(ctx)

	version("..v2", base+"  - {name: c, schedule: \"@daily\", task: noop}\n")
	select {
	case res := <-results:
		if res.Err != nil || !slices.Equal(res.Added, []string{"c"}) {
			t.Errorf("after the swap: %+v; want c added", res)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the symlink swap was not noticed")
	}
	version("..v3", "tasks: [")
	select {
	case res := <-results:
		if res.Err == nil {
			t.Error("an invalid file was applied")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the second swap was not noticed")
	}
	// A rejected file is not tried again and again.
	time.Sleep(100 * time.Millisecond)
	if len(results) != 0 || sched.count() != 1 {
		t.Errorf("%d more results, %d updates; want none more, and 1 update", len(results), sched.count())
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// A file put back as it was after a rejected edit ends the rejection.
func TestRevertAfterRejectionIsReported(t *testing.T) {
	path := filepath.Join(t.TempDir(), "schedule.yaml")
	write(t, path, base)
	var observed []reload.Result
	r, _ := start(t, path, reload.WithObserver(func(res reload.Result) { observed = append(observed, res) }))
	write(t, path, base+"garbage: [\n")
	r.Reload(context.Background(), "test")
	write(t, path, base)
	r.Reload(context.Background(), "test")
	r.Reload(context.Background(), "test") // unchanged, and nothing to clear: not news
	if len(observed) != 2 || observed[0].Err == nil || observed[1].Err != nil || !observed[1].Unchanged {
		t.Errorf("observed %+v; want the rejection, then the unchanged file that ends it, and nothing after", observed)
	}
}

// Requests that come while one waits are one reload; the watcher says once
// that it cannot read the file, not at every look.
func TestWatchCoalescesAndWarnsOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "schedule.yaml")
	write(t, path, base)
	var mu sync.Mutex
	var logs strings.Builder
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}), nil))
	r, _ := start(t, path, reload.WithInterval(10*time.Millisecond), reload.WithLogger(log))
	for range 100 {
		r.Request("SIGHUP")
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Watch(ctx); close(done) }()
	time.Sleep(300 * time.Millisecond)
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	text := logs.String()
	if n := strings.Count(text, "trigger=SIGHUP"); n != 1 {
		t.Errorf("%d reloads for 100 requests made before the watcher ran; want 1:\n%s", n, text)
	}
	if n := strings.Count(text, "cannot read the schedule file"); n != 1 {
		t.Errorf("said %d times that the file cannot be read; want once:\n%s", n, text)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
