package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/redis/go-redis/v9"
	"go.yaml.in/yaml/v3"

	"github.com/beatlock/beat/lock"
	"github.com/beatlock/beat/lock/pglock"
	"github.com/beatlock/beat/lock/redislock"
)

var (
	lockFields     = []string{"backend", "ttl", "renew_interval", "max_clock_skew", "redis", "postgres"}
	redisFields    = []string{"url", "addrs", "mode", "sentinel_master", "username", "password", "key_prefix", "tls", "min_replicas"}
	tlsFields      = []string{"ca_file", "cert_file", "key_file", "server_name", "insecure_skip_verify"}
	postgresFields = []string{"url", "table"}
)

// Redis deployment modes (Redis.Mode).
const (
	ModeSingle   = "single"
	ModeCluster  = "cluster"
	ModeSentinel = "sentinel"
)

// Backends are the lock stores a file may name.
var Backends = []string{"memory", "redis", "postgres"}

// DefaultTable is the default name of beat's tables in PostgreSQL.
const DefaultTable = pglock.DefaultTable

// tableName is what lock.postgres.table may be: a plain lower-case SQL
// identifier, so it can never carry SQL.
var tableName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,40}$`)

func (d *decoder) lock(e entry) Lock {
	l := Lock{
		Backend:      DefaultBackend,
		TTL:          DefaultTTL,
		MaxClockSkew: DefaultMaxClockSkew,
	}
	f := d.fields(e, "lock", lockFields)
	backendAt := origin{line: f["backend"].line()}
	if s, ok := d.str(f["backend"], "lock.backend"); ok && f["backend"].present() {
		l.Backend = s
	}
	if s, ok := d.fromEnv("BEAT_LOCK_BACKEND"); ok {
		l.Backend, backendAt = s, origin{env: "BEAT_LOCK_BACKEND"}
	}
	switch l.Backend {
	case "memory":
	case "redis", "postgres":
		// Checked below, whichever is used: a file checked for one backend
		// stays valid when the environment picks the other.
	default:
		d.problemAt(backendAt, "unknown lock backend %q: use memory, redis or postgres", l.Backend)
	}
	l.Redis = d.redis(f["redis"], l.Backend == "redis")
	l.Postgres = d.postgres(f["postgres"], l.Backend == "postgres", backendAt)

	ttlOK := true
	if v, ok := d.duration(f["ttl"], "lock.ttl"); ok {
		l.TTL = v
		if v < MinTTL {
			d.problem(f["ttl"].line(), "lock.ttl must be at least %v, got %v: a run renews its lease and stops trusting it at 9/10 of the ttl, which needs round trips to the store to fit; the default is %v", MinTTL, v, DefaultTTL)
			ttlOK = false
		}
	}
	l.RenewInterval = l.TTL / 3
	if v, ok := d.duration(f["renew_interval"], "lock.renew_interval"); ok {
		l.RenewInterval = v
		switch {
		case v <= 0:
			d.problem(f["renew_interval"].line(), "lock.renew_interval must be positive, got %v", v)
		case ttlOK && lock.CheckRenewal(l.TTL, v) != nil:
			d.problem(f["renew_interval"].line(), "lock.renew_interval (%v) must be below 9/10 of lock.ttl (%v), so below %v: a run stops trusting its lock at 9/10 of the ttl, and the renewal must come before; the default is ttl/3", v, l.TTL, lock.TrustedFor(l.TTL))
		}
	}
	if v, ok := d.duration(f["max_clock_skew"], "lock.max_clock_skew"); ok {
		l.MaxClockSkew = v
		if v <= 0 || v > MaxMaxClockSkew {
			d.problem(f["max_clock_skew"].line(), "lock.max_clock_skew must be above 0 and at most %v, got %v: it is how far a replica's clock may run ahead of the store's before its claims are refused; machines kept in time by NTP differ by milliseconds; the default is %v", MaxMaxClockSkew, v, DefaultMaxClockSkew)
		}
	}
	return l
}

// redis reads lock.redis; used says whether the backend is redis (the
// deployment's shape is then required to be whole).
func (d *decoder) redis(e entry, used bool) Redis {
	r := Redis{KeyPrefix: DefaultKeyPrefix}
	f := d.fields(e, "lock.redis", redisFields)
	urlAt := origin{line: f["url"].line()}
	if s, ok := d.str(f["url"], "lock.redis.url"); ok && f["url"].present() {
		r.URL = s
	}
	if s, ok := d.fromEnv("BEAT_REDIS_URL"); ok {
		r.URL, urlAt = s, origin{env: "BEAT_REDIS_URL"}
	}
	r.Addrs = d.addrs(f["addrs"])
	r.Mode, _ = d.str(f["mode"], "lock.redis.mode")
	r.SentinelMaster, _ = d.str(f["sentinel_master"], "lock.redis.sentinel_master")
	r.Username, _ = d.str(f["username"], "lock.redis.username")
	r.Password, _ = d.str(f["password"], "lock.redis.password")
	passwordAt := origin{line: f["password"].line()}
	if s, ok := d.fromEnv("BEAT_REDIS_PASSWORD"); ok {
		r.Password, passwordAt = s, origin{env: "BEAT_REDIS_PASSWORD"}
	}
	if s, ok := d.str(f["key_prefix"], "lock.redis.key_prefix"); ok && f["key_prefix"].present() {
		if s == "" {
			d.problem(f["key_prefix"].line(), "lock.redis.key_prefix must not be empty; the default is %q", DefaultKeyPrefix)
		}
		r.KeyPrefix = s
	}
	if n, ok := d.integer(f["min_replicas"], "lock.redis.min_replicas"); ok {
		if n < 0 || n > 16 {
			d.problem(f["min_replicas"].line(), "lock.redis.min_replicas must be from 0 to 16, got %d: it is how many replicas must hold a claim before its run starts", n)
		} else {
			r.MinReplicas = n
		}
	}
	r.TLS = d.tls(f["tls"])

	switch {
	case r.URL != "" && len(r.Addrs) > 0:
		d.problemAt(urlAt, "lock.redis.url and lock.redis.addrs are both set (addrs at line %d): give url for one server, or addrs with mode for a Cluster or Sentinel", f["addrs"].line())
	case r.URL == "" && len(r.Addrs) == 0:
		r.URL = DefaultRedisURL
	}
	modeAt := f["mode"].lineOr(e.line())
	switch {
	case r.URL != "":
		if err := checkRedisURL(r.URL); err != nil {
			d.problemAt(urlAt, "lock.redis.url %v", err)
		} else if u, _ := url.Parse(r.URL); u.User != nil {
			if _, set := u.User.Password(); set && r.Password != "" {
				d.problemAt(passwordAt, "lock.redis.password is set, and lock.redis.url holds a password too: keep one")
			}
			if u.Scheme == "redis" && r.TLS.Enabled {
				d.problemAt(urlAt, "lock.redis.tls is set but lock.redis.url is redis://: write rediss:// to connect with TLS")
			}
		} else if u.Scheme == "redis" && r.TLS.Enabled {
			d.problemAt(urlAt, "lock.redis.tls is set but lock.redis.url is redis://: write rediss:// to connect with TLS")
		}
		if r.Mode != "" && r.Mode != ModeSingle {
			d.problem(modeAt, "lock.redis.mode %q needs lock.redis.addrs, the addresses of the %s nodes, instead of lock.redis.url", r.Mode, r.Mode)
		}
		r.Mode = ModeSingle
	case r.Mode == "" && len(r.Addrs) == 1:
		r.Mode = ModeSingle
	case r.Mode == "":
		d.problem(modeAt, "lock.redis.addrs lists %d servers: set lock.redis.mode to cluster or sentinel", len(r.Addrs))
	case r.Mode != ModeSingle && r.Mode != ModeCluster && r.Mode != ModeSentinel:
		d.problem(modeAt, "unknown lock.redis.mode %q: use single, cluster or sentinel", r.Mode)
	case r.Mode == ModeSingle && len(r.Addrs) > 1:
		d.problem(modeAt, "lock.redis.mode single takes one address, got %d in lock.redis.addrs", len(r.Addrs))
	}
	if r.Mode == ModeSentinel && r.SentinelMaster == "" {
		d.problem(modeAt, "lock.redis.mode sentinel needs lock.redis.sentinel_master, the name the Sentinels know the master by (e.g. mymaster)")
	}
	if r.Mode != ModeSentinel && r.SentinelMaster != "" {
		d.problem(f["sentinel_master"].line(), "lock.redis.sentinel_master is set, but lock.redis.mode is %q: set mode: sentinel, or remove it", r.Mode)
	}
	if r.Mode == ModeCluster && !redislock.HasHashTag(r.KeyPrefix) {
		d.problem(f["key_prefix"].lineOr(modeAt), "lock.redis.key_prefix %q has no {hash tag}: on a Redis Cluster every key of a deployment must be in one slot, like the default %q", r.KeyPrefix, DefaultKeyPrefix)
	}
	if u, err := url.Parse(r.URL); used && err == nil && u.Query().Get("skip_verify") == "true" {
		r.TLS.InsecureSkipVerify = true // as go-redis reads the URL
	}
	if used && r.TLS.InsecureSkipVerify {
		d.warnings = append(d.warnings, Problem{File: d.file, Line: f["tls"].line(), Msg: "lock.redis.tls.insecure_skip_verify accepts any server certificate: anyone on the path can pose as Redis and hand out locks; give ca_file instead"})
	}
	return r
}

func (d *decoder) addrs(e entry) []string {
	n := resolve(e.value)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.problem(e.line(), "lock.redis.addrs: expected a list of host:port, got %s", describe(n))
		return nil
	}
	var out []string
	for i, c := range n.Content {
		c = resolve(c)
		if c.Kind != yaml.ScalarNode {
			d.problem(c.Line, "lock.redis.addrs[%d]: expected host:port, got %s", i, describe(c))
			continue
		}
		if _, port, err := net.SplitHostPort(c.Value); err != nil || port == "" {
			d.problem(c.Line, "lock.redis.addrs[%d] %q is not host:port, like \"redis-0.redis:6379\"", i, c.Value)
			continue
		} else if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
			d.problem(c.Line, "lock.redis.addrs[%d] %q: port %q is not a number from 1 to 65535", i, c.Value, port)
			continue
		}
		out = append(out, c.Value)
	}
	return out
}

// tls reads and checks lock.redis.tls: files that exist and parse.
func (d *decoder) tls(e entry) TLS {
	var t TLS
	f := d.fields(e, "lock.redis.tls", tlsFields)
	t.Enabled = e.present()
	t.CAFile, _ = d.str(f["ca_file"], "lock.redis.tls.ca_file")
	t.CertFile, _ = d.str(f["cert_file"], "lock.redis.tls.cert_file")
	t.KeyFile, _ = d.str(f["key_file"], "lock.redis.tls.key_file")
	t.ServerName, _ = d.str(f["server_name"], "lock.redis.tls.server_name")
	t.InsecureSkipVerify, _ = d.boolean(f["insecure_skip_verify"], "lock.redis.tls.insecure_skip_verify")
	if t.CAFile != "" {
		if pem, err := os.ReadFile(t.CAFile); err != nil {
			d.problem(f["ca_file"].line(), "lock.redis.tls.ca_file: %v", fileError(err))
		} else if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			d.problem(f["ca_file"].line(), "lock.redis.tls.ca_file %q holds no PEM certificate", t.CAFile)
		}
	}
	switch {
	case (t.CertFile == "") != (t.KeyFile == ""):
		d.problem(e.line(), "lock.redis.tls: give cert_file and key_file together (a client certificate and its key), or neither")
	case t.CertFile != "":
		if _, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile); err != nil {
			d.problem(f["cert_file"].line(), "lock.redis.tls.cert_file and key_file: %v", fileError(err))
		}
	}
	return t
}

// fileError drops the *PathError's operation from a file error.
func fileError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	return err
}

func (d *decoder) postgres(e entry, used bool, backendAt origin) Postgres {
	p := Postgres{Table: DefaultTable}
	f := d.fields(e, "lock.postgres", postgresFields)
	urlAt := origin{line: f["url"].line()}
	p.URL, _ = d.str(f["url"], "lock.postgres.url")
	if s, ok := d.fromEnv("BEAT_POSTGRES_URL"); ok {
		p.URL, urlAt = s, origin{env: "BEAT_POSTGRES_URL"}
	}
	if s, ok := d.str(f["table"], "lock.postgres.table"); ok && f["table"].present() {
		if !tableName.MatchString(s) {
			d.problem(f["table"].line(), "lock.postgres.table %q: use lower-case letters, digits and _, starting with a letter or _, at most 41 characters", s)
		}
		p.Table = s
	}
	switch {
	case p.URL == "" && used:
		if urlAt.line == 0 && urlAt.env == "" {
			urlAt = backendAt
		}
		d.problemAt(urlAt, "lock.backend postgres needs lock.postgres.url (or BEAT_POSTGRES_URL), like \"postgres://beat@db:5432/beat\"")
	case p.URL != "":
		if err := checkPostgresURL(p.URL); err != nil {
			d.problemAt(urlAt, "lock.postgres.url %v", err)
		}
	}
	return p
}

// checkPostgresURL checks the URL's form; the driver has the last word.
// Its messages never echo the URL, which may hold a password.
func checkPostgresURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New(`is not a URL; write it like "postgres://beat@db:5432/beat"`)
	}
	switch u.Scheme {
	case "postgres", "postgresql":
	case "":
		return errors.New(`has no scheme; write it like "postgres://beat@db:5432/beat"`)
	default:
		return fmt.Errorf("has unsupported scheme %q: use postgres://", u.Scheme)
	}
	if _, err := pgconn.ParseConfig(s); err != nil {
		// pgx's message quotes the URL, password and all: say what it
		// checks instead.
		return errors.New("is invalid: check its port, its query parameters (sslmode, connect_timeout, ...) and their values")
	}
	return nil
}

// checkRedisURL checks the URL as the redis client will read it. Its
// messages never echo the URL, which may hold a password.
func checkRedisURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New(`is not a URL; write it like "redis://127.0.0.1:6379/0"`)
	}
	switch u.Scheme {
	case "redis", "rediss", "unix":
	case "":
		return errors.New(`has no scheme; write it like "redis://127.0.0.1:6379/0"`)
	default:
		return fmt.Errorf("has unsupported scheme %q: use redis://, rediss:// or unix://", u.Scheme)
	}
	if _, err := redis.ParseURL(s); err != nil {
		// go-redis's messages name the part that is wrong, not the URL.
		return fmt.Errorf("is invalid: %s", strings.TrimPrefix(err.Error(), "redis: "))
	}
	return nil
}

// integer reads a whole-number setting. ok is false when it is absent,
// null or not an integer (which is reported).
func (d *decoder) integer(e entry, name string) (int, bool) {
	n := resolve(e.value)
	if isNull(n) {
		return 0, false
	}
	var v int
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&v) != nil {
		d.problem(e.line(), "%s: expected a whole number, got %s", name, describe(n))
		return 0, false
	}
	return v, true
}
