package cli

// White-box tests (package cli): the command line as an operator meets it
// (flags, arguments, help, an unreadable schedule), and the values in the
// logs newLogger makes. They call Main and newLogger directly.

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// usageResult is what one call of Main did.
type usageResult struct {
	code           int
	stdout, stderr string
}

func (r usageResult) String() string {
	return "exit " + strconv.Itoa(r.code) + "\nstdout:\n" + r.stdout + "\nstderr:\n" + r.stderr
}

// callMain calls Main with args, an environment of only env (name, value
// pairs) and its own signal channel, so that a `run` that should not have
// started neither hangs the test (its context ends after 10s) nor catches
// the test process's signals.
func callMain(t *testing.T, args []string, env ...string) usageResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lookup := func(name string) (string, bool) {
		for i := 0; i+1 < len(env); i += 2 {
			if env[i] == name {
				return env[i+1], true
			}
		}
		return "", false
	}
	var out, errb bytes.Buffer
	code := Main(ctx, args, WithOutput(&out, &errb), WithLookupEnv(lookup), WithSignals(make(chan os.Signal)))
	return usageResult{code, out.String(), errb.String()}
}

// commandsUnderTest are every command, with arguments that make
// a valid command line of it, so that what a case adds is the only fault.
var commandsUnderTest = []struct {
	name  string
	valid []string
}{
	{"run", []string{"run", "--config", "testdata/good.yaml"}},
	{"validate", []string{"validate", "--config", "testdata/good.yaml"}},
	{"next", []string{"next", "--config", "testdata/good.yaml", "--count", "2"}},
	{"status", []string{"status", "--config", "testdata/good.yaml", "--json"}},
	{"migrate", []string{"migrate", "--config", "testdata/good.yaml"}},
	{"version", []string{"version"}},
	{"help", []string{"help", "run"}},
}

// firstLine is s up to its first newline.
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// TestUsageEveryCommand: on every command an unknown flag and an extra
// argument are usage errors (exit 2, nothing on stdout, the reason on the
// first line of stderr, then the command's usage), and -h, -help and
// --help print the command's help on stdout and exit 0.
func TestUsageEveryCommand(t *testing.T) {
	for _, c := range commandsUnderTest {
		usageLine := "Usage: beat " + c.name
		for _, tc := range []struct {
			name   string
			args   []string
			reason string // the first line of stderr
		}{
			{"unknown flag", append(c.valid[:len(c.valid):len(c.valid)], "--bogus"), "beat " + c.name + ": flag provided but not defined: -bogus"},
			{"unknown flag first", append([]string{c.name, "--bogus"}, c.valid[1:]...), "beat " + c.name + ": flag provided but not defined: -bogus"},
			{"flag without its value", []string{c.name, "--config"}, "beat " + c.name + ": flag provided but not defined: -config"},
			{"extra argument", append(c.valid[:len(c.valid):len(c.valid)], "extra"), "beat " + c.name + `: unexpected argument "extra"`},
			{"two extra arguments", append(c.valid[:len(c.valid):len(c.valid)], "extra", "more"), "beat " + c.name + `: unexpected arguments ["extra" "more"]`},
		} {
			if tc.name == "flag without its value" && c.name != "version" && c.name != "help" {
				tc.reason = "beat " + c.name + ": flag needs an argument: -config"
			}
			if c.name == "help" {
				// After `help COMMAND` everything is an argument.
				switch tc.name {
				case "two extra arguments":
					tc.reason = `beat help: unexpected argument "extra"`
				case "unknown flag":
					tc.reason = `beat help: unexpected argument "--bogus"`
				}
			}
			t.Run(c.name+"/"+tc.name, func(t *testing.T) {
				r := callMain(t, tc.args)
				if r.code != ExitUsage {
					t.Errorf("%q: exit code %d, want %d\n%s", tc.args, r.code, ExitUsage, r)
				}
				if r.stdout != "" {
					t.Errorf("%q: stdout %q, want nothing", tc.args, r.stdout)
				}
				if got := firstLine(r.stderr); got != tc.reason {
					t.Errorf("%q: first line of stderr\n\t%s\nwant\n\t%s", tc.args, got, tc.reason)
				}
				if !strings.Contains(r.stderr, "\n\n"+usageLine) {
					t.Errorf("%q: stderr lacks the command's usage (%q) after the reason:\n%s", tc.args, usageLine, r.stderr)
				}
			})
		}
		for _, help := range []string{"--help", "-help", "-h"} {
			t.Run(c.name+"/"+help, func(t *testing.T) {
				forms := [][]string{{c.name, help}, append(c.valid[:len(c.valid):len(c.valid)], help)}
				if c.name == "help" {
					forms = forms[:1] // `help run -h` has an argument too many
				}
				for _, args := range forms {
					r := callMain(t, args)
					if r.code != ExitOK || r.stderr != "" || !strings.HasPrefix(r.stdout, usageLine) {
						t.Errorf("%q: want exit 0, nothing on stderr and stdout starting %q, got %s", args, usageLine, r)
					}
				}
			})
		}
	}
}

// TestUsageHelp: beat's own usage, on stdout with exit 0 when asked for and
// on stderr with exit 2 after a mistake; `beat help CMD` is `beat CMD --help`.
func TestUsageHelp(t *testing.T) {
	top := callMain(t, []string{"help"})
	if top.code != ExitOK || top.stderr != "" {
		t.Fatalf("beat help: want exit 0 and nothing on stderr, got %s", top)
	}
	for _, want := range []string{
		"\n  beat run      [--config FILE] [--log-format text|json] [--log-level debug|info|warn|error]\n",
		"\n  beat validate [--config FILE]\n",
		"\n  beat next     [--config FILE] [--count N]\n",
		"\n  beat status   [--config FILE] [--json] [--release TASK] [--prune [--min-age DURATION]] [--yes]\n",
		"\n  beat migrate  [--config FILE]\n",
		"\n  beat version\n",
		"\n  beat help     [COMMAND]\n",
		"--version",
	} {
		if !strings.Contains(top.stdout, want) {
			t.Errorf("beat help lacks %q:\n%s", want, top.stdout)
		}
	}
	for _, args := range [][]string{{"--help"}, {"-help"}, {"-h"}} {
		if r := callMain(t, args); r.code != ExitOK || r.stdout != top.stdout || r.stderr != "" {
			t.Errorf("%q: want exit 0 and the output of `beat help`, got %s", args, r)
		}
	}
	for _, tc := range []struct {
		args   []string
		reason string
		usage  string // what follows the reason on stderr
	}{
		{nil, "beat: no command given", top.stdout},
		{[]string{"frobnicate"}, `beat: unknown command "frobnicate"`, top.stdout},
		{[]string{"--bogus"}, "beat: unknown flag --bogus: flags go after the command", top.stdout},
		{[]string{"--config", "testdata/good.yaml", "validate"}, "beat: unknown flag --config: flags go after the command", top.stdout},
		{[]string{"help", "frobnicate"}, `beat help: unknown command "frobnicate"`, callMain(t, []string{"help", "--help"}).stdout},
		{[]string{"--help", "extra"}, `beat help: unknown command "extra"`, callMain(t, []string{"help", "--help"}).stdout},
	} {
		r := callMain(t, tc.args)
		if r.code != ExitUsage || r.stdout != "" || r.stderr != tc.reason+"\n\n"+tc.usage {
			t.Errorf("%q: want exit 2, nothing on stdout, and on stderr %q then the usage:\n%s\ngot %s", tc.args, tc.reason, tc.usage, r)
		}
	}
	for _, c := range commandsUnderTest {
		byFlag := callMain(t, []string{c.name, "--help"})
		byHelp := callMain(t, []string{"help", c.name})
		if byHelp.code != ExitOK || byHelp.stdout != byFlag.stdout || byHelp.stderr != "" {
			t.Errorf("beat help %s: want exit 0 and the output of `beat %s --help`:\n%s\ngot %s", c.name, c.name, byFlag.stdout, byHelp)
		}
	}
}

// TestUsageDefaultsOnce: a command's help lists each of its flags once,
// with its default stated once.
func TestUsageDefaultsOnce(t *testing.T) {
	for _, tc := range []struct {
		command string
		flags   map[string]string // flag -> its default as the help states it ("" = none)
	}{
		{"run", map[string]string{"config": "$BEAT_CONFIG, else ./schedule.yaml", "log-format": "text", "log-level": "info", "help": ""}},
		{"validate", map[string]string{"config": "$BEAT_CONFIG, else ./schedule.yaml", "help": ""}},
		{"next", map[string]string{"config": "$BEAT_CONFIG, else ./schedule.yaml", "count": "5", "help": ""}},
		{"version", map[string]string{"help": ""}},
		{"help", map[string]string{"help": ""}},
	} {
		// With BEAT_CONFIG set, the help must not state the file twice
		// either (once in words, once as the resolved path).
		r := callMain(t, []string{tc.command, "--help"}, "BEAT_CONFIG", "from-env.yaml")
		if r.code != ExitOK {
			t.Fatalf("beat %s --help: %s", tc.command, r)
		}
		if n := strings.Count(r.stdout, "schedule.yaml"); n > 1 {
			t.Errorf("beat %s --help names schedule.yaml %d times:\n%s", tc.command, n, r.stdout)
		}
		if strings.Contains(r.stdout, "from-env.yaml") {
			t.Errorf("beat %s --help states the default twice, once as $BEAT_CONFIG's value:\n%s", tc.command, r.stdout)
		}
		_, flags, ok := strings.Cut(r.stdout, "\nFlags:\n")
		if !ok {
			t.Fatalf("beat %s --help has no Flags: section:\n%s", tc.command, r.stdout)
		}
		seen := map[string]bool{}
		for line := range strings.Lines(flags) {
			fields := strings.Fields(line)
			if len(fields) == 0 {
				continue
			}
			name := strings.TrimPrefix(fields[0], "--")
			if fields[0] == "-h," {
				name = "help"
			}
			def, known := tc.flags[name]
			if !known {
				t.Errorf("beat %s --help lists an unexpected flag: %q", tc.command, line)
				continue
			}
			if seen[name] {
				t.Errorf("beat %s --help lists --%s twice", tc.command, name)
			}
			seen[name] = true
			n := strings.Count(line, "default")
			switch {
			case def == "" && n != 0:
				t.Errorf("beat %s --help: --%s has no default but its line says one: %q", tc.command, name, line)
			case def != "" && n != 1:
				t.Errorf("beat %s --help: --%s's line states a default %d times, want once: %q", tc.command, name, n, line)
			case def != "" && !strings.Contains(line, "(default: "+def+")"):
				t.Errorf("beat %s --help: --%s's line %q lacks (default: %s)", tc.command, name, line, def)
			}
		}
		for name := range tc.flags {
			if !seen[name] {
				t.Errorf("beat %s --help does not list --%s:\n%s", tc.command, name, r.stdout)
			}
		}
	}
}

// TestUsageVersionFlag: --version and -version are `beat version`,
// arguments and all.
func TestUsageVersionFlag(t *testing.T) {
	old := Version
	Version = "v9.8.7"
	t.Cleanup(func() { Version = old })
	want := usageResult{ExitOK, "beat v9.8.7\n", ""}
	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}} {
		if r := callMain(t, args); r != want {
			t.Errorf("%q: got %s\nwant %s", args, r, want)
		}
	}
	for _, args := range [][]string{{"--version", "extra"}, {"-version", "--bogus"}, {"version", "extra"}} {
		if r := callMain(t, args); r.code != ExitUsage || r.stdout != "" || !strings.HasPrefix(r.stderr, "beat version: ") {
			t.Errorf("%q: want exit 2, nothing on stdout and a reason on stderr, got %s", args, r)
		}
	}
}

// TestUsageConfigUnreadable: a schedule that cannot be read is named, with
// the reason, and how to name another, on one line; exit 1.
func TestUsageConfigUnreadable(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.yaml")
	unreadable := filepath.Join(dir, "unreadable.yaml")
	good, err := os.ReadFile("testdata/good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(unreadable, good, 0o000); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(unreadable, 0o000); err != nil { // whatever the umask
		t.Fatal(err)
	}
	const hint = "; give another with --config FILE or BEAT_CONFIG\n"
	for _, tc := range []struct {
		name   string
		flags  []string
		env    []string
		stderr string // after "beat CMD: "
		asRoot bool   // whether the case holds for root, who reads any file
	}{
		{"missing, --config", []string{"--config", missing}, nil,
			`cannot read schedule "` + missing + `": no such file or directory` + hint, true},
		{"missing, BEAT_CONFIG", nil, []string{"BEAT_CONFIG", missing},
			`cannot read schedule "` + missing + `" (from BEAT_CONFIG): no such file or directory` + hint, true},
		{"missing, --config over BEAT_CONFIG", []string{"--config", missing}, []string{"BEAT_CONFIG", "testdata/good.yaml"},
			`cannot read schedule "` + missing + `": no such file or directory` + hint, true},
		// There is no schedule.yaml in cli/, the tests' working directory.
		{"missing, the default", nil, nil,
			`cannot read schedule "schedule.yaml": no such file or directory` + hint, true},
		{"a directory", []string{"--config", dir}, nil,
			`cannot read schedule "` + dir + `": is a directory` + hint, true},
		{"unreadable", []string{"--config", unreadable}, nil,
			`cannot read schedule "` + unreadable + `": permission denied` + hint, false},
		{"unreadable, BEAT_CONFIG", nil, []string{"BEAT_CONFIG", unreadable},
			`cannot read schedule "` + unreadable + `" (from BEAT_CONFIG): permission denied` + hint, false},
	} {
		for _, command := range []string{"validate", "next", "run"} {
			t.Run(tc.name+"/"+command, func(t *testing.T) {
				if !tc.asRoot && os.Geteuid() == 0 {
					t.Skip("running as root, who reads a file of mode 000 anyway; TestUsageReadErrorWords checks the wording")
				}
				r := callMain(t, append([]string{command}, tc.flags...), tc.env...)
				want := usageResult{ExitFailure, "", "beat " + command + ": " + tc.stderr}
				if r != want {
					t.Errorf("got %s\nwant %s", r, want)
				}
			})
		}
	}
}

// TestUsageReadErrorWords checks the reasons load gives, for the errors
// that the file system gives (even to root, who never sees EACCES).
func TestUsageReadErrorWords(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{syscall.ENOENT, "no such file or directory"},
		{syscall.EACCES, "permission denied"},
		{syscall.EPERM, "permission denied"},
		{syscall.EISDIR, "is a directory"},
		{syscall.EIO, syscall.EIO.Error()},
	} {
		if got := readError(&os.PathError{Op: "open", Path: "x.yaml", Err: tc.err}); got != tc.want {
			t.Errorf("readError(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

// logRecords logs, with a logger from newLogger in format, one record
// holding durations and times at the top level, in a group, in a nested
// group and in a logger's own group, and returns what it wrote.
func logRecords(t *testing.T, format string) string {
	t.Helper()
	var buf bytes.Buffer
	log, err := newLogger(&env{stderr: &buf}, format, "info")
	if err != nil {
		t.Fatal(err)
	}
	log.With("with_d", 250*time.Millisecond).
		WithGroup("w").
		Info("hello",
			"took", 1500*time.Millisecond,
			"tiny", time.Millisecond,
			"at", loggedAt(t),
			"n", 3,
			"s", "1.5s",
			slog.Group("g", "d", 2*time.Second, "t", loggedAt(t),
				slog.Group("h", "d", 90*time.Minute)),
		)
	log.Debug("not logged at info", "d", time.Second)
	return buf.String()
}

// loggedAt is an instant in a zone other than UTC, to the nanosecond.
func loggedAt(t *testing.T) time.Time {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	return time.Date(2025, 3, 30, 1, 59, 59, 123456789, berlin) // 00:59:59.123456789Z
}

// logTime is what a time looks like in the logs: RFC 3339, in UTC, to the
// millisecond.
var logTime = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

const loggedAtText = "2025-03-30T00:59:59.123Z"

func TestLogJSONDurationsAndTimes(t *testing.T) {
	out := logRecords(t, "json")
	if strings.Count(out, "\n") != 1 {
		t.Fatalf("want one record, got:\n%s", out)
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(out), &rec); err != nil {
		t.Fatalf("not a JSON record: %v\n%s", err, out)
	}
	w, _ := rec["w"].(map[string]any)
	g, _ := w["g"].(map[string]any)
	h, _ := g["h"].(map[string]any)
	for _, tc := range []struct {
		name string
		got  any
		want float64 // seconds
	}{
		{"with_d", rec["with_d"], 0.25},
		{"w.took", w["took"], 1.5},
		{"w.tiny", w["tiny"], 0.001},
		{"w.g.d", g["d"], 2},
		{"w.g.h.d", h["d"], 5400},
	} {
		if got, ok := tc.got.(float64); !ok || got != tc.want {
			t.Errorf("%s = %#v, want the number %v (seconds)\n%s", tc.name, tc.got, tc.want, out)
		}
	}
	for _, tc := range []struct {
		name string
		got  any
		want string // "" = any time in the log format
	}{
		{"time", rec["time"], ""},
		{"w.at", w["at"], loggedAtText},
		{"w.g.t", g["t"], loggedAtText},
	} {
		s, _ := tc.got.(string)
		if !logTime.MatchString(s) || (tc.want != "" && s != tc.want) {
			t.Errorf("%s = %#v, want RFC 3339 in UTC to the millisecond %s\n%s", tc.name, tc.got, tc.want, out)
		}
		if _, err := time.Parse(time.RFC3339, s); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	// Other values are untouched.
	if w["n"] != 3.0 || w["s"] != "1.5s" {
		t.Errorf(`w.n = %#v, w.s = %#v; want 3 and "1.5s"`, w["n"], w["s"])
	}
}

func TestLogTextDurationsAndTimes(t *testing.T) {
	out := logRecords(t, "text")
	if strings.Count(out, "\n") != 1 {
		t.Fatalf("want one record, got:\n%s", out)
	}
	fields := map[string]string{}
	for _, f := range strings.Fields(out) {
		if k, v, ok := strings.Cut(f, "="); ok {
			fields[k] = v
		}
	}
	for k, want := range map[string]string{
		"with_d":  "250ms",
		"w.took":  "1.5s",
		"w.tiny":  "1ms",
		"w.g.d":   "2s",
		"w.g.h.d": "1h30m0s",
		"w.at":    loggedAtText,
		"w.g.t":   loggedAtText,
		"w.n":     "3",
		"w.s":     "1.5s",
	} {
		if fields[k] != want {
			t.Errorf("%s=%s, want %s=%s\n%s", k, fields[k], k, want, out)
		}
	}
	if !logTime.MatchString(fields["time"]) {
		t.Errorf("time=%s, want RFC 3339 in UTC to the millisecond\n%s", fields["time"], out)
	}
}
