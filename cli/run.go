package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"time"

	"github.com/google/uuid"

	"github.com/beatlock/beat/admin"
	"github.com/beatlock/beat/clock"
	"github.com/beatlock/beat/config"
	"github.com/beatlock/beat/health"
	"github.com/beatlock/beat/metrics"
	"github.com/beatlock/beat/reload"
	"github.com/beatlock/beat/scheduler"
	"github.com/beatlock/beat/status"
)

func (e *env) run(ctx context.Context, args []string) int {
	fs, path := e.flags("run")
	format := fs.String("log-format", "text", "log format: text or json")
	level := fs.String("log-level", "info", "log level: debug, info, warn or error")
	if ok, code := e.parse(fs, args); !ok {
		return code
	}
	// Before anything else, so that no signal that arrives while beat
	// starts can end it the Go runtime's way.
	sigs := e.signals
	if sigs == nil {
		c := make(chan os.Signal, 4)
		signal.Notify(c, signals...)
		defer signal.Stop(c)
		sigs = c
	}
	log, err := newLogger(e, *format, *level)
	if err != nil {
		return e.usageError(fs, "%v", err)
	}
	cfg, ok := e.load(*path)
	if !ok {
		return ExitFailure
	}
	id := cfg.InstanceID
	if id == "" {
		id = uuid.NewString()
	}
	base := log
	log = log.With("instance", id)
	for _, w := range cfg.Warnings {
		log.Warn("schedule: "+w.Msg, "file", w.File, "line", w.Line)
	}

	store, err := openStore(ctx, cfg, log)
	if err != nil {
		log.Error("cannot use the lock store", "err", err)
		return ExitFailure
	}
	defer store.Close()

	m := metrics.New(metrics.Info{Version: version(), InstanceID: id, Backend: cfg.Lock.Backend})
	m.Tasks(taskNames(cfg))
	clk := clock.Offset{Base: clock.Real{}, By: testClockOffset()}
	measured := m.Store(store)
	s, err := scheduler.New(measured, reload.Tasks(cfg, e.registry.Lookup),
		scheduler.WithInstanceID(id),
		scheduler.WithLogger(base), // the scheduler adds the instance
		scheduler.WithLease(cfg.Lock.TTL, cfg.Lock.RenewInterval),
		scheduler.WithMaxClockSkew(cfg.Lock.MaxClockSkew),
		scheduler.WithMaxConcurrentRuns(cfg.MaxConcurrentRuns),
		scheduler.WithClock(clk),
		scheduler.WithObserver(m.Observe),
	)
	if err != nil {
		log.Error("cannot start", "err", err)
		return ExitFailure
	}
	checker := health.New(measured, s, cfg.Lock.MaxClockSkew,
		health.WithClock(clk), health.WithLogger(log), health.WithObserver(m.StoreChecked))
	reloader := reload.New(cfg, e.loadConfig, e.registry.Lookup, s, reload.WithLogger(log),
		reload.WithObserver(func(r reload.Result) {
			m.Tasks(r.Added)
			m.Forget(r.Removed)
			m.Reloaded(r.Err == nil, len(r.RestartRequired) > 0, r.At)
			checker.SetReload(health.Reload{At: r.At, Err: r.Err, RestartRequired: r.RestartRequired})
		}))

	log.Info("beat starting", "version", version(), "config", cfg.File, "lock_backend", cfg.Lock.Backend, "tasks", len(cfg.Tasks))
	if cfg.HTTP.Listen != "" {
		opts := []admin.Option{admin.WithMetrics(m.Handler()), admin.WithLogger(log)}
		if store.Inspector != nil {
			opts = append(opts, admin.WithStatus(func(ctx context.Context) (any, error) {
				return status.Build(ctx, reloader.Current(), store.Inspector)
			}))
		}
		srv, err := admin.Listen(cfg.HTTP.Listen, checker, opts...)
		if err != nil {
			log.Error("cannot listen; set http.listen (or BEAT_HTTP_LISTEN) to a free address, or to \"\" for no listener", "err", err)
			return ExitFailure
		}
		log.Info("listening", "addr", srv.Addr(), "endpoints", "/metrics /healthz /readyz /status")
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = srv.Shutdown(ctx)
		}()
	}

	if err := s.Start(ctx); err != nil {
		log.Error("cannot start", "err", err)
		return ExitFailure
	}
	bg, stopBackground := context.WithCancel(context.Background())
	defer stopBackground()
	go checker.Run(bg)
	go reloader.Watch(bg)

	done := make(chan struct{})
	defer close(done)
	shutdowns := e.handleSignals(sigs, done, log, func() { reloader.Request("SIGHUP") })
	var sig os.Signal
	select {
	case sig = <-shutdowns:
	case <-ctx.Done():
	}
	stopBackground()
	log.Info("shutting down: no new ticks; waiting for running tasks", "signal", fmt.Sprint(sig), "shutdown_timeout", cfg.ShutdownTimeout)
	stopCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- s.Stop(stopCtx) }()
	select {
	case err = <-stopped:
	case sig = <-shutdowns:
		log.Warn("second signal: cancelling running tasks and exiting now", "signal", sig.String())
		// StopAndCancel gives the cancelled runs a moment to return (an
		// exec task's processes get SIGTERM, then SIGKILL), then releases
		// the locks.
		err = s.StopAndCancel(stopCtx)
	}
	if err != nil {
		// Shut down anyway: the locks expire within their ttl.
		log.Error("shutdown incomplete", "err", err)
	}
	return ExitOK
}

func taskNames(cfg *config.Config) []string {
	names := make([]string, len(cfg.Tasks))
	for i, t := range cfg.Tasks {
		names[i] = t.Name
	}
	return names
}

// action is what a signal asks of `beat run`.
type action uint8

const (
	ignore          action = iota // logged, and otherwise ignored
	ignoreQuietly                 // SIGPIPE: a closed stderr is no reason to stop
	reloadSchedule                // SIGHUP
	shutDown                      // the shutdown sequence
	dumpAndShutDown               // SIGQUIT: the goroutines' stacks, then the shutdown sequence
)

// handleSignals delivers, until done is closed, each signal from sigs that
// asks for shutdown, and handles the others itself: SIGHUP calls reload,
// which must not block (a shutdown signal must not wait for a reload), the
// others are logged and ignored.
func (e *env) handleSignals(sigs <-chan os.Signal, done <-chan struct{}, log *slog.Logger, reload func()) <-chan os.Signal {
	out := make(chan os.Signal, 2)
	go func() {
		for {
			var sig os.Signal
			select {
			case sig = <-sigs:
			case <-done:
				return
			}
			switch signalAction(sig) {
			case ignore:
				log.Warn("signal ignored: beat reloads its schedule on SIGHUP and stops on SIGTERM or SIGINT", "signal", sig.String())
			case ignoreQuietly:
			case reloadSchedule:
				reload()
			case dumpAndShutDown:
				_ = pprof.Lookup("goroutine").WriteTo(e.stderr, 2)
				out <- sig
			case shutDown:
				out <- sig
			}
		}
	}()
	return out
}
