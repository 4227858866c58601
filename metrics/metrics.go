// Package metrics holds beat's Prometheus metrics: what became of every
// tick and run (fed by the scheduler's events), the lock store's operations
// (through Store, a measuring wrapper), the store's health and clock skew,
// and the schedule's reloads.
//
// Label values are bounded: task names come from the schedule, outcomes,
// results and operations from fixed lists.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/beatlock/beat/lock"
	"github.com/beatlock/beat/scheduler"
)

// TickOutcomes are the values of beat_ticks_total's outcome label.
var TickOutcomes = []string{"claimed", "already_claimed", "busy", "missed", "claim_failed", "clock_ahead", "store_lost", "at_capacity"}

// RunResults are the values of beat_runs_total's result label.
var RunResults = []string{lock.RunSucceeded, lock.RunFailed, lock.RunLost, lock.RunTimeout, lock.RunCancelled}

var tickOutcome = map[scheduler.EventKind]string{
	scheduler.Claimed: "claimed", scheduler.AlreadyClaimed: "already_claimed", scheduler.Busy: "busy",
	scheduler.Missed: "missed", scheduler.ClaimFailed: "claim_failed", scheduler.ClockAhead: "clock_ahead",
	scheduler.StoreLost: "store_lost", scheduler.AtCapacity: "at_capacity",
}

// Metrics is one process's metrics, in a registry of their own.
type Metrics struct {
	reg *prometheus.Registry

	ticks, runs, renewals *prometheus.CounterVec
	runDuration           *prometheus.HistogramVec
	startDelay            *prometheus.HistogramVec
	running, token        *prometheus.GaugeVec

	storeOps     *prometheus.CounterVec
	storeLatency *prometheus.HistogramVec
	storeUp      prometheus.Gauge
	clockSkew    prometheus.Gauge

	info *prometheus.GaugeVec

	reloads        *prometheus.CounterVec
	reloadOK       prometheus.Gauge
	reloadTime     prometheus.Gauge
	restartPending prometheus.Gauge
}

// Info is what beat_info tells of the process.
type Info struct{ Version, InstanceID, Backend string }

// New makes the metrics, with Go's runtime and the process's own.
func New(info Info) *Metrics {
	// Run durations range from a log line to hours of batch work.
	runBuckets := prometheus.ExponentialBuckets(0.005, 4, 12) // 5ms .. ~7h
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		ticks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "beat_ticks_total",
			Help: "Ticks this replica handled, by task and outcome: claimed (run here), already_claimed (by another replica), busy (skipped: the previous run still held the lock), missed (its window closed before it could be claimed), claim_failed (the store did not answer in time), clock_ahead (this replica's clock is ahead of the store's), store_lost (the store lost its records), at_capacity (not claimed here: this replica ran max_concurrent_runs).",
		}, []string{"task", "outcome"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "beat_runs_total",
			Help: "Runs that ended on this replica, by task and result: succeeded, failed, lost (lease lost, run cancelled), timeout, cancelled (shutdown).",
		}, []string{"task", "result"}),
		renewals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "beat_lease_renewals_total",
			Help: "Lease renewals of running tasks that succeeded.",
		}, []string{"task"}),
		runDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "beat_run_duration_seconds",
			Help:    "How long runs took, by task.",
			Buckets: runBuckets,
		}, []string{"task"}),
		startDelay: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "beat_run_start_delay_seconds",
			Help:    "How long after its scheduled instant a run started (jitter and retries included), by task.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"task"}),
		running: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "beat_runs_in_progress",
			Help: "Runs going on this replica, by task.",
		}, []string{"task"}),
		token: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "beat_fencing_token",
			Help: "The fencing token of the last tick this replica claimed, by task.",
		}, []string{"task"}),
		storeOps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "beat_store_operations_total",
			Help: "Calls to the lock store, by operation and result (ok, error).",
		}, []string{"op", "result"}),
		storeLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "beat_store_operation_duration_seconds",
			Help:    "Latency of calls to the lock store, by operation.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"op"}),
		storeUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "beat_store_up",
			Help: "1 when the lock store answered the last readiness check, else 0.",
		}),
		clockSkew: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "beat_clock_skew_seconds",
			Help: "This replica's clock minus the lock store's, as the last readiness check measured it.",
		}),
		info: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "beat_info",
			Help: "Always 1; the labels tell the version, the instance id and the lock backend.",
		}, []string{"version", "instance_id", "backend"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "beat_config_reloads_total",
			Help: "Reloads of the schedule file, by result (applied, rejected).",
		}, []string{"result"}),
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "beat_config_last_reload_successful",
			Help: "1 when the last reload of the schedule file was applied (or none was tried), 0 when it was rejected.",
		}),
		reloadTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "beat_config_last_reload_timestamp_seconds",
			Help: "When the schedule file was last loaded, as a Unix time.",
		}),
		restartPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "beat_config_restart_required",
			Help: "1 when a reload changed settings that take effect only at a restart (lock store, listener, instance id).",
		}),
	}
	m.reg.MustRegister(m.ticks, m.runs, m.renewals, m.runDuration, m.startDelay, m.running, m.token,
		m.storeOps, m.storeLatency, m.storeUp, m.clockSkew, m.info,
		m.reloads, m.reloadOK, m.reloadTime, m.restartPending,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.info.WithLabelValues(info.Version, info.InstanceID, info.Backend).Set(1)
	m.reloadOK.Set(1)
	m.reloadTime.Set(float64(time.Now().UnixNano()) / 1e9)
	for _, r := range []string{"applied", "rejected"} {
		m.reloads.WithLabelValues(r)
	}
	return m
}

// Handler serves the metrics in Prometheus's formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Registry is where the metrics are registered, for tests and for
// programs that add their own.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Tasks makes every series of the named tasks exist at zero, so that a
// dashboard sees a task that never missed a tick as 0, not as no data.
func (m *Metrics) Tasks(names []string) {
	for _, n := range names {
		for _, o := range TickOutcomes {
			m.ticks.WithLabelValues(n, o)
		}
		for _, r := range RunResults {
			m.runs.WithLabelValues(n, r)
		}
		m.renewals.WithLabelValues(n)
		m.running.WithLabelValues(n)
		m.runDuration.WithLabelValues(n)
		m.startDelay.WithLabelValues(n)
	}
}

// Forget drops every series of the named tasks, which the schedule no
// longer has: task names come and go with reloads, and their series must
// not pile up.
func (m *Metrics) Forget(names []string) {
	for _, n := range names {
		l := prometheus.Labels{"task": n}
		m.ticks.DeletePartialMatch(l)
		m.runs.DeletePartialMatch(l)
		m.renewals.DeletePartialMatch(l)
		m.runDuration.DeletePartialMatch(l)
		m.startDelay.DeletePartialMatch(l)
		m.running.DeletePartialMatch(l)
		m.token.DeletePartialMatch(l)
	}
}

// Observe counts a scheduler event; give it to scheduler.WithObserver.
func (m *Metrics) Observe(ev scheduler.Event) {
	if o, ok := tickOutcome[ev.Kind]; ok {
		n := 1
		if ev.Kind == scheduler.Missed {
			n = ev.Count
		}
		m.ticks.WithLabelValues(ev.Task, o).Add(float64(n))
	}
	switch ev.Kind {
	case scheduler.Claimed:
		m.running.WithLabelValues(ev.Task).Inc()
		m.token.WithLabelValues(ev.Task).Set(float64(ev.Token))
		m.startDelay.WithLabelValues(ev.Task).Observe(ev.Delay.Seconds())
	case scheduler.Succeeded, scheduler.Failed, scheduler.Lost:
		m.running.WithLabelValues(ev.Task).Dec()
		m.runs.WithLabelValues(ev.Task, ev.RunResult()).Inc()
		m.runDuration.WithLabelValues(ev.Task).Observe(ev.Duration.Seconds())
	case scheduler.Renewed:
		m.renewals.WithLabelValues(ev.Task).Inc()
	}
}

// StoreChecked records a readiness check of the store: whether it
// answered, and the clock skew it measured then.
func (m *Metrics) StoreChecked(up bool, skew time.Duration) {
	if !up {
		m.storeUp.Set(0)
		return
	}
	m.storeUp.Set(1)
	m.clockSkew.Set(skew.Seconds())
}

// Reloaded records a reload of the schedule file: applied or rejected, and
// whether the applied file differs from the running process in settings
// that take effect only at a restart.
func (m *Metrics) Reloaded(applied, restartRequired bool, at time.Time) {
	result, ok := "applied", 1.0
	if !applied {
		result, ok = "rejected", 0
	}
	m.reloads.WithLabelValues(result).Inc()
	m.reloadOK.Set(ok)
	m.reloadTime.Set(float64(at.UnixNano()) / 1e9)
	if applied {
		pending := 0.0
		if restartRequired {
			pending = 1
		}
		m.restartPending.Set(pending)
	}
}
