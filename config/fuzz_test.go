package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse checks that no input panics, and that Parse returns either a
// complete config or a *ValidationError with at least one problem.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		"", "~", "[]", "tasks: *a", "a: &a [*a]\ntasks: [*a]",
		"tasks:\n  - {<<: &m {name: x, task: log}, schedule: '@daily', args: {<<: *m}}\n",
		"lock: {ttl: 1ms, renew_interval: 999us, redis: {url: 'unix:///tmp/r.sock'}}\ntasks: [{name: a, schedule: 'TZ=Asia/Tokyo @every 1s', task: exec, args: {command: [a]}}]\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("f.yaml", data, WithTaskTypes(testTypes), noEnv)
		if err != nil {
			var verr *ValidationError
			if !errors.As(err, &verr) || len(verr.Problems) == 0 {
				t.Fatalf("got %T %v, want a *ValidationError with problems", err, err)
			}
			return
		}
		if len(cfg.Tasks) == 0 || cfg.Timezone == nil || cfg.Lock.TTL <= 0 || cfg.Lock.RenewInterval >= cfg.Lock.TTL {
			t.Fatalf("accepted an invalid config: %+v", cfg)
		}
		for _, task := range cfg.Tasks {
			if task.Name == "" || task.Schedule == nil || task.Args == nil || task.Location == nil {
				t.Fatalf("accepted an incomplete task: %+v", task)
			}
		}
	})
}
