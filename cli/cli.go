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
	"text/tabwriter"

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

// WithInput sets where answers to questions are read from (default
// os.Stdin).
func WithInput(stdin io.Reader) Option { return func(e *env) { e.stdin = stdin } }

// WithLookupEnv sets how environment variables are read (default os.LookupEnv).
func WithLookupEnv(f func(string) (string, bool)) Option {
	return func(e *env) { e.lookupEnv = f }
}

// WithSignals sets the channel that delivers signals to `run` (default:
// this process's signals). SIGTERM and SIGINT start the shutdown sequence,
// SIGQUIT too after writing every goroutine's stack to stderr; SIGHUP
// reloads the schedule; SIGUSR1 and SIGUSR2 are logged and ignored, SIGPIPE
// is ignored.
func WithSignals(c <-chan os.Signal) Option { return func(e *env) { e.signals = c } }

type env struct {
	registry       *tasks.Registry
	stdin          io.Reader
	stdout, stderr io.Writer
	lookupEnv      func(string) (string, bool)
	signals        <-chan os.Signal
	cmd            string // the command being run, for messages
}

// Version is the build's version, set with
// -ldflags "-X github.com/beatlock/beat/cli.Version=v1.2.3"; by default it
// is read from the module's build information.
var Version = ""

// command is one of beat's commands, as its help describes it.
type command struct {
	name     string
	synopsis string // its flags and arguments, after "beat NAME"
	summary  string // what it does, for `beat NAME --help`
}

// commands are beat's commands in the order the usage lists them.
var commands = []command{
	{"run", "[--config FILE] [--log-format text|json] [--log-level debug|info|warn|error]",
		"Runs the schedule until SIGTERM or SIGINT, each tick once across all replicas."},
	{"validate", "[--config FILE]",
		"Checks the schedule: exit 0 when it is valid (warnings on stderr), 1 with every\nproblem on stderr as FILE:LINE: message."},
	{"next", "[--config FILE] [--count N]",
		"Prints the next N fire times of each task, in its zone and in UTC."},
	{"status", "[--config FILE] [--json] [--release TASK] [--prune [--min-age DURATION]] [--yes]",
		"Prints each task's record in the lock store: holder, last claim and fencing token,\nlast run. --release TASK revokes a stuck lock (the task is free a lock ttl later);\n--prune removes the records of tasks no longer in the schedule. Both ask first\nunless --yes."},
	{"migrate", "[--config FILE]",
		"Creates the lock store's tables (lock.backend postgres); safe to run again."},
	{"version", "", "Prints the build's version; beat --version does the same."},
	{"help", "[COMMAND]", "Prints beat's usage, or the help of COMMAND; beat COMMAND --help does the same."},
}

func lookupCommand(name string) (command, bool) {
	for _, c := range commands {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// usage is the top-level usage: every command and its synopsis.
func usage() string {
	var b strings.Builder
	b.WriteString("beat: a cron scheduler for replicated deployments; each tick runs once across all replicas.\n\nUsage:\n")
	for _, c := range commands {
		fmt.Fprintln(&b, strings.TrimRight(fmt.Sprintf("  beat %-8s %s", c.name, c.synopsis), " "))
	}
	b.WriteString(`
beat --version is beat version; beat COMMAND --help prints COMMAND's flags.
--config defaults to $BEAT_CONFIG, else ./schedule.yaml.
Environment: BEAT_CONFIG, BEAT_INSTANCE_ID, BEAT_HTTP_LISTEN, BEAT_LOCK_BACKEND,
BEAT_REDIS_URL, BEAT_REDIS_PASSWORD, BEAT_POSTGRES_URL.
`)
	return b.String()
}

// Main runs the command in args (without the program name) and returns the
// process's exit code.
func Main(ctx context.Context, args []string, opts ...Option) int {
	e := &env{registry: tasks.Default(), stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, lookupEnv: os.LookupEnv}
	for _, o := range opts {
		o(e)
	}
	if len(args) == 0 {
		fmt.Fprintf(e.stderr, "beat: no command given\n\n%s", usage())
		return ExitUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "-version", "--version":
		cmd = "version"
	case "-h", "-help", "--help":
		cmd = "help"
	}
	if code, ok := e.dispatch(ctx, cmd, rest); ok {
		return code
	}
	if strings.HasPrefix(cmd, "-") {
		fmt.Fprintf(e.stderr, "beat: unknown flag %s: flags go after the command\n\n%s", cmd, usage())
	} else {
		fmt.Fprintf(e.stderr, "beat: unknown command %q\n\n%s", cmd, usage())
	}
	return ExitUsage
}

// dispatch runs the command cmd; ok is false when there is no such command.
func (e *env) dispatch(ctx context.Context, cmd string, args []string) (code int, ok bool) {
	e.cmd = cmd
	switch cmd {
	case "run":
		return e.run(ctx, args), true
	case "validate":
		return e.validate(args), true
	case "next":
		return e.next(args), true
	case "status":
		return e.status(ctx, args), true
	case "migrate":
		return e.migrate(ctx, args), true
	case "version":
		return e.version(args), true
	case "help":
		return e.help(ctx, args), true
	}
	return 0, false
}

func (e *env) version(args []string) int {
	fs := e.newFlagSet("version")
	if ok, code := e.parse(fs, args); !ok {
		return code
	}
	fmt.Fprintln(e.stdout, "beat", version())
	return ExitOK
}

// help prints the top-level usage, or a command's help.
func (e *env) help(ctx context.Context, args []string) int {
	fs := e.newFlagSet("help")
	if err := fs.Parse(args); err != nil {
		return e.flagError(fs, err)
	}
	switch fs.NArg() {
	case 0:
		fmt.Fprint(e.stdout, usage())
		return ExitOK
	case 1:
		topic := fs.Arg(0)
		if code, ok := e.dispatch(ctx, topic, []string{"--help"}); ok {
			return code
		}
		return e.usageError(fs, "unknown command %q", topic)
	}
	return e.usageError(fs, "unexpected argument %q", fs.Arg(1))
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

// newFlagSet makes a command's flag set. The flag package prints nothing:
// parse prints the command's help, on stdout when asked for, on stderr
// after a usage error.
func (e *env) newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("beat "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// flags makes a subcommand's flag set with the shared --config flag. Its
// default is "", which load resolves, so that the help states the default
// once, in words.
func (e *env) flags(name string) (*flag.FlagSet, *string) {
	fs := e.newFlagSet(name)
	path := fs.String("config", "", "read the schedule from `FILE` (default: $BEAT_CONFIG, else ./schedule.yaml)")
	return fs, path
}

// parse parses a subcommand's flags; it returns false, having printed the
// help (code 0) or said why the command line is wrong (code 2).
func (e *env) parse(fs *flag.FlagSet, args []string) (ok bool, code int) {
	if err := fs.Parse(args); err != nil {
		return false, e.flagError(fs, err)
	}
	switch fs.NArg() {
	case 0:
		return true, 0
	case 1:
		return false, e.usageError(fs, "unexpected argument %q", fs.Arg(0))
	}
	return false, e.usageError(fs, "unexpected arguments %q", fs.Args())
}

// flagError reports an error of fs.Parse: the help on stdout when it was
// asked for, else a usage error.
func (e *env) flagError(fs *flag.FlagSet, err error) int {
	if errors.Is(err, flag.ErrHelp) {
		e.printHelp(e.stdout, fs)
		return ExitOK
	}
	return e.usageError(fs, "%v", err)
}

// usageError prints "beat CMD: reason" and the command's help on stderr,
// and returns ExitUsage.
func (e *env) usageError(fs *flag.FlagSet, format string, args ...any) int {
	fmt.Fprintf(e.stderr, "%s: %s\n\n", fs.Name(), fmt.Sprintf(format, args...))
	e.printHelp(e.stderr, fs)
	return ExitUsage
}

// printHelp prints a command's synopsis, what it does, and its flags, each
// with its default once.
func (e *env) printHelp(w io.Writer, fs *flag.FlagSet) {
	c, _ := lookupCommand(strings.TrimPrefix(fs.Name(), "beat "))
	synopsis := c.synopsis
	if synopsis == "" && c.name == "" { // a command not in the table
		fs.VisitAll(func(f *flag.Flag) { synopsis += " [--" + f.Name + placeholder(f, "") + "]" })
		synopsis = strings.TrimSpace(synopsis)
	}
	fmt.Fprintf(w, "Usage: %s", fs.Name())
	if synopsis != "" {
		fmt.Fprintf(w, " %s", synopsis)
	}
	fmt.Fprintln(w)
	if c.summary != "" {
		fmt.Fprintf(w, "\n%s\n", c.summary)
	}
	fmt.Fprint(w, "\nFlags:\n")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fs.VisitAll(func(f *flag.Flag) {
		_, text := flag.UnquoteUsage(f)
		if f.DefValue != "" && f.DefValue != "false" {
			text += " (default: " + f.DefValue + ")"
		}
		fmt.Fprintf(tw, "  --%s%s\t%s\n", f.Name, placeholder(f, synopsis), text)
	})
	fmt.Fprintln(tw, "  -h, --help\tprint this help")
	tw.Flush()
}

// placeholder is what follows --NAME in the help: the value the synopsis
// shows ("[--log-format text|json]"), else the flag's back-quoted word
// or type; nothing for a boolean flag.
func placeholder(f *flag.Flag, synopsis string) string {
	if _, rest, ok := strings.Cut(synopsis, "[--"+f.Name+" "); ok {
		if v, _, ok := strings.Cut(rest, "]"); ok {
			return " " + v
		}
	}
	if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
		return ""
	}
	name, _ := flag.UnquoteUsage(f)
	return " " + name
}

// load loads the schedule at path ("" means $BEAT_CONFIG, else
// ./schedule.yaml), printing why when it cannot.
func (e *env) load(path string) (*config.Config, bool) {
	from := ""
	if path == "" {
		path = config.DefaultPath(e.lookupEnv)
		if v, ok := e.lookupEnv("BEAT_CONFIG"); ok && v != "" {
			from = " (from BEAT_CONFIG)"
		}
	}
	cfg, err := e.loadConfig(path)
	if err == nil {
		return cfg, true
	}
	var invalid *config.ValidationError
	var pathErr *os.PathError
	switch {
	case errors.As(err, &invalid):
		// One problem a line, each as FILE:LINE: message.
		msg := err.Error()
		fmt.Fprint(e.stderr, msg)
		if !strings.HasSuffix(msg, "\n") {
			fmt.Fprintln(e.stderr)
		}
	case errors.As(err, &pathErr):
		fmt.Fprintf(e.stderr, "%s: cannot read schedule %q%s: %s; give another with --config FILE or BEAT_CONFIG\n",
			e.name(), path, from, readError(pathErr))
	default:
		fmt.Fprintf(e.stderr, "%s: %v\n", e.name(), err)
	}
	return nil, false
}

// loadConfig loads the schedule at path with the registered task types
// and the environment's overrides; `run` reloads it the same way.
func (e *env) loadConfig(path string) (*config.Config, error) {
	return config.Load(path, config.WithTaskTypes(e.registry), config.WithLookupEnv(e.lookupEnv))
}

// readError says why a file could not be read, in the same words on every
// system.
func readError(err *os.PathError) string {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "no such file or directory"
	case errors.Is(err, os.ErrPermission):
		return "permission denied"
	}
	return err.Err.Error()
}

// name is "beat CMD", the prefix of the command's messages.
func (e *env) name() string {
	if e.cmd == "" {
		return "beat"
	}
	return "beat " + e.cmd
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
