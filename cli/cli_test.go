package cli_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/beatlock/beat/cli"
	"github.com/beatlock/beat/tasks"
)

// fakeEnv is a WithLookupEnv function that sees only vars (name, value
// pairs), so that the environment the tests run in cannot change results.
func fakeEnv(vars ...string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		for i := 0; i+1 < len(vars); i += 2 {
			if vars[i] == name {
				return vars[i+1], true
			}
		}
		return "", false
	}
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a running
// scheduler's logger and the reads of the test that polls it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// result is what one call of cli.Main did.
type result struct {
	code           int
	stdout, stderr string
}

// runMain calls cli.Main with args and an empty environment (plus env, as
// name, value pairs), capturing its output.
func runMain(t *testing.T, args []string, env []string, opts ...cli.Option) result {
	t.Helper()
	var out, errb bytes.Buffer
	opts = append([]cli.Option{cli.WithOutput(&out, &errb), cli.WithLookupEnv(fakeEnv(env...))}, opts...)
	code := cli.Main(context.Background(), args, opts...)
	return result{code, out.String(), errb.String()}
}

func (r result) String() string {
	return "exit " + strconv.Itoa(r.code) + "\nstdout:\n" + r.stdout + "\nstderr:\n" + r.stderr
}

// realRegistryLines are the problems whose text comes from the task type's
// own validator. config's goldens were made with a fake registry; the CLI
// uses tasks.Default(), whose validators say it differently. Keyed by the
// golden file and the golden line (path stripped), the value is the real line.
var realRegistryLines = map[string]map[string]string{
	"exec_no_command": {
		`5: task "no-command": args: command is required: a list like [echo, hello]`:     `5: task "no-command": args.command: required; write a list, e.g. command: [sh, -c, "echo hi"]`,
		`7: task "no-args": args: command is required: a list like [echo, hello]`:        `7: task "no-args": args.command: required; write a list, e.g. command: [sh, -c, "echo hi"]`,
		`13: task "empty-command": args: command is required: a list like [echo, hello]`: `13: task "empty-command": args.command: empty list; write the program and its arguments, e.g. command: [sh, -c, "echo hi"]`,
	},
	"many_errors": {
		`26: task "tab\there": args: url is required`: `26: task "tab\there": args.url: required; write the URL to call, e.g. url: "https://example.com/hook"`,
	},
}

// logWithoutMessage is the one problem the real registry adds to config's
// broken files: their log tasks have no args.message, which the fake
// registry did not require.
var logWithoutMessage = regexp.MustCompile(`^\d+: task "[^"]*": args\.message: required; write the text to log, e\.g\. message: "still here"$`)

// TestValidateBrokenConfigs runs `beat validate` over every broken file in
// config/testdata: exit code 1, nothing on stdout, and every problem of the
// file's .golden twin on stderr, as a line of its own, with the file and
// line number.
func TestValidateBrokenConfigs(t *testing.T) {
	files, err := filepath.Glob("../config/testdata/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 5 {
		t.Fatalf("found only %d files in ../config/testdata: %v", len(files), files)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		if name == "good" {
			continue
		}
		t.Run(name, func(t *testing.T) {
			golden, err := os.ReadFile(strings.TrimSuffix(file, ".yaml") + ".golden")
			if err != nil {
				t.Fatal(err)
			}
			r := runMain(t, []string{"validate", "--config", file}, nil)
			if r.code != cli.ExitFailure {
				t.Errorf("exit code %d, want %d\n%s", r.code, cli.ExitFailure, r)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
			got := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
			// The golden files name the file as config's test loaded it,
			// relative to config/: testdata/NAME.yaml.
			goldenPrefix := "testdata/" + name + ".yaml:"
			var want []string
			for line := range strings.Lines(string(golden)) {
				line = strings.TrimSuffix(line, "\n")
				if line == "" {
					continue
				}
				rest, ok := strings.CutPrefix(line, goldenPrefix)
				if !ok {
					t.Fatalf("golden line %q does not start with %q", line, goldenPrefix)
				}
				if real, ok := realRegistryLines[name][rest]; ok {
					rest = real
				}
				want = append(want, file+":"+rest)
			}
			for _, w := range want {
				if !slices.Contains(got, w) {
					t.Errorf("stderr lacks the line\n\t%s\n%s", w, r)
				}
			}
			// Whatever else is reported is a well-formed problem line that
			// only the real registry finds.
			for _, g := range got {
				if slices.Contains(want, g) {
					continue
				}
				rest, ok := strings.CutPrefix(g, file+":")
				if !ok || !logWithoutMessage.MatchString(rest) {
					t.Errorf("unexpected stderr line\n\t%s", g)
				}
			}
			// The overrides above must still match a line of the golden
			// file, or they test nothing.
			for golden := range realRegistryLines[name] {
				if !slices.Contains(want, file+":"+realRegistryLines[name][golden]) {
					t.Errorf("the golden file no longer has the line %q; update realRegistryLines", golden)
				}
			}
		})
	}
}

// TestValidateExecRealMessages checks the exec problems explicitly, as the
// real registry words them (config's golden has the fake registry's words).
func TestValidateExecRealMessages(t *testing.T) {
	const file = "../config/testdata/exec_no_command.yaml"
	r := runMain(t, []string{"validate", "--config", file}, nil)
	want := file + `:5: task "no-command": args.command: required; write a list, e.g. command: [sh, -c, "echo hi"]
` + file + `:7: task "no-args": args.command: required; write a list, e.g. command: [sh, -c, "echo hi"]
` + file + `:13: task "empty-command": args.command: empty list; write the program and its arguments, e.g. command: [sh, -c, "echo hi"]
`
	if r.code != cli.ExitFailure || r.stderr != want {
		t.Errorf("got %s\nwant exit 1 and stderr:\n%s", r, want)
	}
}

func TestValidateGood(t *testing.T) {
	t.Run("real registry", func(t *testing.T) {
		r := runMain(t, []string{"validate", "--config", "testdata/good.yaml"}, nil)
		if r.code != cli.ExitOK || r.stderr != "" {
			t.Fatalf("want exit 0 and nothing on stderr, got %s", r)
		}
		if want := "testdata/good.yaml: ok, 3 tasks, lock backend memory\n"; r.stdout != want {
			t.Errorf("stdout %q, want %q", r.stdout, want)
		}
	})
	// config's good.yaml gives exec args that only config's permissive test
	// registry accepts (retries, ratio, ...), so it is checked against a
	// registry of the same types without validators; this also shows that
	// WithRegistry replaces the default registry.
	t.Run("config good.yaml, permissive registry", func(t *testing.T) {
		reg := tasks.NewRegistry()
		for _, name := range []string{"exec", "http", "log"} {
			if err := reg.Register(name, func(context.Context, tasks.Run) error { return nil }); err != nil {
				t.Fatal(err)
			}
		}
		r := runMain(t, []string{"validate", "--config", "../config/testdata/good.yaml"}, nil, cli.WithRegistry(reg))
		// Its instance_id is one that every replica reading it would share.
		wantWarning := "../config/testdata/good.yaml:2: warning: instance_id is set in the file, so every replica that reads it gets the same id"
		if r.code != cli.ExitOK || !strings.HasPrefix(r.stderr, wantWarning) || strings.Count(r.stderr, "\n") != 1 {
			t.Fatalf("want exit 0 and one line on stderr starting %q, got %s", wantWarning, r)
		}
		if want := "../config/testdata/good.yaml: ok, 4 tasks, lock backend redis\n"; r.stdout != want {
			t.Errorf("stdout %q, want %q", r.stdout, want)
		}
	})
	t.Run("registry without the types", func(t *testing.T) {
		r := runMain(t, []string{"validate", "--config", "testdata/good.yaml"}, nil, cli.WithRegistry(tasks.NewRegistry()))
		if r.code != cli.ExitFailure || !strings.Contains(r.stderr, `testdata/good.yaml:9: task "heartbeat": unknown task type "log"`) {
			t.Errorf("want exit 1 naming the unknown type, got %s", r)
		}
	})
}

func TestConfigFromEnvironment(t *testing.T) {
	const good, bad = "testdata/good.yaml", "../config/testdata/ttl_renew.yaml"
	t.Run("BEAT_CONFIG selects the file", func(t *testing.T) {
		r := runMain(t, []string{"validate"}, []string{"BEAT_CONFIG", good})
		if r.code != cli.ExitOK || !strings.HasPrefix(r.stdout, good+": ok") {
			t.Errorf("want exit 0 and %q: ok, got %s", good, r)
		}
		r = runMain(t, []string{"validate"}, []string{"BEAT_CONFIG", bad})
		if r.code != cli.ExitFailure || !strings.HasPrefix(r.stderr, bad+":3: ") {
			t.Errorf("want exit 1 and the problems of %s, got %s", bad, r)
		}
	})
	t.Run("--config wins over BEAT_CONFIG", func(t *testing.T) {
		r := runMain(t, []string{"validate", "--config", good}, []string{"BEAT_CONFIG", bad})
		if r.code != cli.ExitOK || !strings.HasPrefix(r.stdout, good+": ok") {
			t.Errorf("want exit 0 for %s, got %s", good, r)
		}
	})
	t.Run("default is ./schedule.yaml", func(t *testing.T) {
		// There is no schedule.yaml in cli/.
		r := runMain(t, []string{"validate"}, nil)
		if r.code != cli.ExitFailure || !strings.Contains(r.stderr, "schedule.yaml") {
			t.Errorf("want exit 1 naming schedule.yaml, got %s", r)
		}
	})
	t.Run("BEAT_LOCK_BACKEND overrides the file", func(t *testing.T) {
		r := runMain(t, []string{"validate", "--config", good}, []string{"BEAT_LOCK_BACKEND", "redis"})
		if r.code != cli.ExitOK || !strings.HasSuffix(r.stdout, "lock backend redis\n") {
			t.Errorf("want exit 0 and lock backend redis, got %s", r)
		}
	})
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		stderr string // a part of it
	}{
		{"no arguments", nil, "Usage:"},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"unknown flag", []string{"validate", "--config", "testdata/good.yaml", "--bogus"}, "flag provided but not defined: -bogus"},
		{"unknown flag of another command", []string{"validate", "--count", "3"}, "flag provided but not defined: -count"},
		{"extra argument", []string{"validate", "--config", "testdata/good.yaml", "extra"}, `unexpected argument "extra"`},
		{"extra argument to next", []string{"next", "--config", "testdata/good.yaml", "now"}, `unexpected argument "now"`},
		{"next --count 0", []string{"next", "--config", "testdata/good.yaml", "--count", "0"}, "--count 0: use a number from 1 to 1000"},
		{"next --count -1", []string{"next", "--config", "testdata/good.yaml", "--count", "-1"}, "--count -1"},
		{"next --count 1001", []string{"next", "--config", "testdata/good.yaml", "--count", "1001"}, "--count 1001"},
		{"next --count x", []string{"next", "--config", "testdata/good.yaml", "--count", "x"}, `invalid value "x" for flag -count`},
		{"run --log-format xml", []string{"run", "--config", "testdata/good.yaml", "--log-format", "xml"}, `--log-format "xml"`},
		{"run --log-level loud", []string{"run", "--config", "testdata/good.yaml", "--log-level", "loud"}, `--log-level "loud"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runMain(t, tc.args, nil)
			if r.code != cli.ExitUsage {
				t.Errorf("exit code %d, want %d\n%s", r.code, cli.ExitUsage, r)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
			if !strings.Contains(r.stderr, tc.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tc.stderr, r.stderr)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	r := runMain(t, []string{"version"}, nil)
	if r.code != cli.ExitOK || !strings.HasPrefix(r.stdout, "beat ") || len(strings.TrimSpace(r.stdout)) <= len("beat") || r.stderr != "" {
		t.Errorf(`want exit 0 and "beat <version>", got %s`, r)
	}
	old := cli.Version
	cli.Version = "v1.2.3"
	t.Cleanup(func() { cli.Version = old })
	if r := runMain(t, []string{"version"}, nil); r.stdout != "beat v1.2.3\n" {
		t.Errorf("with Version set: got %s", r)
	}
}

func TestHelp(t *testing.T) {
	for _, arg := range []string{"help", "-h", "--help"} {
		r := runMain(t, []string{arg}, nil)
		if r.code != cli.ExitOK || !strings.Contains(r.stdout, "Usage:") || r.stderr != "" {
			t.Errorf("%s: want exit 0 and usage on stdout, got %s", arg, r)
		}
	}
}
