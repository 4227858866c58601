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
)

// ticksAfter lists the ticks of recs' starts after t.
func ticksAfter(t *testing.T, recs []runRecord, after time.Time) []time.Time {
	t.Helper()
	var out []time.Time
	for _, r := range recs {
		tick, err := time.Parse(time.RFC3339, r.tick)
		if err != nil {
			t.Fatalf("record tick %q: %v", r.tick, err)
		}
		if r.event == "start" && tick.After(after) {
			out = append(out, tick)
		}
	}
	return out
}

// TestProcessReloadOnSIGHUP: a changed file and SIGHUP; the added task
// runs from its next tick, the removed one is no longer scheduled and its
// run in flight finishes, the changed one ticks on its new schedule, the
// unchanged one goes on; `beat status` (memory backend: asked of the
// running process) lists the removed task's records as stale.
func TestProcessReloadOnSIGHUP(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rec := func(name string) string { return filepath.Join(dir, name) }
	addr := freeAddr(t)
	head := fmt.Sprintf("http: {listen: %q}\ntasks:", addr)
	before := head +
		recordingTask("keep", "@every 1s", "Forbid", rec("keep"), "true", "") +
		recordingTask("drop", "@every 1s", "Forbid", rec("drop"), "sleep 2", "") +
		recordingTask("change", "@every 1s", "Forbid", rec("change"), "true", "")
	after := head +
		recordingTask("keep", "@every 1s", "Forbid", rec("keep"), "true", "") +
		recordingTask("change", "@every 3s", "Forbid", rec("change"), "true", "") +
		recordingTask("new", "@every 1s", "Forbid", rec("new"), "true", "")
	path := writeConfig(t, before)
	p := startBeat(t, path, "reload-test")

	// Reload while a run of drop is going.
	if !waitFor(15*time.Second, func() bool {
		recs := readRecords(t, rec("drop"))
		return len(recs) > 0 && recs[len(recs)-1].event == "start"
	}) {
		t.Fatalf("drop never started; beat's output:\n%s", p.stderr)
	}
	if err := os.WriteFile(path, []byte(after), 0o644); err != nil {
		t.Fatal(err)
	}
	reloaded := time.Now()
	p.signal(t, syscall.SIGHUP)
	if !waitFor(10*time.Second, func() bool { return strings.Contains(p.stderr.String(), `"msg":"schedule reloaded"`) }) {
		t.Fatalf("no \"schedule reloaded\" line; beat's output:\n%s", p.stderr)
	}
	line := lineWith(p.stderr.String(), `"msg":"schedule reloaded"`)
	for _, want := range []string{`"trigger":"SIGHUP"`, `"added":["new"]`, `"removed":["drop"]`, `"changed":["change"]`} {
		if !strings.Contains(line, want) {
			t.Errorf("reload line lacks %s: %s", want, line)
		}
	}
	time.Sleep(5 * time.Second)

	drop := readRecords(t, rec("drop"))
	if last := drop[len(drop)-1]; last.event != "end" {
		t.Errorf("drop's run in flight at the reload did not finish: last record %+v", last)
	}
	// A tick of drop in the second after the reload may have been claimed
	// before the reload reached the loop.
	if late := ticksAfter(t, drop, reloaded.Add(time.Second)); len(late) > 0 {
		t.Errorf("drop ran after it was removed: ticks %v", late)
	}
	if n := len(ticksAfter(t, readRecords(t, rec("new")), reloaded)); n < 3 {
		t.Errorf("new ran %d times in the 5s after the reload; want at least 3", n)
	}
	changed := ticksAfter(t, readRecords(t, rec("change")), reloaded.Add(time.Second))
	if len(changed) == 0 {
		t.Error("change did not run after the reload")
	}
	for _, tick := range changed {
		if tick.Unix()%3 != 0 {
			t.Errorf("change ran at %v after the reload; its new schedule is @every 3s", tick)
		}
	}
	if n := len(ticksAfter(t, readRecords(t, rec("keep")), reloaded)); n < 3 {
		t.Errorf("keep ran %d times in the 5s after the reload; want at least 3", n)
	}
	if got := scrape(t, addr)[`beat_config_reloads_total{result="applied"}`]; got != 1 {
		t.Errorf("beat_config_reloads_total{result=\"applied\"} = %v; want 1", got)
	}

	var out, errOut bytes.Buffer
	env := func(string) (string, bool) { return "", false }
	if code := cli.Main(context.Background(), []string{"status", "--config", path}, cli.WithOutput(&out, &errOut), cli.WithLookupEnv(env)); code != 0 {
		t.Fatalf("beat status: exit %d: %s", code, errOut.String())
	}
	stale := out.String()[strings.Index(out.String(), "STALE")+1:]
	if !strings.Contains(out.String(), "STALE") || !strings.Contains(stale, "drop") || !strings.Contains(out.String(), "new ") {
		t.Errorf("beat status does not list drop as stale and new as a task:\n%s", out.String())
	}
	if code := cli.Main(context.Background(), []string{"status", "--config", path, "--prune", "--yes"}, cli.WithOutput(&out, &errOut), cli.WithLookupEnv(env)); code == 0 ||
		!strings.Contains(errOut.String(), "memory backend") {
		t.Errorf("--prune on the memory backend: exit %d, %q; want a refusal that says why", code, errOut.String())
	}
}

// TestProcessReloadInvalidFile: an invalid file is rejected with every
// problem logged as FILE:LINE, the schedule before keeps running, and
// /readyz and the metrics tell.
func TestProcessReloadInvalidFile(t *testing.T) {
	t.Parallel()
	runs := filepath.Join(t.TempDir(), "runs")
	addr := freeAddr(t)
	good := fmt.Sprintf("http: {listen: %q}\ntasks:", addr) + recordingTask("tick", "@every 1s", "Forbid", runs, "true", "")
	path := writeConfig(t, good)
	p := startBeat(t, path, "invalid-test")
	if !waitFor(15*time.Second, func() bool { return len(readRecords(t, runs)) > 0 }) {
		t.Fatalf("no run; beat's output:\n%s", p.stderr)
	}
	bad := good + "  - {name: tick, schedule: \"@every 1s\", task: log, args: {message: x}}\n  - {name: other, schedule: \"61 * * * *\", task: log, args: {message: x}}\n"
	if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	rejected := time.Now()
	p.signal(t, syscall.SIGHUP)
	if !waitFor(10*time.Second, func() bool { return strings.Contains(p.stderr.String(), "schedule reload rejected") }) {
		t.Fatalf("no rejection logged; beat's output:\n%s", p.stderr)
	}
	logs := p.stderr.String()
	for _, want := range []string{path + `:9: task \"tick\": name is already used`, path + `:10: task \"other\": `} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks the problem %s", want)
		}
	}
	if !waitFor(10*time.Second, func() bool { return len(ticksAfter(t, readRecords(t, runs), rejected)) >= 2 }) {
		t.Error("the schedule from before stopped running after a rejected reload")
	}
	body, code := get(t, addr, "/readyz")
	if code != 200 || !strings.Contains(body, "reload: rejected at") {
		t.Errorf("/readyz = %d %q; want ready, with the rejected reload in its details", code, body)
	}
	if got := scrape(t, addr)["beat_config_last_reload_successful"]; got != 0 {
		t.Errorf("beat_config_last_reload_successful = %v; want 0", got)
	}
	if line := lineWith(logs, "schedule reload rejected"); !strings.Contains(line, `"problems":2`) || strings.Contains(line, "already used") {
		t.Errorf("the rejection line should count the problems logged above it, not repeat them: %s", line)
	}
	if n := strings.Count(p.stderr.String(), "schedule reload rejected"); n != 1 {
		t.Errorf("rejected %d times; the same bad file is not tried again (want 1)", n)
	}
}

// TestProcessReloadOnSymlinkSwap: the file is a ConfigMap volume's, which
// Kubernetes updates by swapping the ..data symlink; beat notices without a
// signal.
func TestProcessReloadOnSymlinkSwap(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mount := filepath.Join(dir, "config")
	if err := os.Mkdir(mount, 0o755); err != nil {
		t.Fatal(err)
	}
	publish := func(version, text string) {
		t.Helper()
		d := filepath.Join(mount, version)
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "schedule.yaml"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(mount, "..data_tmp")
		if err := os.Symlink(version, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(mount, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	first, second := filepath.Join(dir, "first"), filepath.Join(dir, "second")
	publish("..2026_12_01_v1", "tasks:"+recordingTask("first", "@every 1s", "Forbid", first, "true", ""))
	path := filepath.Join(mount, "schedule.yaml")
	if err := os.Symlink("..data/schedule.yaml", path); err != nil {
		t.Fatal(err)
	}
	p := startBeat(t, path, "swap-test")
	if !waitFor(15*time.Second, func() bool { return len(readRecords(t, first)) > 0 }) {
		t.Fatalf("no run; beat's output:\n%s", p.stderr)
	}
	publish("..2026_12_01_v2", "tasks:"+recordingTask("second", "@every 1s", "Forbid", second, "true", ""))
	swapped := time.Now()
	if !waitFor(15*time.Second, func() bool { return len(readRecords(t, second)) > 0 }) {
		t.Fatalf("the new task never ran after the swap; beat's output:\n%s", p.stderr)
	}
	if line := lineWith(p.stderr.String(), `"msg":"schedule reloaded"`); !strings.Contains(line, `"trigger":"the file changed"`) {
		t.Errorf("reload line: %s", line)
	}
	if late := ticksAfter(t, readRecords(t, first), swapped.Add(3*time.Second)); len(late) > 0 {
		t.Errorf("the removed task ran after the swap was applied: %v", late)
	}
}

// lineWith returns the first line of text holding s.
func lineWith(text, s string) string {
	for line := range strings.Lines(text) {
		if strings.Contains(line, s) {
			return line
		}
	}
	return ""
}
