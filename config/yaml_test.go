package config

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// TestAliasBombs: files that aliases make far bigger than they are written
// are refused, with a problem naming the file and the fix, before their
// expansion takes much memory.
func TestAliasBombs(t *testing.T) {
	args := "tasks:\n  - name: t\n    schedule: '@hourly'\n    task: log\n    args:\n"
	var nested, merged, mergeList, long strings.Builder
	// Each level doubles: 2^40 values if expanded.
	nested.WriteString(args + "      x0: &x0 [a, a]\n")
	for i := 1; i <= 40; i++ {
		fmt.Fprintf(&nested, "      x%d: &x%d [*x%d, *x%d]\n", i, i, i-1, i-1)
	}
	// Merge keys double too: each level merges the one below twice.
	merged.WriteString(args + "      m0: &m0 {a: 1}\n")
	for i := 1; i <= 40; i++ {
		fmt.Fprintf(&merged, "      m%d: &m%d {<<: [*m%d, *m%d]}\n", i, i, i-1, i-1)
	}
	// A mapping of 3,000 keys merged 3,000 times: 9,000,000 keys read
	// from 40 kB.
	mergeList.WriteString(args + "      a: &a {")
	for i := range 3000 {
		fmt.Fprintf(&mergeList, "k%d: 1, ", i)
	}
	mergeList.WriteString("}\n      b: {<<: [" + strings.Repeat("*a, ", 3000) + "]}\n")
	// A 64 kB string used as the schedule of 3,000 tasks, each quoting it
	// in its problems: gigabytes from 190 kB.
	fmt.Fprintf(&long, "tasks:\n  - {name: t0, schedule: &s '%s', task: log}\n", strings.Repeat("z", 64<<10))
	for i := 1; i < 3000; i++ {
		fmt.Fprintf(&long, "  - {name: t%d, schedule: *s, task: log}\n", i)
	}

	for _, tt := range []struct{ name, file string }{
		{"nested lists", nested.String()},
		{"nested merge keys", merged.String()},
		{"long merge list", mergeList.String()},
		{"long string", long.String()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := Parse("t.yaml", []byte(tt.file), noEnv)
			runtime.ReadMemStats(&after)
			if err == nil || !strings.Contains(err.Error(), "t.yaml:") || !strings.Contains(err.Error(), "aliases make the file too big to read") ||
				!strings.Contains(err.Error(), "use fewer aliases") {
				t.Fatalf("got %.500v, want a problem in t.yaml about the size", err)
			}
			mb := (after.TotalAlloc - before.TotalAlloc) >> 20
			if mb > 100 {
				t.Errorf("allocated %d MB before refusing the file, want at most 100", mb)
			}
			t.Logf("refused %d kB after allocating %d MB", len(tt.file)>>10, mb)
		})
	}
}

// TestLargeScheduleLoads: the limit on aliases does not limit the number of
// tasks.
func TestLargeScheduleLoads(t *testing.T) {
	const n = 100_000
	var b strings.Builder
	b.WriteString("tasks:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - {name: t%d, schedule: '@every 1m', task: log, args: {n: %d}}\n", i, i)
	}
	cfg, err := Parse("t.yaml", []byte(b.String()), noEnv)
	if err != nil {
		t.Fatalf("%.500v", err)
	}
	if len(cfg.Tasks) != n || cfg.Tasks[n-1].Args["n"] != n-1 {
		t.Errorf("got %d tasks, the last with args %v; want %d, the last with n: %d", len(cfg.Tasks), cfg.Tasks[len(cfg.Tasks)-1].Args, n, n-1)
	}
}

// TestSharedSettingsLoad: a large file may merge anchored defaults into
// every task, and share anchored args, which reads several times the file.
func TestSharedSettingsLoad(t *testing.T) {
	const n = 10_000
	var b strings.Builder
	b.WriteString("tasks:\n  - <<: &defaults {schedule: '@every 1m', task: log, timeout: 30s, jitter: 1s, concurrency_policy: Forbid}\n" +
		"    name: t0\n    args: &args {level: info, tags: [a, b, c], retry: true, n: 3}\n")
	for i := 1; i < n; i++ {
		fmt.Fprintf(&b, "  - {<<: *defaults, name: t%d, args: *args}\n", i)
	}
	cfg, err := Parse("t.yaml", []byte(b.String()), noEnv)
	if err != nil {
		t.Fatalf("%.500v", err)
	}
	if len(cfg.Tasks) != n || cfg.Tasks[n-1].Args["n"] != 3 || cfg.Tasks[n-1].Jitter == 0 {
		t.Errorf("got %d tasks, the last %+v; want %d, with the shared settings", len(cfg.Tasks), cfg.Tasks[len(cfg.Tasks)-1], n)
	}
}
