package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/beatlock/beat/clock"
	"github.com/beatlock/beat/scheduler"
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
		fmt.Fprintf(e.stderr, "beat run: %v\n", err)
		return ExitUsage
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

	if cfg.Lock.Backend == "redis" {
		// Process-wide, like the flag and signal handling of Main.
		redis.SetLogger(redisLogger{log})
	}
	store, closeStore, err := openStore(cfg)
	if err != nil {
		log.Error("cannot use the lock store", "err", err)
		return ExitFailure
	}
	defer closeStore()

	ts := make([]scheduler.Task, len(cfg.Tasks))
	for i, t := range cfg.Tasks {
		fn, _ := e.registry.Lookup(t.Type) // the config checked it exists
		ts[i] = scheduler.Task{
			Name: t.Name, Schedule: t.Schedule, Func: fn, Type: t.Type, Args: t.Args,
			Timeout: t.Timeout, Policy: t.ConcurrencyPolicy, StartingDeadline: t.StartingDeadline,
			Suspend: t.Suspend, Jitter: t.Jitter,
		}
	}
	s, err := scheduler.New(store, ts,
		scheduler.WithInstanceID(id),
		scheduler.WithLogger(base), // the scheduler adds the instance
		scheduler.WithLease(cfg.Lock.TTL, cfg.Lock.RenewInterval),
		scheduler.WithMaxClockSkew(cfg.Lock.MaxClockSkew),
		scheduler.WithClock(clock.Offset{Base: clock.Real{}, By: testClockOffset()}),
	)
	if err != nil {
		log.Error("cannot start", "err", err)
		return ExitFailure
	}

	log.Info("beat starting", "version", version(), "config", cfg.File, "lock_backend", cfg.Lock.Backend, "tasks", len(ts))
	if err := s.Start(ctx); err != nil {
		log.Error("cannot start", "err", err)
		return ExitFailure
	}

	done := make(chan struct{})
	defer close(done)
	shutdowns := e.shutdownSignals(sigs, done, log)
	var sig os.Signal
	select {
	case sig = <-shutdowns:
	case <-ctx.Done():
	}
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

// action is what a signal asks of `beat run`.
type action uint8

const (
	ignore          action = iota // logged, and otherwise ignored
	ignoreQuietly                 // SIGPIPE: a closed stderr is no reason to stop
	shutDown                      // the shutdown sequence
	dumpAndShutDown               // SIGQUIT: the goroutines' stacks, then the shutdown sequence
)

// shutdownSignals delivers, until done is closed, each signal from sigs
// that asks for shutdown, and handles the others itself: they are logged
// and ignored (SIGHUP will reload the schedule once reload exists).
func (e *env) shutdownSignals(sigs <-chan os.Signal, done <-chan struct{}, log *slog.Logger) <-chan os.Signal {
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
				log.Warn("signal ignored: beat does not reload its schedule yet; it keeps running the one it loaded", "signal", sig.String())
			case ignoreQuietly:
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
