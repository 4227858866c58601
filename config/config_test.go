package config

import (
	"errors"
	"io/fs"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/beatlock/beat/lock"
)

// fakeTypes stands in for the registry of package tasks, which is written
// alongside this package; the real registry's messages are tested there.
type fakeTypes map[string]func(args map[string]any) error

func (f fakeTypes) Names() []string { return slices.Sorted(maps.Keys(f)) }

func (f fakeTypes) ValidateArgs(typ string, args map[string]any) error { return f[typ](args) }

var testTypes = fakeTypes{
	"exec": func(args map[string]any) error {
		if cmd, _ := args["command"].([]any); len(cmd) == 0 {
			return errors.New(`command is required: a list like [echo, hello]`)
		}
		return nil
	},
	"http": func(args map[string]any) error {
		if _, ok := args["url"].(string); !ok {
			return errors.New("url is required")
		}
		return nil
	},
	"log": func(map[string]any) error { return nil },
}

func env(vars ...string) Option {
	return WithLookupEnv(func(name string) (string, bool) {
		for i := 0; i+1 < len(vars); i += 2 {
			if vars[i] == name {
				return vars[i+1], true
			}
		}
		return "", false
	})
}

// noEnv keeps the tests' environment out of the results.
var noEnv = env()

func at(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// taskView is a Task in comparable form: zones by name, the schedule by
// its next tick after a fixed instant.
type taskView struct {
	Name, Spec, Type, Location string
	Args                       map[string]any
	Next                       string
	Timeout, StartingDeadline  time.Duration
	Jitter                     time.Duration
	Policy                     lock.Policy
	Suspend                    bool
	Line                       int
}

func view(t *testing.T, task Task) taskView {
	t.Helper()
	if task.Schedule == nil {
		t.Fatalf("task %q has no schedule", task.Name)
	}
	return taskView{
		Name: task.Name, Spec: task.Spec, Type: task.Type, Location: task.Location.String(),
		Args:    task.Args,
		Next:    task.Schedule.Next(at(t, "2024-03-30T12:00:00Z")).Format(time.RFC3339),
		Timeout: task.Timeout, StartingDeadline: task.StartingDeadline, Jitter: task.Jitter,
		Policy: task.ConcurrencyPolicy, Suspend: task.Suspend, Line: task.Line,
	}
}

func TestLoadGood(t *testing.T) {
	cfg, err := Load("testdata/good.yaml", WithTaskTypes(testTypes), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.File != "testdata/good.yaml" || cfg.InstanceID != "replica-a" || cfg.Timezone.String() != "Europe/Berlin" || cfg.ShutdownTimeout != time.Minute {
		t.Errorf("top level: got %q %q %v %v", cfg.File, cfg.InstanceID, cfg.Timezone, cfg.ShutdownTimeout)
	}
	wantLock := Lock{Backend: "redis", TTL: 45 * time.Second, RenewInterval: 5 * time.Second, MaxClockSkew: 3 * time.Second,
		Redis:    Redis{URL: "rediss://cache.internal:6380/2", Mode: ModeSingle, KeyPrefix: "{prod}:"},
		Postgres: Postgres{Table: DefaultTable}}
	if !reflect.DeepEqual(cfg.Lock, wantLock) {
		t.Errorf("lock: got %+v, want %+v", cfg.Lock, wantLock)
	}
	want := []taskView{{
		Name: "heartbeat", Spec: "@every 10s", Type: "log", Location: "America/New_York",
		Args: map[string]any{"message": "still here"}, Next: "2024-03-30T08:00:10-04:00",
		Timeout: 30 * time.Second, StartingDeadline: 10 * time.Second, Jitter: 2 * time.Second,
		Policy: lock.Replace, Suspend: true, Line: 14,
	}, {
		// In the default zone, Europe/Berlin, 02:30 is skipped on 2024-03-31.
		Name: "nightly report", Spec: "30 2 * * *", Type: "exec", Location: "Europe/Berlin",
		Args: map[string]any{
			"command": []any{"sh", "-c", "make report"},
			"env":     map[string]any{"DATE": "2024-01-01"}, // a timestamp stays text
			"retries": 3, "ratio": 0.5, "verbose": false, "nothing": nil,
		},
		Next: "2024-03-31T03:00:00+02:00", Policy: lock.Forbid, Line: 26,
	}, {
		Name: "ping", Spec: "CRON_TZ=Asia/Tokyo 0 9 * * mon-fri", Type: "http", Location: "Asia/Tokyo",
		Args: map[string]any{"url": "https://example.com/ping"}, Next: "2024-04-01T09:00:00+09:00",
		Policy: lock.Allow, Line: 37,
	}, {
		Name: "ping-eu", Spec: "0 9 * * mon-fri", Type: "http", Location: "Europe/Berlin",
		Args: map[string]any{"url": "https://example.com/ping"}, Next: "2024-04-01T09:00:00+02:00",
		Policy: lock.Allow, Line: 45,
	}}
	if len(cfg.Tasks) != len(want) {
		t.Fatalf("got %d tasks, want %d", len(cfg.Tasks), len(want))
	}
	for i, w := range want {
		if got := view(t, cfg.Tasks[i]); !reflect.DeepEqual(got, w) {
			t.Errorf("task %d:\n got %+v\nwant %+v", i, got, w)
		}
	}
}

func TestDefaults(t *testing.T) {
	cfg, err := Parse("t.yaml", []byte("tasks:\n  - {name: t, schedule: '@hourly', task: log}\n"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{File: "t.yaml", Timezone: time.UTC, ShutdownTimeout: 25 * time.Second, Lock: Lock{
		Backend: "memory", TTL: 30 * time.Second, RenewInterval: 10 * time.Second, MaxClockSkew: 2 * time.Second,
		Redis: Redis{URL: "redis://127.0.0.1:6379/0", Mode: ModeSingle, KeyPrefix: "{beat}:"}, Postgres: Postgres{Table: DefaultTable},
	}}
	got := *cfg
	got.Tasks = nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	wantTask := taskView{Name: "t", Spec: "@hourly", Type: "log", Location: "UTC", Args: map[string]any{},
		Next: "2024-03-30T13:00:00Z", Policy: lock.Forbid, Line: 2}
	if len(cfg.Tasks) != 1 || !reflect.DeepEqual(view(t, cfg.Tasks[0]), wantTask) {
		t.Errorf("tasks: got %+v, want [%+v]", cfg.Tasks, wantTask)
	}
}

// TestParse checks one rule per row on small inline files. The header
// keeps the rows short: rows append tasks or replace it.
const (
	ttlWhy  = ": a run renews its lease and stops trusting it at 9/10 of the ttl, which needs round trips to the store to fit; the default is 30s"
	skewWhy = ": it is how far a replica's clock may run ahead of the store's before its claims are refused; machines kept in time by NTP differ by milliseconds; the default is 2s"
)

func TestParse(t *testing.T) {
	const task = "tasks:\n  - {name: t, schedule: '@hourly', task: log}\n"
	tests := []struct {
		name string
		yaml string
		want string // the error; "" for none
	}{
		{"minimal", task, ""},
		{"empty file", "", "t.yaml: no tasks: add at least one under tasks:"},
		{"only comments", "# nothing\n", "t.yaml: no tasks: add at least one under tasks:"},
		{"empty tasks", "tasks: []\n", "t.yaml:1: no tasks: add at least one under tasks:"},
		{"null tasks", "timezone: UTC\ntasks:\n", "t.yaml:2: no tasks: add at least one under tasks:"},
		{"tasks not a list", "tasks: {name: t}\n", `t.yaml:1: tasks: expected a list of tasks, got a mapping`},
		{"top level not a mapping", "- a\n", "t.yaml: no tasks: add at least one under tasks:\n" +
			"t.yaml:1: top level: expected a mapping of instance_id, timezone, shutdown_timeout, max_concurrent_runs, http, lock, tasks, got a list"},
		{"yaml syntax", "tasks: [\n", "t.yaml:1: invalid YAML: did not find expected node content"},
		{"yaml syntax without a line", "a: b: c\n", "t.yaml: invalid YAML: mapping values are not allowed in this context"},
		{"unknown anchor", "tasks: *nope\n", "t.yaml: invalid YAML: unknown anchor 'nope' referenced"},
		{"two documents", task + "---\n" + task, "t.yaml:3: a second YAML document starts here; put all settings in one"},
		{"repeated field", "timezone: UTC\ntimezone: UTC\n" + task, `t.yaml:2: "timezone" is set twice (first at line 1)`},
		{"repeated task field", "tasks:\n  - {name: t, schedule: '@hourly', task: log, task: exec}\n", `t.yaml:2: task "t": "task" is set twice (first at line 2)`},
		{"unknown field with a hint", "tasks:\n  - {name: t, schedule: '@hourly', task: log, jiter: 1s}\n",
			`t.yaml:2: task "t": unknown field "jiter" in task (did you mean "jitter"?); valid fields: name, schedule, task, args, timezone, timeout, concurrency_policy, starting_deadline, suspend, jitter`},
		{"unknown field without a hint", "owner: me\n" + task, `t.yaml:1: unknown field "owner"; valid fields: instance_id, timezone, shutdown_timeout, max_concurrent_runs, http, lock, tasks`},
		{"complex key", "? [a]\n: 1\n" + task, `t.yaml:1: a key must be a plain value, not a list`},
		{"bad merge", "tasks:\n  - {<<: 5, name: t, schedule: '@hourly', task: log}\n", `t.yaml:2: task "t": << (merge) needs a mapping or a list of mappings`},
		{"merge of a list of lists", "tasks:\n  - {<<: [[{task: log}]], name: t, schedule: '@hourly', task: log}\n", `t.yaml:2: task "t": << (merge) needs a mapping or a list of mappings`},
		{"merge of itself", "tasks:\n  - &t {<<: *t, name: t, schedule: '@hourly', task: log}\n", `t.yaml:2: task "t": merge keys (<<) nested more than 64 levels deep (does a mapping merge itself?)`},
		// Decoding stops there: the next task is not reported as empty.
		{"merge of a list holding itself", "tasks:\n  - &t {<<: [*t, *t], name: t, schedule: '@hourly', task: log}\n  - {name: u, schedule: '@daily', task: log}\n",
			`t.yaml:2: task "t": merge keys (<<) nested more than 64 levels deep (does a mapping merge itself?)`},
		{"lock not a mapping", "lock: redis\n" + task, `t.yaml:1: lock: expected a mapping of backend, ttl, renew_interval, max_clock_skew, redis, postgres, got "redis"`},
		{"null lock", "lock:\n" + task, ""},
		{"string from a number", "instance_id: 42\n" + task, ""},
		{"string from a list", "instance_id: [42]\n" + task, `t.yaml:1: instance_id: expected a string, got a list`},
		{"Local zone", "timezone: Local\n" + task, `t.yaml:1: timezone: time zone "Local" differs between machines; name an IANA zone, like "Europe/Berlin" or "UTC"`},
		{"empty zone", "timezone: ''\n" + task, `t.yaml:1: timezone: empty time zone; name an IANA zone, like "Europe/Berlin" or "UTC"`},
		{"null zone is UTC", "timezone:\n" + task, ""},
		{"negative shutdown_timeout", "shutdown_timeout: -1s\n" + task, "t.yaml:1: shutdown_timeout must not be negative, got -1s"},
		{"zero shutdown_timeout", "shutdown_timeout: 0s\n" + task, ""},
		{"duration without unit", "shutdown_timeout: 30\n" + task, `t.yaml:1: shutdown_timeout: invalid duration "30": use a number with a unit, like "30s" or "1m30s"`},
		{"duration as mapping", "shutdown_timeout: {s: 1}\n" + task, `t.yaml:1: shutdown_timeout: expected a duration (use a number with a unit, like "30s" or "1m30s"), got a mapping`},
		{"ttl zero", "lock: {ttl: 0s}\n" + task, "t.yaml:1: lock.ttl must be at least 1s, got 0s" + ttlWhy},
		{"ttl negative", "lock: {ttl: -5s}\n" + task, "t.yaml:1: lock.ttl must be at least 1s, got -5s" + ttlWhy},
		{"ttl under 1ms", "lock: {ttl: 500us}\n" + task, "t.yaml:1: lock.ttl must be at least 1s, got 500µs" + ttlWhy},
		{"ttl 1s", "lock: {ttl: 1s}\n" + task, ""},
		{"renew past 9/10 of ttl", "lock: {ttl: 10s, renew_interval: 9500ms}\n" + task, "t.yaml:1: lock.renew_interval (9.5s) must be below 9/10 of lock.ttl (10s), so below 9s: a run stops trusting its lock at 9/10 of the ttl, and the renewal must come before; the default is ttl/3"},
		{"ttl 999ms", "lock: {ttl: 999ms}\n" + task, "t.yaml:1: lock.ttl must be at least 1s, got 999ms" + ttlWhy},
		{"max_clock_skew zero", "lock: {max_clock_skew: 0s}\n" + task, "t.yaml:1: lock.max_clock_skew must be above 0 and at most 1m0s, got 0s" + skewWhy},
		{"max_clock_skew an hour", "lock: {max_clock_skew: 1h}\n" + task, "t.yaml:1: lock.max_clock_skew must be above 0 and at most 1m0s, got 1h0m0s" + skewWhy},
		{"starting_deadline 1ns", "tasks:\n  - {name: t, schedule: '@hourly', task: log, starting_deadline: 1ns}\n",
			`t.yaml:2: task "t": starting_deadline 1ns is too short for a claim to reach the store in time; use at least 1s, or leave it out (until the next tick, at most 1m0s)`},
		{"renew zero", "lock: {renew_interval: 0s}\n" + task, "t.yaml:1: lock.renew_interval must be positive, got 0s"},
		{"renew negative", "lock: {renew_interval: -1s}\n" + task, "t.yaml:1: lock.renew_interval must be positive, got -1s"},
		{"renew equal to ttl", "lock: {ttl: 10s, renew_interval: 10s}\n" + task,
			"t.yaml:1: lock.renew_interval (10s) must be below 9/10 of lock.ttl (10s), so below 9s: a run stops trusting its lock at 9/10 of the ttl, and the renewal must come before; the default is ttl/3"},
		{"renew against the default ttl", "lock: {renew_interval: 31s}\n" + task,
			"t.yaml:1: lock.renew_interval (31s) must be below 9/10 of lock.ttl (30s), so below 27s: a run stops trusting its lock at 9/10 of the ttl, and the renewal must come before; the default is ttl/3"},
		{"renew not checked against a bad ttl", "lock: {ttl: 0s, renew_interval: 1m}\n" + task, "t.yaml:1: lock.ttl must be at least 1s, got 0s" + ttlWhy},
		{"unknown backend", "lock: {backend: etcd}\n" + task, `t.yaml:1: unknown lock backend "etcd": use memory, redis or postgres`},
		{"backend is case-sensitive", "lock: {backend: Redis}\n" + task, `t.yaml:1: unknown lock backend "Redis": use memory, redis or postgres`},
		{"redis url schemes", "lock: {redis: {url: 'unix:///run/redis.sock'}}\n" + task, ""},
		{"redis url without scheme", "lock:\n  redis:\n    url: 127.0.0.1:6379\n" + task, `t.yaml:3: lock.redis.url is not a URL; write it like "redis://127.0.0.1:6379/0"`},
		{"redis url with a host only", "lock: {redis: {url: localhost}}\n" + task, `t.yaml:1: lock.redis.url has no scheme; write it like "redis://127.0.0.1:6379/0"`},
		{"redis url hides the password", "lock: {redis: {url: 'http://u:pw@h'}}\n" + task, `t.yaml:1: lock.redis.url has unsupported scheme "http": use redis://, rediss:// or unix://`},
		{"cluster", "lock:\n  redis:\n    addrs: ['a:7000', 'b:7000']\n    mode: cluster\n" + task, ""},
		{"sentinel", "lock:\n  redis: {addrs: ['s1:26379', 's2:26379'], mode: sentinel, sentinel_master: mymaster}\n" + task, ""},
		{"one address is one server", "lock: {redis: {addrs: ['r:6379']}}\n" + task, ""},
		{"addrs without mode", "lock:\n  redis:\n    addrs: ['a:7000', 'b:7000']\n" + task, "t.yaml:2: lock.redis.addrs lists 2 servers: set lock.redis.mode to cluster or sentinel"},
		{"url and addrs", "lock:\n  redis:\n    url: redis://a:6379\n    addrs: ['a:7000']\n" + task, "t.yaml:3: lock.redis.url and lock.redis.addrs are both set (addrs at line 4): give url for one server, or addrs with mode for a Cluster or Sentinel"},
		{"cluster mode with url", "lock:\n  redis:\n    url: redis://a:6379\n    mode: cluster\n" + task, `t.yaml:4: lock.redis.mode "cluster" needs lock.redis.addrs, the addresses of the cluster nodes, instead of lock.redis.url`},
		{"unknown mode", "lock:\n  redis:\n    addrs: ['a:1', 'b:1']\n    mode: ring\n" + task, `t.yaml:4: unknown lock.redis.mode "ring": use single, cluster or sentinel`},
		{"bad address", "lock:\n  redis:\n    addrs: ['a:1', 'b']\n    mode: cluster\n" + task, `t.yaml:3: lock.redis.addrs[1] "b" is not host:port, like "redis-0.redis:6379"`},
		{"cluster prefix without hash tag", "lock:\n  redis:\n    addrs: ['a:1', 'b:1']\n    mode: cluster\n    key_prefix: 'beat:'\n" + task,
			`t.yaml:5: lock.redis.key_prefix "beat:" has no {hash tag}: on a Redis Cluster every key of a deployment must be in one slot, like the default "{beat}:"`},
		{"sentinel without master", "lock:\n  redis:\n    addrs: ['a:1', 'b:1']\n    mode: sentinel\n" + task,
			"t.yaml:4: lock.redis.mode sentinel needs lock.redis.sentinel_master, the name the Sentinels know the master by (e.g. mymaster)"},
		{"master without sentinel", "lock:\n  redis:\n    sentinel_master: m\n" + task, `t.yaml:3: lock.redis.sentinel_master is set, but lock.redis.mode is "single": set mode: sentinel, or remove it`},
		{"two passwords", "lock:\n  redis:\n    url: redis://:a@r:6379\n    password: b\n" + task, "t.yaml:4: lock.redis.password is set, and lock.redis.url holds a password too: keep one"},
		{"tls without rediss", "lock:\n  redis:\n    url: redis://r:6379\n    tls: {server_name: r}\n" + task, "t.yaml:3: lock.redis.tls is set but lock.redis.url is redis://: write rediss:// to connect with TLS"},
		{"tls cert without key", "lock:\n  redis:\n    url: rediss://r:6379\n    tls:\n      cert_file: c.pem\n" + task, "t.yaml:4: lock.redis.tls: give cert_file and key_file together (a client certificate and its key), or neither"},
		{"tls ca missing", "lock:\n  redis:\n    url: rediss://r:6379\n    tls:\n      ca_file: /nonexistent/ca.pem\n" + task, "t.yaml:5: lock.redis.tls.ca_file: /nonexistent/ca.pem: no such file or directory"},
		{"tls ca not PEM", "lock:\n  redis:\n    url: rediss://r:6379\n    tls:\n      ca_file: testdata/good.yaml\n" + task, `t.yaml:5: lock.redis.tls.ca_file "testdata/good.yaml" holds no PEM certificate`},
		{"min_replicas negative", "lock: {redis: {min_replicas: -1}}\n" + task, "t.yaml:1: lock.redis.min_replicas must be from 0 to 16, got -1: it is how many replicas must hold a claim before its run starts"},
		{"min_replicas words", "lock: {redis: {min_replicas: two}}\n" + task, `t.yaml:1: lock.redis.min_replicas: expected a whole number, got "two"`},
		{"redis url bad database", "lock: {redis: {url: 'redis://r:6379/x'}}\n" + task, `t.yaml:1: lock.redis.url is invalid: invalid database number: "x"`},
		{"postgres", "lock: {backend: postgres, postgres: {url: 'postgres://beat@db/beat', table: beat_x}}\n" + task, ""},
		{"postgres without url", "lock:\n  backend: postgres\n" + task, `t.yaml:2: lock.backend postgres needs lock.postgres.url (or BEAT_POSTGRES_URL), like "postgres://beat@db:5432/beat"`},
		{"postgres bad scheme", "lock: {backend: postgres, postgres: {url: 'mysql://db'}}\n" + task, `t.yaml:1: lock.postgres.url has unsupported scheme "mysql": use postgres://`},
		{"postgres bad sslmode", "lock: {backend: postgres, postgres: {url: 'postgres://u:secret@db/beat?sslmode=maybe'}}\n" + task,
			"t.yaml:1: lock.postgres.url is invalid: check its port, its query parameters (sslmode, connect_timeout, ...) and their values"},
		{"postgres table injection", "lock: {backend: postgres, postgres: {url: 'postgres://db', table: 'x; drop table y'}}\n" + task,
			`t.yaml:1: lock.postgres.table "x; drop table y": use lower-case letters, digits and _, starting with a letter or _, at most 41 characters`},
		{"max_concurrent_runs", "max_concurrent_runs: 4\n" + task, ""},
		{"max_concurrent_runs negative", "max_concurrent_runs: -1\n" + task, "t.yaml:1: max_concurrent_runs must not be negative, got -1; 0 (the default) sets no bound"},
		{"max_concurrent_runs not a number", "max_concurrent_runs: many\n" + task, `t.yaml:1: max_concurrent_runs: expected a whole number, got "many"`},
		{"http listen", "http: {listen: ':8080'}\n" + task, ""},
		{"http listen with host", "http: {listen: '127.0.0.1:0'}\n" + task, ""},
		{"http listen off", "http: {listen: ''}\n" + task, ""},
		{"http listen without port", "http: {listen: '8080'}\n" + task, `t.yaml:1: http.listen "8080" is not host:port; write it like ":8080" (every interface) or "127.0.0.1:8080", or leave it empty for no listener`},
		{"http listen bad port", "http:\n  listen: ':http'\n" + task, `t.yaml:2: http.listen ":http": port "http" is not a number from 0 to 65535`},
		{"http listen port too big", "http: {listen: ':70000'}\n" + task, `t.yaml:1: http.listen ":70000": port "70000" is not a number from 0 to 65535`},
		{"http unknown field", "http: {port: 80}\n" + task, `t.yaml:1: unknown field "port" in http; valid fields: listen`},
		{"empty key_prefix", "lock: {redis: {key_prefix: ''}}\n" + task, `t.yaml:1: lock.redis.key_prefix must not be empty; the default is "{beat}:"`},
		{"null key_prefix is the default", "lock: {redis: {key_prefix: null}}\n" + task, ""},
		{"task not a mapping", "tasks: [hello]\n", `t.yaml:1: a task must be a mapping with name, schedule and task; got "hello"`},
		{"missing name", "tasks:\n  - {schedule: '@hourly', task: log}\n", "t.yaml:2: missing name: every task needs a unique name"},
		{"empty name", "tasks:\n  - {name: '', schedule: '@hourly', task: log}\n", "t.yaml:2: missing name: every task needs a unique name"},
		{"control character in name", "tasks:\n  - {name: \"a\\nb\", schedule: '@hourly', task: log}\n", `t.yaml:2: task "a\nb": name must not contain control characters`},
		{"unicode name", "tasks:\n  - {name: \"Bericht über {alles}: *\", schedule: '@hourly', task: log}\n", ""},
		{"duplicate name", task + "  - {name: t, schedule: '@daily', task: log}\n", `t.yaml:3: task "t": name is already used by the task at line 2; task names must be unique`},
		{"missing schedule", "tasks:\n  - {name: t, task: log}\n", `t.yaml:2: task "t": missing schedule; examples: "*/5 * * * *", "0 */5 * * * *", "@every 30s"`},
		{"blank schedule", "tasks:\n  - name: t\n    task: log\n    schedule: ' '\n", `t.yaml:4: task "t": missing schedule; examples: "*/5 * * * *", "0 */5 * * * *", "@every 30s"`},
		{"bad schedule", "tasks:\n  - {name: t, schedule: '@every 1ms', task: log}\n", `t.yaml:2: task "t": schedule "@every 1ms": interval 1ms is shorter than the minimum of 1s`},
		{"missing task", "tasks:\n  - {name: t, schedule: '@hourly'}\n", `t.yaml:2: task "t": missing task: set it to the type of task to run; registered types: exec, http, log`},
		{"unknown task", "tasks:\n  - {name: t, schedule: '@hourly', task: mail}\n", `t.yaml:2: task "t": unknown task type "mail"; registered types: exec, http, log`},
		{"args rejected", "tasks:\n  - name: t\n    schedule: '@hourly'\n    task: http\n    args:\n      method: GET\n", `t.yaml:5: task "t": args: url is required`},
		{"args absent and rejected", "tasks:\n  - {name: t, schedule: '@hourly', task: exec}\n", `t.yaml:2: task "t": args: command is required: a list like [echo, hello]`},
		{"args not a mapping", "tasks:\n  - {name: t, schedule: '@hourly', task: log, args: [a]}\n", `t.yaml:2: task "t": args: expected a mapping of names to values, got a list`},
		{"args repeated key", "tasks:\n  - name: t\n    schedule: '@hourly'\n    task: log\n    args:\n      a: 1\n      a: 2\n", `t.yaml:7: task "t": "a" is set twice (first at line 6)`},
		{"args bad explicit tag", "tasks:\n  - {name: t, schedule: '@hourly', task: log, args: {n: !!int x}}\n", `t.yaml:2: task "t": args.n: cannot read "x" as !!int`},
		{"args alias cycle", "tasks:\n  - {name: t, schedule: '@hourly', task: log, args: {a: &x [*x]}}\n",
			`t.yaml:2: task "t": args: nested more than 64 levels deep (does an alias refer to a value that contains it?)`},
		{"task timezone", "tasks:\n  - {name: t, schedule: '@hourly', task: log, timezone: Mars/Olympus}\n", `t.yaml:2: task "t": timezone: unknown time zone "Mars/Olympus"; name an IANA zone, like "Europe/Berlin" or "UTC"`},
		{"policy", "tasks:\n  - {name: t, schedule: '@hourly', task: log, concurrency_policy: Queue}\n", `t.yaml:2: task "t": unknown concurrency policy "Queue": use Forbid, Allow or Replace`},
		{"negative timeout", "tasks:\n  - {name: t, schedule: '@hourly', task: log, timeout: -1s}\n", `t.yaml:2: task "t": timeout must not be negative, got -1s`},
		{"negative starting_deadline", "tasks:\n  - {name: t, schedule: '@hourly', task: log, starting_deadline: -1s}\n", `t.yaml:2: task "t": starting_deadline must not be negative, got -1s`},
		{"negative jitter", "tasks:\n  - {name: t, schedule: '@hourly', task: log, jitter: -1s}\n", `t.yaml:2: task "t": jitter must not be negative, got -1s`},
		{"jitter within the deadline and the interval", "tasks:\n  - {name: t, schedule: '@every 10s', task: log, jitter: 10s}\n", ""},
		{"jitter past the default deadline", "tasks:\n  - {name: t, schedule: '@hourly', task: log, jitter: 90s}\n",
			`t.yaml:2: task "t": jitter 1m30s could delay a claim past the default starting deadline (1m0s), and the tick would be skipped: use a jitter of at most 1m0s, or a longer starting_deadline`},
		{"jitter past starting_deadline", "tasks:\n  - {name: t, schedule: '@hourly', task: log, starting_deadline: 5s, jitter: 6s}\n",
			`t.yaml:2: task "t": jitter 6s could delay a claim past the starting deadline (5s), and the tick would be skipped: use a jitter of at most 5s, or a longer starting_deadline`},
		{"jitter past the next tick", "tasks:\n  - {name: t, schedule: '0 9,10 * * *', task: log, starting_deadline: 2h, jitter: 90m}\n",
			`t.yaml:2: task "t": jitter 1h30m0s could delay a claim past the next tick (ticks can be 1h0m0s apart): use a jitter of at most 1h0m0s`},
		{"name with @", "tasks:\n  - {name: 'x@2026-11-27T12:00:00.000Z', schedule: '@hourly', task: log}\n",
			`t.yaml:2: task "x@2026-11-27T12:00:00.000Z": name must not contain '@', which beat keeps for the per-tick locks of concurrency_policy Allow; use another character, like '-'`},
		{"negative max_clock_skew", "lock: {max_clock_skew: -1s}\n" + task, "t.yaml:1: lock.max_clock_skew must be above 0 and at most 1m0s, got -1s" + skewWhy},
		{"suspend yes", "tasks:\n  - {name: t, schedule: '@hourly', task: log, suspend: yes}\n", `t.yaml:2: task "t": suspend: expected true or false, got "yes"`},
		{"suspend list", "tasks:\n  - {name: t, schedule: '@hourly', task: log, suspend: []}\n", `t.yaml:2: task "t": suspend: expected true or false, got a list`},
		{"problems sorted by line", "tasks:\n  - {name: b, schedule: '@hourly', task: log, jitter: -1s}\n" +
			"lock: {ttl: 0s}\n", "t.yaml:2: task \"b\": jitter must not be negative, got -1s\nt.yaml:3: lock.ttl must be at least 1s, got 0s" + ttlWhy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("t.yaml", []byte(tt.yaml), WithTaskTypes(testTypes), noEnv)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("unexpected error:\n%v", err)
				}
				if len(cfg.Tasks) == 0 {
					t.Fatal("no tasks")
				}
				return
			}
			if cfg != nil {
				t.Errorf("got a config with the error")
			}
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("got %T %v, want a *ValidationError", err, err)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("error\n got: %s\nwant: %s", got, tt.want)
			}
		})
	}
}

func TestWithoutTaskTypes(t *testing.T) {
	tests := []struct{ yaml, want string }{
		{"tasks:\n  - {name: t, schedule: '@hourly', task: anything, args: {x: 1}}\n", ""},
		{"tasks:\n  - {name: t, schedule: '@hourly'}\n", `t.yaml:2: task "t": missing task: set it to the type of task to run`},
	}
	for _, tt := range tests {
		_, err := Parse("t.yaml", []byte(tt.yaml), noEnv)
		if got := errText(err); got != tt.want {
			t.Errorf("%q:\n got: %s\nwant: %s", tt.yaml, got, tt.want)
		}
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestEnvOverrides(t *testing.T) {
	const file = "instance_id: from-file\nlock:\n  backend: memory\n  redis: {url: 'redis://file:6379/0'}\ntasks:\n  - {name: t, schedule: '@hourly', task: log}\n"
	tests := []struct {
		name                string
		env                 Option
		wantID, wantBackend string
		wantURL, wantErr    string
	}{
		{"none", noEnv, "from-file", "memory", "redis://file:6379/0", ""},
		{"all", env("BEAT_INSTANCE_ID", "pod-7", "BEAT_LOCK_BACKEND", "redis", "BEAT_REDIS_URL", "rediss://env:6380/1"), "pod-7", "redis", "rediss://env:6380/1", ""},
		{"empty values count as unset", env("BEAT_INSTANCE_ID", "", "BEAT_LOCK_BACKEND", "", "BEAT_REDIS_URL", ""), "from-file", "memory", "redis://file:6379/0", ""},
		{"bad backend names the variable", env("BEAT_LOCK_BACKEND", "etcd"), "", "", "", `env BEAT_LOCK_BACKEND: unknown lock backend "etcd": use memory, redis or postgres`},
		{"bad url names the variable", env("BEAT_REDIS_URL", "tcp://x:1"), "", "", "", `env BEAT_REDIS_URL: lock.redis.url has unsupported scheme "tcp": use redis://, rediss:// or unix://`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("t.yaml", []byte(file), tt.env)
			if got := errText(err); got != tt.wantErr {
				t.Fatalf("error\n got: %s\nwant: %s", got, tt.wantErr)
			}
			if err != nil {
				return
			}
			if cfg.InstanceID != tt.wantID || cfg.Lock.Backend != tt.wantBackend || cfg.Lock.Redis.URL != tt.wantURL {
				t.Errorf("got %q %q %q, want %q %q %q", cfg.InstanceID, cfg.Lock.Backend, cfg.Lock.Redis.URL, tt.wantID, tt.wantBackend, tt.wantURL)
			}
		})
	}
}

func TestHTTPListenFromEnv(t *testing.T) {
	const file = "http: {listen: ':8080'}\ntasks:\n  - {name: t, schedule: '@hourly', task: log}\n"
	tests := []struct {
		env           Option
		want, wantErr string
	}{
		{noEnv, ":8080", ""},
		{env("BEAT_HTTP_LISTEN", "127.0.0.1:9100"), "127.0.0.1:9100", ""},
		{env("BEAT_HTTP_LISTEN", ""), ":8080", ""},
		{env("BEAT_HTTP_LISTEN", "nope"), "", `env BEAT_HTTP_LISTEN: http.listen "nope" is not host:port; write it like ":8080" (every interface) or "127.0.0.1:8080", or leave it empty for no listener`},
	}
	for _, tt := range tests {
		cfg, err := Parse("t.yaml", []byte(file), tt.env)
		if got := errText(err); got != tt.wantErr {
			t.Errorf("error\n got: %s\nwant: %s", got, tt.wantErr)
			continue
		}
		if err == nil && cfg.HTTP.Listen != tt.want {
			t.Errorf("listen %q, want %q", cfg.HTTP.Listen, tt.want)
		}
	}
}

func TestInsecureTLSWarned(t *testing.T) {
	for _, lockYAML := range []string{
		"lock: {backend: redis, redis: {url: 'rediss://r:6380/0', tls: {insecure_skip_verify: true}}}\n",
		"lock: {backend: redis, redis: {url: 'rediss://r:6380/0?skip_verify=true'}}\n",
	} {
		cfg, err := Parse("t.yaml", []byte(lockYAML+"tasks:\n  - {name: t, schedule: '@hourly', task: log}\n"), noEnv)
		if err != nil {
			t.Fatal(err)
		}
		if len(cfg.Warnings) != 1 || !strings.Contains(cfg.Warnings[0].Msg, "accepts any server certificate") {
			t.Errorf("%s: warnings %v; want one about insecure_skip_verify", lockYAML, cfg.Warnings)
		}
	}
}

func TestSecretsFromEnv(t *testing.T) {
	const file = "lock:\n  backend: postgres\n  redis: {url: 'redis://r:6379'}\n  postgres: {url: 'postgres://file/db'}\ntasks:\n  - {name: t, schedule: '@hourly', task: log}\n"
	cfg, err := Parse("t.yaml", []byte(file), env("BEAT_REDIS_PASSWORD", "pw", "BEAT_POSTGRES_URL", "postgres://env/db"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Lock.Redis.Password != "pw" || cfg.Lock.Postgres.URL != "postgres://env/db" {
		t.Errorf("password %q, postgres url %q; want them from the environment", cfg.Lock.Redis.Password, cfg.Lock.Postgres.URL)
	}
	_, err = Parse("t.yaml", []byte(file), env("BEAT_REDIS_URL", "redis://:a@r:6379", "BEAT_REDIS_PASSWORD", "b"))
	if want := "env BEAT_REDIS_PASSWORD: lock.redis.password is set, and lock.redis.url holds a password too: keep one"; errText(err) != want {
		t.Errorf("got %v; want %s", err, want)
	}
}

func TestEnvProblemsSortWithTheFile(t *testing.T) {
	_, err := Parse("t.yaml", []byte("tasks:\n  - {name: t, schedule: '@hourly', task: log, jitter: -1s}\n"), env("BEAT_LOCK_BACKEND", "etcd"))
	want := "env BEAT_LOCK_BACKEND: unknown lock backend \"etcd\": use memory, redis or postgres\n" +
		"t.yaml:2: task \"t\": jitter must not be negative, got -1s"
	if got := errText(err); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestDefaultPath(t *testing.T) {
	tests := []struct {
		env  Option
		want string
	}{
		{noEnv, "schedule.yaml"},
		{env("BEAT_CONFIG", "/etc/beat/prod.yaml"), "/etc/beat/prod.yaml"},
		{env("BEAT_CONFIG", ""), "schedule.yaml"},
	}
	for _, tt := range tests {
		var o options
		tt.env(&o)
		if got := DefaultPath(o.lookupEnv); got != tt.want {
			t.Errorf("DefaultPath = %q, want %q", got, tt.want)
		}
	}
}

func TestLoad(t *testing.T) {
	cfg, err := Load("", env("BEAT_CONFIG", "testdata/good.yaml"), WithTaskTypes(testTypes))
	if err != nil || cfg.File != "testdata/good.yaml" {
		t.Errorf("Load(\"\") with BEAT_CONFIG: %v, %v", cfg, err)
	}
	_, err = Load("testdata/missing.yaml", noEnv)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "testdata/missing.yaml") {
		t.Errorf("Load of a missing file: got %v, want an error naming the file and wrapping fs.ErrNotExist", err)
	}
}

func TestProblemString(t *testing.T) {
	tests := []struct {
		p    Problem
		want string
	}{
		{Problem{File: "s.yaml", Line: 3, Task: "t", Msg: "m"}, `s.yaml:3: task "t": m`},
		{Problem{File: "s.yaml", Line: 3, Msg: "m"}, `s.yaml:3: m`},
		{Problem{File: "s.yaml", Msg: "m"}, `s.yaml: m`},
		{Problem{File: "env BEAT_LOCK_BACKEND", Msg: "m"}, `env BEAT_LOCK_BACKEND: m`},
		{Problem{File: "s.yaml", Line: 1, Task: "a\tb", Msg: "m"}, `s.yaml:1: task "a\tb": m`},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("got %s, want %s", got, tt.want)
		}
	}
}

// TestJoinedArgProblemsEachGetALine: a validator that reports several
// problems at once (errors.Join) gets one FILE:LINE line per problem.
func TestJoinedArgProblemsEachGetALine(t *testing.T) {
	types := fakeTypes{"multi": func(map[string]any) error {
		return errors.Join(errors.New("args.a: required"), errors.New("b is not a number"))
	}}
	_, err := Parse("s.yaml", []byte("tasks:\n  - name: x\n    schedule: \"@hourly\"\n    task: multi\n    args: {b: x}\n"), WithTaskTypes(types))
	var verr *ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("err = %v; want a ValidationError", err)
	}
	want := "s.yaml:5: task \"x\": args.a: required\ns.yaml:5: task \"x\": args: b is not a number"
	if got := strings.TrimSpace(verr.Error()); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}
