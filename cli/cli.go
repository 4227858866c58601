// Package cli is the beat command line as a library: a program that
// registers its own task types calls Main from its own main, and gets the
// same commands, flags and behaviour as cmd/beat.
//
//	func main() {
//		tasks.Register("report", sendReport)
//		os.Exit(cli.Main(context.Background(), os.Args[1:]))
//	}
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"

	"github.com/beatlock/beat/config"
	"github.com/beatlock/beat/tasks"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1 // the command failed: invalid schedule, store unusable
	ExitUsage   = 2 // the command line itself is wrong
)

// Option configures Main.
type Option func(*env)

// WithRegistry sets the task types schedules may use (default tasks.Default()).
func WithRegistry(r *tasks.Registry) Option { return func(e *env) { e.registry = r } }

// WithOutput sets where normal output and errors (and logs) go (default
// os.Stdout and os.Stderr).
func WithOutput(stdout, stderr io.Writer) Option {
	return func(e *env) { e.stdout, e.stderr = stdout, stderr }
}

// WithLookupEnv sets how environment variables are read (default os.LookupEnv).
func WithLookupEnv(f func(string) (string, bool)) Option {
	return func(e *env) { e.lookupEnv = f }
}

// WithSignals sets the channel that delivers signals to `run` (default:
// this process's signals). SIGTERM and SIGINT start the shutdown sequence,
// SIGQUIT too after writing every goroutine's stack to stderr; SIGHUP,
// SIGUSR1 and SIGUSR2 are logged and ignored, SIGPIPE is ignored.
func WithSignals(c <-chan os.Signal) Option { return func(e *env) { e.signals = c } }

type env struct {
	registry       *tasks.Registry
	stdout, stderr io.Writer
	lookupEnv      func(string) (string, bool)
	signals        <-chan os.Signal
}

// Version is the build's version, set with
// -ldflags "-X github.com/beatlock/beat/cli.Version=v1.2.3"; by default it
// is read from the module's build information.
var Version = ""

const usage = `beat: a cron scheduler for replicated deployments; each tick runs once across all replicas.

Usage:
  beat run      [--config FILE] [--log-format text|json] [--log-level debug|info|warn|error]
  beat validate [--config FILE]
  beat next     [--config FILE] [--count N]
  beat version

--config defaults to $BEAT_CONFIG, else ./schedule.yaml.
Environment: BEAT_CONFIG, BEAT_INSTANCE_ID, BEAT_LOCK_BACKEND, BEAT_REDIS_URL.
`

// Main runs the command in args (without the program name) and returns the
// process's exit code.
func Main(ctx context.Context, args []string, opts ...Option) int {
	e := &env{registry: tasks.Default(), stdout: os.Stdout, stderr: os.Stderr, lookupEnv: os.LookupEnv}
	for _, o := range opts {
		o(e)
	}
	if len(args) == 0 {
		fmt.Fprint(e.stderr, usage)
		return ExitUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "run":
		return e.run(ctx, rest)
	case "validate":
		return e.validate(rest)
	case "next":
		return e.next(rest)
	case "version":
		fmt.Fprintln(e.stdout, "beat", version())
		return ExitOK
	case "help", "-h", "--help", "-help":
		fmt.Fprint(e.stdout, usage)
		return ExitOK
	}
	fmt.Fprintf(e.stderr, "beat: unknown command %q\n\n%s", cmd, usage)
	return ExitUsage
}

func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// flags makes a subcommand's flag set with the shared --config flag.
func (e *env) flags(name string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("beat "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	path := fs.String("config", config.DefaultPath(e.lookupEnv), "schedule file (default $BEAT_CONFIG, else ./schedule.yaml)")
	return fs, path
}

// parse parses a subcommand's flags; it returns false, having said why, on
// a usage error.
func (e *env) parse(fs *flag.FlagSet, args []string) (ok bool, code int) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return false, ExitOK
		}
		return false, ExitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return false, ExitUsage
	}
	return true, 0
}

// load loads the schedule, printing its problems when it is invalid.
func (e *env) load(path string) (*config.Config, bool) {
	cfg, err := config.Load(path, config.WithTaskTypes(e.registry), config.WithLookupEnv(e.lookupEnv))
	if err != nil {
		msg := err.Error()
		fmt.Fprint(e.stderr, msg)
		if !strings.HasSuffix(msg, "\n") {
			fmt.Fprintln(e.stderr)
		}
		return nil, false
	}
	return cfg, true
}

func (e *env) validate(args []string) int {
	fs, path := e.flags("validate")
	if ok, code := e.parse(fs, args); !ok {
		return code
	}
	cfg, ok := e.load(*path)
	if !ok {
		return ExitFailure
	}
	for _, w := range cfg.Warnings {
		w.Msg = "warning: " + w.Msg
		fmt.Fprintln(e.stderr, w)
	}
	fmt.Fprintf(e.stdout, "%s: ok, %d tasks, lock backend %s\n", cfg.File, len(cfg.Tasks), cfg.Lock.Backend)
	return ExitOK
}
