// Package health judges whether a beat process is alive (its scheduler loop
// goes round) and ready (its lock store answers, accepts its credentials,
// and keeps a clock close to its own), for the /healthz and /readyz probes.
//
// Unready is not fatal: the scheduler keeps trying every tick, and a
// replica that is unready because the store is down claims nothing anyway.
package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/beatlock/beat/clock"
	"github.com/beatlock/beat/lock"
)

// Store is what a readiness check asks of the lock store: its epoch and
// clock (lock.Claimer's Epoch), one round trip that also proves the
// credentials.
type Store interface {
	Epoch(ctx context.Context) (epoch, now time.Time, err error)
}

// Loop is the scheduler loop a liveness check watches (scheduler.Scheduler).
type Loop interface {
	// LoopLag is how long ago the loop last went round; zero when it is
	// not running or was told to stop.
	LoopLag() time.Duration
}

// Reload is the result of the last reload of the schedule, shown in the
// readiness details. A rejected reload does not make a replica unready:
// the schedule loaded before keeps running.
type Reload struct {
	At  time.Time
	Err error // nil: applied
	// RestartRequired lists the changed settings that take effect only at
	// a restart.
	RestartRequired []string
}

// Checker keeps the last liveness and readiness verdicts.
type Checker struct {
	store    Store
	loop     Loop
	clock    clock.Clock
	log      *slog.Logger
	maxSkew  time.Duration
	interval time.Duration
	timeout  time.Duration
	stuck    time.Duration
	observe  func(up bool, skew time.Duration)

	mu       sync.Mutex
	checked  bool
	err      error         // the last check's failure; nil when ready
	skew     time.Duration // local clock minus the store's, at the last answer
	rtt      time.Duration
	at       time.Time // of the last check
	reload   *Reload
	loggedAt time.Time // when the failure was last logged
}

// Option configures a Checker.
type Option func(*Checker)

// WithClock sets the clock compared with the store's (default: the system
// clock); give it the scheduler's.
func WithClock(c clock.Clock) Option { return func(k *Checker) { k.clock = c } }

// WithLogger sets where changes of readiness are logged.
func WithLogger(l *slog.Logger) Option { return func(k *Checker) { k.log = l } }

// WithInterval sets how often Run checks the store (default 5s), and how
// long one check may take (default 2s).
func WithInterval(every, timeout time.Duration) Option {
	return func(k *Checker) { k.interval, k.timeout = every, timeout }
}

// WithStuckAfter sets the loop lag from which the process is not alive
// (default 30s: the loop goes round every second, and a probe that fails
// restarts the process).
func WithStuckAfter(d time.Duration) Option { return func(k *Checker) { k.stuck = d } }

// WithObserver calls f after each check of the store: whether it answered,
// and the skew measured.
func WithObserver(f func(up bool, skew time.Duration)) Option {
	return func(k *Checker) { k.observe = f }
}

// New returns a Checker of store and loop; a clock further than maxSkew
// from the store's makes the process unready.
func New(store Store, loop Loop, maxSkew time.Duration, opts ...Option) *Checker {
	k := &Checker{store: store, loop: loop, maxSkew: maxSkew, clock: clock.Real{}, log: slog.Default(),
		interval: 5 * time.Second, timeout: 2 * time.Second, stuck: 30 * time.Second}
	for _, o := range opts {
		o(k)
	}
	return k
}

// Run checks the store at once, then every interval until ctx is done.
func (k *Checker) Run(ctx context.Context) {
	t := time.NewTicker(k.interval)
	defer t.Stop()
	for {
		k.Check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Check asks the store once and keeps the verdict.
func (k *Checker) Check(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	sent := k.clock.Now()
	_, storeNow, err := k.store.Epoch(ctx)
	got := k.clock.Now()
	rtt := got.Sub(sent)
	// The store read its clock somewhere in the round trip: compare it
	// with the middle of it.
	skew := sent.Add(rtt / 2).Sub(storeNow)
	answered := err == nil
	switch {
	case errors.Is(err, lock.ErrRefused):
		// It answers, and says no: its error names the setting to fix.
	case !answered:
		err = fmt.Errorf("the lock store does not answer: %w", err)
	case skew > k.maxSkew || -skew > k.maxSkew:
		dir := "ahead of"
		if skew < 0 {
			dir = "behind"
		}
		err = fmt.Errorf("this replica's clock is %v %s the lock store's, more than lock.max_clock_skew (%v): fix the clock (NTP); the store's clock judges the ticks, and claims too far ahead of it are refused", skew.Abs().Round(time.Millisecond), dir, k.maxSkew)
	}
	if k.observe != nil {
		k.observe(answered, skew)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	was := k.checked && k.err == nil
	k.checked, k.err, k.at = true, err, got
	if answered {
		k.skew, k.rtt = skew, rtt
	}
	switch {
	case err == nil && !was:
		k.log.Info("ready: the lock store answers", "clock_skew", skew, "round_trip", rtt)
	case err != nil && (was || got.Sub(k.loggedAt) >= time.Minute):
		// Once when it happens, then once a minute while it lasts.
		k.loggedAt = got
		k.log.Warn("not ready; ticks are still tried, and claimed when the store answers", "err", err)
	}
}

// SetReload records the result of the last reload of the schedule.
func (k *Checker) SetReload(r Reload) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.reload = &r
}

// Live reports whether the scheduler loop goes round, and how it does.
func (k *Checker) Live() (bool, string) {
	lag := k.loop.LoopLag()
	if lag >= k.stuck {
		return false, fmt.Sprintf("scheduler loop stuck: it last went round %v ago", lag.Round(time.Millisecond))
	}
	return true, fmt.Sprintf("scheduler loop went round %v ago", lag.Round(time.Millisecond))
}

// Ready reports whether the last check found the store answering and the
// clocks close, with one line of detail per check.
func (k *Checker) Ready() (bool, []string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var lines []string
	ready := k.checked && k.err == nil
	switch {
	case !k.checked:
		lines = append(lines, "store: not checked yet")
	case k.err != nil:
		lines = append(lines, "store: "+k.err.Error())
	default:
		lines = append(lines, fmt.Sprintf("store: answers (round trip %v); clock skew %v, within %v",
			k.rtt.Round(time.Microsecond), k.skew.Round(time.Millisecond), k.maxSkew))
	}
	if k.checked {
		lines = append(lines, fmt.Sprintf("checked: %s", k.at.UTC().Format(time.RFC3339)))
	}
	if r := k.reload; r != nil {
		when := r.At.UTC().Format(time.RFC3339)
		if r.Err != nil {
			lines = append(lines, fmt.Sprintf("reload: rejected at %s; the schedule loaded before keeps running: %v", when, r.Err))
		} else {
			lines = append(lines, fmt.Sprintf("reload: applied at %s", when))
		}
		if len(r.RestartRequired) > 0 {
			lines = append(lines, fmt.Sprintf("restart required: %v changed, and take effect only at a restart", r.RestartRequired))
		}
	}
	return ready, lines
}
