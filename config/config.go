// Package config loads and validates schedule.yaml, the file that every
// replica of a beat deployment reads.
//
// Validation is strict and complete: unknown fields, wrong types and bad
// values are all errors, and [Parse] reports every problem in the file at
// once, each with its line, as a [*ValidationError].
//
// Environment variables override the file, for settings that differ
// between deployments of the same schedule, or are secret: BEAT_INSTANCE_ID
// (instance_id), BEAT_HTTP_LISTEN (http.listen), BEAT_LOCK_BACKEND
// (lock.backend), BEAT_REDIS_URL (lock.redis.url), BEAT_REDIS_PASSWORD
// (lock.redis.password) and BEAT_POSTGRES_URL (lock.postgres.url).
// BEAT_CONFIG names the file (see [DefaultPath]). A variable set to the empty
// string counts as unset.
package config

import (
	"fmt"
	"os"
	"time"

	"github.com/beatlock/beat/lock"
	"github.com/beatlock/beat/lock/redislock"
	"github.com/beatlock/beat/schedule"
	"github.com/beatlock/beat/scheduler"
)

// Config is a loaded schedule.yaml with every default filled in.
type Config struct {
	File            string // path it was loaded from
	InstanceID      string // "" when unset: the caller generates one
	Timezone        *time.Location
	ShutdownTimeout time.Duration
	// MaxConcurrentRuns bounds the runs one replica holds at once; 0: no
	// bound.
	MaxConcurrentRuns int
	HTTP              HTTP
	Lock              Lock
	Tasks             []Task
	// Warnings are what is valid but likely a mistake (an instance_id that
	// every replica reading the file would share); `beat validate` prints them.
	Warnings []Problem
}

// HTTP configures the listener of /metrics, /healthz, /readyz and /status.
type HTTP struct {
	// Listen is the listener's address, host:port ("" for none; port 0
	// picks a free one, which beat logs).
	Listen string
}

// Lock configures the lock store.
type Lock struct {
	Backend       string // "memory", "redis" or "postgres"
	TTL           time.Duration
	RenewInterval time.Duration
	// MaxClockSkew is how far ahead of the store's clock a tick may be and
	// still be waited for; a claim further ahead is refused as a wrong clock.
	MaxClockSkew time.Duration
	Redis        Redis
	Postgres     Postgres
}

// Redis configures the redis lock backend: one server (URL), or the
// servers of a Cluster or of a Sentinel deployment (Addrs and Mode).
type Redis struct {
	URL   string   // one server; "" when Addrs is set
	Addrs []string // host:port of the Cluster nodes or of the Sentinels
	// Mode is ModeSingle (URL, or one address), ModeCluster or
	// ModeSentinel.
	Mode           string
	SentinelMaster string // the master's name, for ModeSentinel
	// Username and Password authenticate (ACL); they may also be in URL,
	// but not in both places. BEAT_REDIS_PASSWORD overrides Password.
	Username, Password string
	KeyPrefix          string
	TLS                TLS
	// MinReplicas is how many replicas must acknowledge a claim (WAIT)
	// before its run starts; 0 waits for none.
	MinReplicas int
}

// TLS configures TLS to Redis. Files are PEM; they were read and parsed
// when the file was loaded.
type TLS struct {
	Enabled            bool // a tls mapping was given (rediss:// enables TLS too)
	CAFile             string
	CertFile, KeyFile  string // a client certificate, for servers that ask for one
	ServerName         string // the name the server's certificate must hold; default the host
	InsecureSkipVerify bool
}

// Postgres configures the postgres lock backend.
type Postgres struct {
	URL   string // BEAT_POSTGRES_URL overrides it
	Table string // the base name of beat's tables (DefaultTable)
}

// Task is one scheduled task.
type Task struct {
	Name              string
	Spec              string            // the schedule text as written
	Schedule          schedule.Schedule // parsed, in Location
	Type              string            // the `task:` field
	Args              map[string]any    // never nil
	Location          *time.Location    // the zone ticks are computed in: the spec's CRON_TZ=, else timezone
	Timeout           time.Duration     // 0: none
	ConcurrencyPolicy lock.Policy
	// StartingDeadline is how late a tick may still be claimed, whatever
	// made it late, and never past the next tick; 0 means a minute
	// (scheduler.DefaultStartingDeadline).
	StartingDeadline time.Duration
	Suspend          bool
	Jitter           time.Duration
	Line             int // line of the task in the file, for messages
}

// Defaults for settings the file leaves out.
const (
	DefaultFile            = "schedule.yaml"
	DefaultShutdownTimeout = 25 * time.Second
	DefaultBackend         = "memory"
	DefaultTTL             = 30 * time.Second
	DefaultMaxClockSkew    = scheduler.DefaultMaxClockSkew
	// MinTTL, MaxMaxClockSkew and MinStartingDeadline bound what a file may
	// set; the scheduler's own checks are looser, for tests on fake clocks.
	MinTTL              = time.Second
	MaxMaxClockSkew     = time.Minute
	MinStartingDeadline = time.Second
	DefaultRedisURL     = "redis://127.0.0.1:6379/0"
	DefaultKeyPrefix    = redislock.DefaultKeyPrefix
)

// TaskTypes is what config needs of the task registry (package tasks
// implements it).
type TaskTypes interface {
	Names() []string                                    // registered type names, sorted
	ValidateArgs(typ string, args map[string]any) error // nil when the args are fine; error text says what is wrong
}

// Option changes how a file is loaded.
type Option func(*options)

type options struct {
	types     TaskTypes
	lookupEnv func(string) (string, bool)
}

// WithTaskTypes checks each task's type and args against t. Without it, any
// task type and any args are accepted.
func WithTaskTypes(t TaskTypes) Option { return func(o *options) { o.types = t } }

// WithLookupEnv replaces os.LookupEnv for the environment overrides.
func WithLookupEnv(f func(string) (string, bool)) Option {
	return func(o *options) { o.lookupEnv = f }
}

func newOptions(opts []Option) options {
	o := options{lookupEnv: os.LookupEnv}
	for _, opt := range opts {
		opt(&o)
	}
	if o.lookupEnv == nil {
		o.lookupEnv = os.LookupEnv
	}
	return o
}

// DefaultPath is the file to load when none is given: $BEAT_CONFIG, else
// schedule.yaml. A nil lookupEnv means os.LookupEnv.
func DefaultPath(lookupEnv func(string) (string, bool)) string {
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	if p, ok := lookupEnv("BEAT_CONFIG"); ok && p != "" {
		return p
	}
	return DefaultFile
}

// Load reads and parses the file at path; "" means [DefaultPath].
func Load(path string, opts ...Option) (*Config, error) {
	o := newOptions(opts)
	if path == "" {
		path = DefaultPath(o.lookupEnv)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return parse(path, data, o)
}

// Parse parses and validates data, a schedule.yaml read from file (used in
// messages). When the file is invalid the error is a *ValidationError.
func Parse(file string, data []byte, opts ...Option) (*Config, error) {
	return parse(file, data, newOptions(opts))
}
