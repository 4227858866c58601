package cli_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/beatlock/beat/cli"
	"github.com/beatlock/beat/internal/redistest"
)

// secret is the password in the Redis URLs of TestSecretsNeverPrinted.
const secret = "s3cr3t-pw"

// TestSecretsNeverPrinted runs validate, next and run (text and JSON logs,
// at debug level, so that the Redis client's own messages are in too) with
// Redis URLs that hold a password, given in the file and in
// BEAT_REDIS_URL, and checks that the password is never on stdout or
// stderr: not in a problem, not in an error, not in a log record. Port 1
// has no server, so `run` keeps retrying until its context ends.
func TestSecretsNeverPrinted(t *testing.T) {
	for _, u := range []struct {
		name string
		url  string
		// how far beat gets with it, so that the test sees the output it
		// means to check: starts (run starts and retries), store (the
		// schedule validates but the Redis client refuses the URL), or
		// invalid (validate reports lock.redis.url).
		outcome string
	}{
		{"unreachable", "redis://user:" + secret + "@127.0.0.1:1/0", starts},
		{"password only", "redis://:" + secret + "@127.0.0.1:1/0", starts},
		{"TLS", "rediss://user:" + secret + "@127.0.0.1:1/0", starts},
		{"unsupported scheme", "http://user:" + secret + "@127.0.0.1:1/0", invalid},
		{"no scheme", "user:" + secret + "@127.0.0.1:1/0", invalid},
		{"bad port", "redis://user:" + secret + "@127.0.0.1:notaport/0", invalid},
		{"port out of range", "redis://user:" + secret + "@127.0.0.1:99999/0", starts},
		{"bad escape", "redis://user:" + secret + "%zz@127.0.0.1:1/0", invalid},
		{"bad database", "redis://user:" + secret + "@127.0.0.1:1/db", invalid},
		{"unknown option", "redis://user:" + secret + "@127.0.0.1:1/0?bogus=1", invalid},
		{"wrong password", "redis://user:" + secret + "@127.0.0.1:1/0", starts},
	} {
		for _, via := range []string{"file", "BEAT_REDIS_URL"} {
			t.Run(u.name+"/"+via, func(t *testing.T) {
				var path string
				var env []string
				if via == "file" {
					path = writeConfig(t, fmt.Sprintf(secretsSchedule, fmt.Sprintf("\n  redis:\n    url: %q", u.url)))
				} else {
					path = writeConfig(t, fmt.Sprintf(secretsSchedule, ""))
					env = []string{"BEAT_REDIS_URL", u.url}
				}
				if data, err := os.ReadFile(path); err != nil || (via == "file") != strings.Contains(string(data), secret) {
					t.Fatalf("the schedule does not hold the password as it should (%v):\n%s", err, data)
				}
				checkSecretsRun(t, u.outcome, path, env)
			})
		}
	}
	t.Run("refused by the server", func(t *testing.T) {
		redistest.Client(t) // skips (or fails, if required) without Redis
		srv := redistest.StartServer(t, t.TempDir(), "--requirepass", "another")
		path := writeConfig(t, fmt.Sprintf(secretsSchedule, fmt.Sprintf("\n  redis:\n    url: %q", "redis://:"+secret+"@"+srv.Addr()+"/0")))
		checkSecretsRun(t, refused, path, nil)
	})
	// BEAT_REDIS_PASSWORD, when beat reads it, must not be printed either.
	t.Run("BEAT_REDIS_PASSWORD", func(t *testing.T) {
		path := writeConfig(t, fmt.Sprintf(secretsSchedule, "\n  redis:\n    url: \"redis://127.0.0.1:1/0\""))
		checkSecretsRun(t, starts, path, []string{"BEAT_REDIS_PASSWORD", secret})
	})
}

// secretsSchedule is a schedule on Redis, with its HTTP listener (when
// beat has one) on a free port; %s is the lock.redis block.
const secretsSchedule = `
shutdown_timeout: 3s
http:
  listen: "127.0.0.1:0"
lock:
  backend: redis
  ttl: 3s
  renew_interval: 1s%s
tasks:
  - name: hello
    schedule: "@every 1s"
    task: log
    args: {message: "hello"}
`

// How far beat gets with a Redis URL.
const (
	starts  = "starts"  // run starts, and retries the store until its context ends
	refused = "refused" // validate and next accept it; run exits: the store refuses the password
	invalid = "invalid" // validate reports lock.redis.url
)

// checkSecretsRun runs validate, next, and run in both log formats on the
// schedule at path, with env, and fails the test if secret is printed.
func checkSecretsRun(t *testing.T, outcome, path string, env []string) {
	t.Helper()
	check := func(what string, code int, stdout, stderr string) {
		t.Helper()
		for name, out := range map[string]string{"stdout": stdout, "stderr": stderr} {
			if strings.Contains(out, secret) {
				t.Errorf("%s printed the password on %s (exit %d):\n%s", what, name, code, out)
			}
		}
	}
	for _, cmd := range []string{"validate", "next"} {
		r := runMain(t, []string{cmd, "--config", path}, env)
		check(cmd, r.code, r.stdout, r.stderr)
		// The checks above see real output, not an early usage error.
		if outcome == invalid {
			if r.code != cli.ExitFailure || !strings.Contains(r.stderr, "lock.redis.url") {
				t.Errorf("%s: want exit 1 and the problem with lock.redis.url, got %s", cmd, r)
			}
		} else if r.code != cli.ExitOK || r.stdout == "" {
			t.Errorf("%s: want exit 0 and output, got %s", cmd, r)
		}
	}
	for _, format := range []string{"text", "json"} {
		stdout, stderr := &syncBuffer{}, &syncBuffer{}
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		done := make(chan int, 1)
		go func() {
			done <- cli.Main(ctx, []string{"run", "--config", path, "--log-format", format, "--log-level", "debug"},
				cli.WithOutput(stdout, stderr), cli.WithLookupEnv(fakeEnv(env...)), cli.WithSignals(make(chan os.Signal)))
		}()
		var code int
		select {
		case code = <-done:
		case <-time.After(30 * time.Second):
			cancel()
			t.Fatalf("run --log-format %s did not return within 30s; logs:\n%s", format, stderr)
		}
		cancel()
		check("run --log-format "+format, code, stdout.String(), stderr.String())
		switch logs := stderr.String(); {
		case outcome == starts && !strings.Contains(logs, "beat starting"):
			t.Errorf("run --log-format %s did not start (exit %d), so its logs were not checked:\n%s", format, code, logs)
		case outcome == refused && (code != cli.ExitFailure || !strings.Contains(logs, "cannot use the lock store")):
			t.Errorf("run --log-format %s: want exit 1 and \"cannot use the lock store\", got exit %d:\n%s", format, code, logs)
		case outcome == invalid && (code != cli.ExitFailure || !strings.Contains(logs, "lock.redis.url")):
			t.Errorf("run --log-format %s: want exit 1 and the problem with lock.redis.url, got exit %d:\n%s", format, code, logs)
		}
		if t.Failed() {
			t.Logf("run --log-format %s: exit %d; logs:\n%s", format, code, stderr)
		}
	}
}
