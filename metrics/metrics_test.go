package metrics_test

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/beatlock/beat/lock"
	"github.com/beatlock/beat/lock/memlock"
	"github.com/beatlock/beat/metrics"
	"github.com/beatlock/beat/scheduler"
)

func TestObserve(t *testing.T) {
	m := metrics.New(metrics.Info{Version: "v1", InstanceID: "pod-1", Backend: "memory"})
	m.Tasks([]string{"a", "b"})
	tick := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for _, ev := range []scheduler.Event{
		{Kind: scheduler.Claimed, Task: "a", Tick: tick, Token: 41, Delay: 20 * time.Millisecond},
		{Kind: scheduler.Succeeded, Task: "a", Tick: tick, Token: 41, Duration: time.Second},
		{Kind: scheduler.Claimed, Task: "a", Tick: tick, Token: 42},
		{Kind: scheduler.Failed, Task: "a", Tick: tick, Token: 42, Err: scheduler.ErrTimeout},
		{Kind: scheduler.Claimed, Task: "a", Tick: tick, Token: 43},
		{Kind: scheduler.Failed, Task: "a", Tick: tick, Token: 43, Err: errors.New("boom")},
		{Kind: scheduler.Missed, Task: "b", Tick: tick, Count: 7},
		{Kind: scheduler.Busy, Task: "b", Tick: tick},
		{Kind: scheduler.AlreadyClaimed, Task: "b", Tick: tick},
		{Kind: scheduler.ClockAhead, Task: "b", Tick: tick},
		{Kind: scheduler.Renewed, Task: "a", Token: 41},
	} {
		m.Observe(ev)
	}
	want := `
# HELP beat_runs_total Runs that ended on this replica, by task and result: succeeded, failed, lost (lease lost, run cancelled), timeout, cancelled (shutdown).
# TYPE beat_runs_total counter
beat_runs_total{result="cancelled",task="a"} 0
beat_runs_total{result="cancelled",task="b"} 0
beat_runs_total{result="failed",task="a"} 1
beat_runs_total{result="failed",task="b"} 0
beat_runs_total{result="lost",task="a"} 0
beat_runs_total{result="lost",task="b"} 0
beat_runs_total{result="succeeded",task="a"} 1
beat_runs_total{result="succeeded",task="b"} 0
beat_runs_total{result="timeout",task="a"} 1
beat_runs_total{result="timeout",task="b"} 0
# HELP beat_fencing_token The fencing token of the last tick this replica claimed, by task.
# TYPE beat_fencing_token gauge
beat_fencing_token{task="a"} 43
# HELP beat_runs_in_progress Runs going on this replica, by task.
# TYPE beat_runs_in_progress gauge
beat_runs_in_progress{task="a"} 0
beat_runs_in_progress{task="b"} 0
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "beat_runs_total", "beat_fencing_token", "beat_runs_in_progress"); err != nil {
		t.Error(err)
	}
	ticks := map[[2]string]float64{
		{"a", "claimed"}: 3, {"b", "missed"}: 7, {"b", "busy"}: 1, {"b", "already_claimed"}: 1,
		{"b", "clock_ahead"}: 1, {"b", "store_lost"}: 0, {"a", "missed"}: 0,
	}
	for k, want := range ticks {
		if got := gather(t, m, "beat_ticks_total", "task", k[0], "outcome", k[1]); got != want {
			t.Errorf("beat_ticks_total{task=%s,outcome=%s} = %v; want %v", k[0], k[1], got, want)
		}
	}
	if got := testutil.CollectAndCount(m.Registry(), "beat_run_duration_seconds"); got != 2 {
		t.Errorf("%d run duration series; want 2, one per task", got)
	}
	if got := gather(t, m, "beat_info", "version", "v1", "instance_id", "pod-1", "backend", "memory"); got != 1 {
		t.Errorf("beat_info = %v; want 1", got)
	}
	if got := gather(t, m, "beat_lease_renewals_total", "task", "a"); got != 1 {
		t.Errorf("renewals = %v; want 1", got)
	}
}

func TestForget(t *testing.T) {
	m := metrics.New(metrics.Info{})
	m.Tasks([]string{"kept", "gone"})
	m.Observe(scheduler.Event{Kind: scheduler.Claimed, Task: "gone", Token: 3})
	m.Observe(scheduler.Event{Kind: scheduler.Succeeded, Task: "gone", Duration: time.Second})
	m.Forget([]string{"gone"})
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	kept := 0
	for _, f := range fams {
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				switch {
				case l.GetName() == "task" && l.GetValue() == "gone":
					t.Errorf("%s still has a series of the forgotten task", f.GetName())
				case l.GetName() == "task" && l.GetValue() == "kept":
					kept++
				}
			}
		}
	}
	if kept < 10 {
		t.Errorf("%d series of the kept task left; want all of them", kept)
	}
}

func TestStoreMeasured(t *testing.T) {
	m := metrics.New(metrics.Info{})
	s := m.Store(memlock.New())
	ctx := context.Background()
	if _, err := s.TryAcquire(ctx, "k", "o", time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TryAcquire(ctx, "", "o", time.Second); err == nil {
		t.Fatal("empty key: no error")
	}
	if _, _, err := s.Epoch(ctx); err != nil {
		t.Fatal(err)
	}
	// Batches pass through to the store's, measured as one call each.
	r, ok := s.(lock.BatchRenewer)
	if !ok {
		t.Fatalf("%T is not a lock.BatchRenewer", s)
	}
	lease := lock.Lease{Task: "t", Key: "t", Owner: "o", Token: 1}
	if got, err := r.RenewBatch(ctx, []lock.Lease{lease, lease}, time.Second); err != nil || len(got) != 2 {
		t.Fatalf("RenewBatch = %v, %v; want 2 answers", got, err)
	}
	lease.Token = 0
	if _, err := r.RenewBatch(ctx, []lock.Lease{lease}, time.Second); err == nil {
		t.Fatal("RenewBatch of a lease without token: no error")
	}
	for _, c := range []struct {
		op, result string
		want       float64
	}{{"try_acquire", "ok", 1}, {"try_acquire", "error", 1}, {"epoch", "ok", 1}, {"claim", "ok", 0},
		{"renew_batch", "ok", 1}, {"renew_batch", "error", 1}, {"renew_lease", "ok", 0}} {
		if got := gather(t, m, "beat_store_operations_total", "op", c.op, "result", c.result); got != c.want {
			t.Errorf("beat_store_operations_total{op=%s,result=%s} = %v; want %v", c.op, c.result, got, c.want)
		}
	}
	var _ lock.Store = s
}

func TestChecksAndReloads(t *testing.T) {
	m := metrics.New(metrics.Info{})
	m.StoreChecked(true, -1500*time.Millisecond)
	if up, skew := gather(t, m, "beat_store_up"), gather(t, m, "beat_clock_skew_seconds"); up != 1 || skew != -1.5 {
		t.Errorf("up %v, skew %v; want 1, -1.5", up, skew)
	}
	m.StoreChecked(false, 0)
	if up, skew := gather(t, m, "beat_store_up"), gather(t, m, "beat_clock_skew_seconds"); up != 0 || skew != -1.5 {
		t.Errorf("up %v, skew %v; want 0, and the last skew measured", up, skew)
	}
	at := time.Unix(1_800_000_000, 0)
	m.Reloaded(true, true, at)
	m.Reloaded(false, false, at.Add(time.Second))
	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"beat_config_reloads_total", []string{"result", "applied"}, 1},
		{"beat_config_reloads_total", []string{"result", "rejected"}, 1},
		{"beat_config_last_reload_successful", nil, 0},
		{"beat_config_last_reload_timestamp_seconds", nil, 1_800_000_001},
		{"beat_config_restart_required", nil, 1}, // a rejected file changes nothing
	}
	for _, c := range checks {
		if got := gather(t, m, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v; want %v", c.name, c.labels, got, c.want)
		}
	}
	m.Reloaded(true, false, at.Add(2*time.Second))
	if got := gather(t, m, "beat_config_restart_required"); got != 0 {
		t.Errorf("restart required after a file that needs none: %v", got)
	}
}

func TestHandlerServesText(t *testing.T) {
	m := metrics.New(metrics.Info{Version: "v1"})
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{`beat_info{backend="",instance_id="",version="v1"} 1`, "go_goroutines", "process_"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// gather returns the value of the series of name with the given label
// pairs, failing the test when there is none.
func gather(t *testing.T, m *metrics.Metrics, name string, labels ...string) float64 {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	series:
		for _, s := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range s.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue series
				}
			}
			switch {
			case s.Counter != nil:
				return s.Counter.GetValue()
			case s.Gauge != nil:
				return s.Gauge.GetValue()
			}
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}

// The README's Observing section lists every metric beat registers.
func TestREADMEListsEveryMetric(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New(metrics.Info{})
	m.Tasks([]string{"t"})
	m.Store(memlock.New())
	m.Observe(scheduler.Event{Kind: scheduler.Claimed, Task: "t", Token: 1}) // the fencing token's gauge
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range fams {
		name := f.GetName()
		if !strings.HasPrefix(name, "beat_") {
			continue
		}
		n++
		if !strings.Contains(string(readme), "| `"+name+"` |") {
			t.Errorf("README.md does not list %s in its metrics table", name)
		}
	}
	if n < 10 {
		t.Errorf("only %d beat_ metrics gathered", n)
	}
}
