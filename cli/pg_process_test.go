package cli_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/beatlock/beat/cli"
	"github.com/beatlock/beat/internal/pgtest"
)

// TestProcessPostgresReplicas: three replicas of the real binary on
// PostgreSQL; `run` before `beat migrate` says to run it; after it, every
// tick in the window runs exactly once across the three, and SIGTERM ends
// each cleanly.
func TestProcessPostgresReplicas(t *testing.T) {
	t.Parallel()
	pgtest.Config(t) // skips (or fails, if required) without PostgreSQL
	table := pgtest.Table(t)
	runs := filepath.Join(t.TempDir(), "runs")
	path := writeConfig(t, fmt.Sprintf(`
lock:
  backend: postgres
  ttl: 3s
  postgres: {url: %q, table: %q}
tasks:`, pgtest.URL(), table)+recordingTask("tick", "@every 1s", "Forbid", runs, "true", ""))
	noEnv := cli.WithLookupEnv(func(string) (string, bool) { return "", false })

	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if code := cli.Main(ctx, []string{"run", "--config", path}, cli.WithOutput(&out, &errOut), noEnv,
		cli.WithSignals(make(chan os.Signal))); code != cli.ExitFailure || !strings.Contains(errOut.String(), "beat migrate") {
		t.Fatalf("run before migrate: exit %d, stderr:\n%s\nwant exit 1 saying to run beat migrate", code, errOut.String())
	}
	for range 2 { // idempotent
		out.Reset()
		if code := cli.Main(ctx, []string{"migrate", "--config", path}, cli.WithOutput(&out, &errOut), noEnv); code != 0 {
			t.Fatalf("beat migrate: exit %d: %s", code, errOut.String())
		}
	}
	if !strings.Contains(out.String(), table+"_tasks") {
		t.Errorf("beat migrate said %q", out.String())
	}

	var ps []*beatProcess
	for i := range 3 {
		ps = append(ps, startBeat(t, path, fmt.Sprintf("pg-%d", i)))
	}
	start := time.Now()
	time.Sleep(8 * time.Second)
	end := time.Now()
	for _, p := range ps {
		p.signal(t, syscall.SIGTERM)
	}
	for _, p := range ps {
		if code, _ := p.wait(t, 20*time.Second); code != 0 {
			t.Errorf("exit code %d after SIGTERM; want 0", code)
		}
	}
	starts := startsPerTick(readRecords(t, runs))
	// Every whole second well inside the window ran once: not before the
	// replicas were up, not after they began to stop.
	for tick := start.Truncate(time.Second).Add(3 * time.Second); tick.Before(end.Add(-time.Second)); tick = tick.Add(time.Second) {
		if n := starts[tick.UTC().Format(time.RFC3339)]; n != 1 {
			t.Errorf("tick %s ran %d times; want once", tick.UTC().Format(time.TimeOnly), n)
		}
	}
	for tick, n := range starts {
		if n > 1 {
			t.Errorf("tick %s ran %d times", tick, n)
		}
	}
}

// TestOldTables: on tables an older beat made (a column missing), `run` and
// `status` refuse to start, saying to run beat migrate, rather than run a
// replica whose every claim fails; after `beat migrate` both work.
func TestOldTables(t *testing.T) {
	t.Parallel()
	pool := pgtest.Pool(t) // skips (or fails, if required) without PostgreSQL
	table := pgtest.Table(t)
	path := writeConfig(t, fmt.Sprintf(`
lock:
  backend: postgres
  postgres: {url: %q, table: %q}
tasks:
  - {name: t, schedule: "@every 1h", task: log, args: {message: hi}}
`, pgtest.URL(), table))
	noEnv := cli.WithLookupEnv(func(string) (string, bool) { return "", false })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	main := func(args ...string) (int, string) {
		var out, errOut bytes.Buffer
		code := cli.Main(ctx, append(args, "--config", path), cli.WithOutput(&out, &errOut), noEnv, cli.WithSignals(make(chan os.Signal)))
		return code, out.String() + errOut.String()
	}
	if code, out := main("migrate"); code != 0 {
		t.Fatalf("beat migrate: exit %d: %s", code, out)
	}
	if _, err := pool.Exec(ctx, `ALTER TABLE `+table+`_tasks DROP COLUMN rival`); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"run", "status"} {
		if code, out := main(cmd); code != cli.ExitFailure || !strings.Contains(out, "lack columns") || !strings.Contains(out, "run `beat migrate`") {
			t.Errorf("%s on old tables: exit %d:\n%s\nwant exit %d saying the tables lack columns and to run beat migrate", cmd, code, out, cli.ExitFailure)
		}
	}
	if code, out := main("migrate"); code != 0 {
		t.Fatalf("beat migrate: exit %d: %s", code, out)
	}
	if code, out := main("status"); code != 0 {
		t.Errorf("status after migrate: exit %d: %s", code, out)
	}
}
