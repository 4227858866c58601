package cli_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/beatlock/beat/cli"
	"github.com/beatlock/beat/internal/redistest"
)

// scrape reads /metrics at addr into a map from series, as the text format
// writes it (`name{label="v",...}`), to value; empty while nothing listens.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	body, code := get(t, addr, "/metrics")
	if code == 0 {
		return nil
	}
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// get returns the body and status of GET path at addr; code 0 when nothing
// answers.
func get(t *testing.T, addr, path string) (string, int) {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		return err.Error(), 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), resp.StatusCode
}

// TestProcessMetrics runs beat against the real Redis for a few ticks, one
// task quick and one (Forbid) outlasting its period, freezes it for a few
// seconds, and reads the counters that moved: runs, busy ticks, missed
// ticks, store calls; then reads the same tasks with `beat status`.
func TestProcessMetrics(t *testing.T) {
	t.Parallel()
	c := redistest.Client(t)
	prefix := redistest.Prefix(t, c)
	addr := freeAddr(t)
	path := writeConfig(t, fmt.Sprintf(`
http: {listen: %q}
lock:
  backend: redis
  ttl: 3s
  renew_interval: 1s
  redis: {url: %q, key_prefix: %q}
tasks:
  - {name: quick, schedule: "@every 1s", task: log, args: {message: hi}}
  - {name: slow, schedule: "@every 1s", task: exec, concurrency_policy: Forbid, args: {command: [sleep, "2.5"]}}
`, addr, redistest.URL(), prefix))
	p := startBeat(t, path, "metrics-test")
	series := func(name string, labels ...string) string {
		var b strings.Builder
		b.WriteString(name)
		if len(labels) > 0 {
			b.WriteString("{")
			for i := 0; i+1 < len(labels); i += 2 {
				if i > 0 {
					b.WriteString(",")
				}
				fmt.Fprintf(&b, "%s=%q", labels[i], labels[i+1])
			}
			b.WriteString("}")
		}
		return b.String()
	}
	claimed := series("beat_ticks_total", "outcome", "claimed", "task", "quick")
	if !waitFor(20*time.Second, func() bool { return scrape(t, addr)[claimed] >= 3 }) {
		t.Fatalf("quick was not claimed 3 times; beat's output:\n%s", p.stderr)
	}
	// Frozen across three ticks: on waking, the loop reports the ticks it
	// fell behind on as missed.
	p.signal(t, syscall.SIGSTOP)
	time.Sleep(3500 * time.Millisecond)
	p.signal(t, syscall.SIGCONT)
	missed := series("beat_ticks_total", "outcome", "missed", "task", "quick")
	if !waitFor(10*time.Second, func() bool { return scrape(t, addr)[missed] >= 1 }) {
		t.Errorf("no missed tick of quick counted after a 3.5s freeze")
	}
	m := scrape(t, addr)
	for _, c := range []struct {
		series string
		min    float64
	}{
		{claimed, 3},
		{series("beat_runs_total", "result", "succeeded", "task", "quick"), 3},
		{series("beat_run_duration_seconds_count", "task", "quick"), 3},
		{series("beat_run_start_delay_seconds_count", "task", "quick"), 3},
		{series("beat_ticks_total", "outcome", "busy", "task", "slow"), 1},
		{series("beat_fencing_token", "task", "quick"), 1},
		// Both tasks' ticks come due together: claimed in one batch.
		{series("beat_store_operations_total", "op", "claim_batch", "result", "ok"), 3},
		{series("beat_store_operation_duration_seconds_count", "op", "claim_batch"), 3},
		{series("beat_store_up"), 1},
		{series("beat_info", "backend", "redis", "instance_id", "metrics-test", "version", "(devel)"), 1},
	} {
		if got, ok := m[c.series]; !ok || got < c.min {
			t.Errorf("%s = %v (present: %v); want at least %v", c.series, got, ok, c.min)
		}
	}
	for _, s := range []string{series("beat_ticks_total", "outcome", "store_lost", "task", "slow"), series("beat_runs_total", "result", "lost", "task", "quick")} {
		if _, ok := m[s]; !ok {
			t.Errorf("%s is missing; every task's series exist from the start, at 0", s)
		}
	}

	// beat status, from another process's view: the same store.
	var out, errOut bytes.Buffer
	env := func(k string) (string, bool) {
		if k == "BEAT_INSTANCE_ID" {
			return "", false
		}
		return os.LookupEnv(k)
	}
	code := cli.Main(context.Background(), []string{"status", "--config", path, "--json"}, cli.WithOutput(&out, &errOut), cli.WithLookupEnv(env))
	if code != 0 {
		t.Fatalf("beat status --json: exit %d: %s", code, errOut.String())
	}
	var rep struct {
		Tasks []struct {
			Name         string
			Holder       string
			FencingToken uint64 `json:"fencing_token"`
			LastRun      *struct {
				Result   string
				Instance string
			} `json:"last_run"`
		}
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("beat status --json: %v\n%s", err, out.String())
	}
	if len(rep.Tasks) != 2 || rep.Tasks[0].Name != "quick" || rep.Tasks[0].FencingToken == 0 || rep.Tasks[0].LastRun == nil ||
		rep.Tasks[0].LastRun.Result != "succeeded" || rep.Tasks[0].LastRun.Instance != "metrics-test" {
		t.Errorf("beat status --json:\n%s", out.String())
	}

	// Stuck lock: slow's run holds it; --release --yes frees it.
	if !waitFor(10*time.Second, func() bool {
		out.Reset()
		cli.Main(context.Background(), []string{"status", "--config", path}, cli.WithOutput(&out, &errOut), cli.WithLookupEnv(env))
		return strings.Contains(out.String(), "slow") && regexpHeld.MatchString(out.String())
	}) {
		t.Fatalf("beat status never showed slow held:\n%s", out.String())
	}
	out.Reset()
	errOut.Reset()
	code = cli.Main(context.Background(), []string{"status", "--config", path, "--release", "slow"},
		cli.WithOutput(&out, &errOut), cli.WithLookupEnv(env), cli.WithInput(strings.NewReader("n\n")))
	if code == 0 || !strings.Contains(errOut.String(), "Revoke the lock of slow held by metrics-test/") {
		t.Errorf("--release answered no: exit %d, stderr %q; want the question and a refusal", code, errOut.String())
	}
	out.Reset()
	code = cli.Main(context.Background(), []string{"status", "--config", path, "--release", "slow", "--yes"},
		cli.WithOutput(&out, &errOut), cli.WithLookupEnv(env))
	if code != 0 || !strings.Contains(out.String(), "slow: lock revoked") {
		t.Errorf("--release --yes: exit %d, %q", code, out.String())
	}
	// The revoked run learns at its next renewal (every second) that it
	// lost its lock, and is cancelled.
	lost := series("beat_runs_total", "result", "lost", "task", "slow")
	if !waitFor(10*time.Second, func() bool { return scrape(t, addr)[lost] >= 1 }) {
		t.Errorf("the revoked run of slow was not cancelled as lost")
	}
}

// TestProcessReadiness: /readyz follows the store: ready while it answers
// with beat's password, unready while it refuses the password or is down,
// ready again after; beat keeps running throughout.
func TestProcessReadiness(t *testing.T) {
	t.Parallel()
	redistest.Client(t) // skips (or fails, if required) without Redis
	srv := redistest.StartServer(t, t.TempDir(), "--requirepass", "pw-one")
	admin := srv.Client(func(o *redis.Options) { o.Password = "pw-one" })
	defer admin.Close()
	addr := freeAddr(t)
	path := writeConfig(t, fmt.Sprintf(`
http: {listen: %q}
lock:
  backend: redis
  redis: {url: "redis://:pw-one@%s/0"}
tasks:
  - {name: t, schedule: "@every 1s", task: log, args: {message: hi}}
`, addr, srv.Addr()))
	p := startBeat(t, path, "ready-test")
	ctx := context.Background()
	expect := func(what string, wantCode int, wantText string) {
		t.Helper()
		var body string
		var code int
		if !waitFor(20*time.Second, func() bool {
			body, code = get(t, addr, "/readyz")
			return code == wantCode && strings.Contains(body, wantText)
		}) {
			t.Fatalf("%s: /readyz = %d %q; want %d with %q\nbeat's output:\n%s", what, code, body, wantCode, wantText, p.stderr)
		}
		if b, code := get(t, addr, "/healthz"); code != http.StatusOK {
			t.Errorf("%s: /healthz = %d %q; the loop runs whatever the store does", what, code, b)
		}
	}
	expect("at start", 200, "store: answers")
	if up := scrape(t, addr)["beat_store_up"]; up != 1 {
		t.Errorf("beat_store_up = %v; want 1", up)
	}

	// The password changes under beat: its connections are dropped, and
	// new ones are refused.
	if err := admin.ConfigSet(ctx, "requirepass", "pw-two").Err(); err != nil {
		t.Fatal(err)
	}
	admin.Do(ctx, "CLIENT", "KILL", "TYPE", "normal")
	expect("password refused", 503, "WRONGPASS")
	if up := scrape(t, addr)["beat_store_up"]; up != 0 {
		t.Errorf("beat_store_up = %v while the password is refused; want 0", up)
	}
	admin2 := srv.Client(func(o *redis.Options) { o.Password = "pw-two" })
	defer admin2.Close()
	if err := admin2.ConfigSet(ctx, "requirepass", "pw-one").Err(); err != nil {
		t.Fatal(err)
	}
	expect("password accepted again", 200, "store: answers")

	srv.Kill()
	expect("store down", 503, "the lock store does not answer")
	srv.Restart()
	expect("store back", 200, "store: answers")
	select {
	case <-p.done:
		t.Fatalf("beat exited: %v", p.err)
	default:
	}
	if n := strings.Count(p.stderr.String(), `"msg":"not ready`); n < 2 || n > 4 {
		t.Errorf("logged \"not ready\" %d times; want once per outage (2), not at every check", n)
	}
}

var regexpHeld = regexp.MustCompile(`(?m)^slow\s+@every 1s\s+\S+\s+metrics-test\s`)

// TestRunRefusedCredentials: a store that refuses beat's password is a
// configuration error: `beat run` exits 1 at once, naming the setting, and
// never prints the password.
func TestRunRefusedCredentials(t *testing.T) {
	t.Parallel()
	redistest.Client(t)
	srv := redistest.StartServer(t, t.TempDir(), "--requirepass", "right-pw")
	path := writeConfig(t, fmt.Sprintf(`
lock:
  backend: redis
  redis: {url: "redis://:wrong-pw@%s/0"}
tasks:
  - {name: t, schedule: "@every 1s", task: log, args: {message: hi}}
`, srv.Addr()))
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code := cli.Main(ctx, []string{"run", "--config", path}, cli.WithOutput(&out, &errOut),
		cli.WithLookupEnv(func(string) (string, bool) { return "", false }), cli.WithSignals(make(chan os.Signal)))
	if code != cli.ExitFailure || !strings.Contains(errOut.String(), "check lock.redis.username and lock.redis.password") {
		t.Errorf("exit %d, stderr:\n%s\nwant exit 1 naming lock.redis.password", code, errOut.String())
	}
	if strings.Contains(errOut.String(), "wrong-pw") {
		t.Error("the password was printed")
	}
}
