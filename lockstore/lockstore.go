// Package lockstore opens the lock store a schedule names: in memory, Redis
// as deployed (one server, Cluster or Sentinel, with TLS and ACL users), or
// PostgreSQL. At start it tells a store that is down (not an error: every
// claim retries) from a store that refuses beat (wrong credentials,
// permissions or TLS, or a missing schema): the second is a configuration
// error, named with the setting to fix.
package lockstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/beatlock/beat/config"
	"github.com/beatlock/beat/lock"
	"github.com/beatlock/beat/lock/memlock"
	"github.com/beatlock/beat/lock/pglock"
	"github.com/beatlock/beat/lock/redislock"
)

// ErrConfig marks a store that refuses beat as configured: its error says
// which setting to fix. Retrying does not help.
var ErrConfig = errors.New("the lock store refuses beat as configured")

// Store is an open lock store.
type Store struct {
	lock.Store
	// Inspector reads and repairs its records (beat status).
	Inspector lock.Inspector
	migrate   func(context.Context) error
	close     func() error
}

// Close releases the store's connections.
func (s *Store) Close() error {
	if s.close == nil {
		return nil
	}
	return s.close()
}

// Open makes the store l names. It does not connect: Check does.
func Open(l config.Lock) (*Store, error) {
	switch l.Backend {
	case "memory":
		b := memlock.New()
		return &Store{Store: b, Inspector: b}, nil
	case "redis":
		client, err := redisClient(l)
		if err != nil {
			return nil, err
		}
		// A claim waits for min_replicas at most a tenth of its ttl (the
		// run starts later by as much), and never more than 2s.
		opts := []redislock.Option{redislock.WithKeyPrefix(l.Redis.KeyPrefix),
			redislock.WithMinReplicas(l.Redis.MinReplicas, min(l.TTL/10, 2*time.Second))}
		b := redislock.New(client, opts...)
		if err := b.Err(); err != nil {
			client.Close()
			return nil, err
		}
		return &Store{Store: refusing{b, l}, Inspector: b, close: client.Close}, nil
	case "postgres":
		pc, err := pgxpool.ParseConfig(l.Postgres.URL)
		if err != nil {
			// pgx's parse errors quote the URL, password and all.
			return nil, errors.New("lock.postgres.url: not a valid PostgreSQL connection URL")
		}
		pool, err := pgxpool.NewWithConfig(context.Background(), pc) // connects lazily
		if err != nil {
			return nil, fmt.Errorf("lock.postgres.url: %w", err)
		}
		b := pglock.New(pool, pglock.WithTable(l.Postgres.Table))
		if err := b.Err(); err != nil {
			pool.Close()
			return nil, err
		}
		return &Store{Store: refusing{b, l}, Inspector: b, migrate: b.Migrate, close: func() error { pool.Close(); return nil }}, nil
	}
	return nil, fmt.Errorf("unknown lock.backend %q", l.Backend)
}

// Migrate creates the store's schema where it has one (PostgreSQL's
// tables); it is idempotent, and a no-op for the stores without.
func (s *Store) Migrate(ctx context.Context) error {
	if s.migrate == nil {
		return nil
	}
	return s.migrate(ctx)
}

// Check asks the store once, as every claim will. It returns nil when the
// store answers; an error wrapping ErrConfig when it refuses beat's
// credentials, permissions or TLS, or lacks the tables or columns that
// `beat migrate` creates; another error when it does not answer
// (down, unreachable), which is no reason not to start. log hears what is
// worth knowing but not an error.
func Check(ctx context.Context, s *Store, l config.Lock, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, _, err := s.Epoch(ctx)
	if err == nil {
		if l.Backend == "redis" {
			checkRedisInfo(ctx, s, log)
		}
		return nil
	}
	if errors.Is(err, pglock.ErrNoSchema) || errors.Is(err, lock.ErrRefused) {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return err
}

// refusal names the setting to fix when err says the store refused beat,
// and "" when it says the store could not be reached.
func refusal(err error, l config.Lock) string {
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var verify *tls.CertificateVerificationError
	var record tls.RecordHeaderError
	var alert tls.AlertError
	tlsSettings := "lock.redis.tls"
	if l.Backend == "postgres" {
		tlsSettings = "the sslmode, sslrootcert and host of lock.postgres.url"
	}
	switch {
	// A CertificateVerificationError wraps the HostnameError: the name
	// first.
	case errors.As(err, &hostname):
		if l.Backend == "postgres" {
			return "the server's TLS certificate is for another name: check " + tlsSettings
		}
		return "the server's TLS certificate is for another name: check the host, or set lock.redis.tls.server_name"
	case errors.As(err, &unknownCA), errors.As(err, &verify):
		if l.Backend == "postgres" {
			return "the server's TLS certificate is not trusted: check " + tlsSettings
		}
		return "the server's TLS certificate is not trusted: check lock.redis.tls.ca_file (the CA that signed it)"
	case errors.As(err, &record):
		return "the server does not speak TLS: use redis:// and no lock.redis.tls, or enable TLS on the server"
	case errors.As(err, &alert),
		// The server's TLS alert, as a TCP connection reports it (an
		// unexported type of crypto/tls).
		strings.Contains(err.Error(), "remote error: tls:"):
		return "the server refused the TLS handshake (does it require a client certificate? see lock.redis.tls.cert_file and key_file)"
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "28P01", "28000": // invalid_password, invalid_authorization_specification
			return "the database refused the user or password: check lock.postgres.url (or BEAT_POSTGRES_URL)"
		case "3D000": // invalid_catalog_name
			return "the database named in lock.postgres.url does not exist"
		case "42501": // insufficient_privilege
			return "the database user may not use beat's tables: grant it SELECT, INSERT, UPDATE, DELETE on them (and run `beat migrate` as a user that may create them)"
		case "42P01": // undefined_table
			return "beat's tables are missing, or lock.postgres.table names tables that are not beat's: run `beat migrate`, or choose another lock.postgres.table"
		case "42703": // undefined_column
			return "beat's tables lack columns this version of beat uses (an older beat made them, or lock.postgres.table names tables that are not beat's): run `beat migrate`, or choose another lock.postgres.table"
		}
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "NOAUTH"),
		// Redis refuses a large request from a client that has not
		// authenticated with a protocol error of its own.
		strings.Contains(msg, "Protocol error: unauthenticated"):
		return "the server requires a password: set lock.redis.password (or BEAT_REDIS_PASSWORD), or put it in lock.redis.url"
	case strings.Contains(msg, "WRONGPASS"), strings.Contains(msg, "invalid password"), strings.Contains(msg, "invalid username-password"):
		return "the server refused the username or password: check lock.redis.username and lock.redis.password (or BEAT_REDIS_PASSWORD, or the URL's)"
	case strings.Contains(msg, "NOPERM"):
		return fmt.Sprintf("the Redis user may not run what beat needs on its keys: see the README's ACL line (keys ~%s*)", l.Redis.KeyPrefix)
	case strings.Contains(msg, "MOVED"), strings.Contains(msg, "CROSSSLOT"):
		return "the server is a Redis Cluster node: set lock.redis.mode: cluster and list the nodes in lock.redis.addrs"
	}
	return ""
}

// checkRedisInfo warns when the Redis user may not run INFO, with which
// beat tells a restarted or failed-over server (and its lost records).
func checkRedisInfo(ctx context.Context, s *Store, log *slog.Logger) {
	b, ok := s.Inspector.(*redislock.Backend)
	if !ok {
		return
	}
	if err := b.CheckInfo(ctx); err != nil {
		log.Warn("the Redis user may not run INFO: beat cannot tell that the server restarted or failed over and may have lost its last claim records, so a tick claimed just before could run again; grant the user +info", "err", err)
	}
}

// redisClient makes the client l.Redis describes.
func redisClient(l config.Lock) (redis.UniversalClient, error) {
	r := l.Redis
	tlsConfig, err := redisTLS(r)
	if err != nil {
		return nil, err
	}
	// The scheduler bounds every call with a context (a renewal must give
	// up before the lease's validity runs out); go-redis ignores context
	// deadlines unless told otherwise.
	switch r.Mode {
	case config.ModeCluster:
		// A failover moves the slot without a MOVED to tell: a node that is
		// gone only refuses connections. Read the slot map every second
		// rather than go-redis's default minute, which left beat blind for
		// as long after a master died.
		return redis.NewClusterClient(&redis.ClusterOptions{Addrs: r.Addrs, Username: r.Username, Password: r.Password,
			TLSConfig: tlsConfig, ContextTimeoutEnabled: true, ClusterStateReloadInterval: time.Second}), nil
	case config.ModeSentinel:
		return redis.NewFailoverClient(&redis.FailoverOptions{MasterName: r.SentinelMaster, SentinelAddrs: r.Addrs,
			Username: r.Username, Password: r.Password, TLSConfig: tlsConfig, ContextTimeoutEnabled: true}), nil
	}
	var opts *redis.Options
	if r.URL != "" {
		if opts, err = redis.ParseURL(r.URL); err != nil {
			return nil, fmt.Errorf("lock.redis.url: %w", err)
		}
	} else {
		opts = &redis.Options{Addr: r.Addrs[0]}
	}
	if r.Username != "" {
		opts.Username = r.Username
	}
	if r.Password != "" {
		opts.Password = r.Password
	}
	if tlsConfig != nil {
		if opts.TLSConfig != nil && tlsConfig.ServerName == "" {
			tlsConfig.ServerName = opts.TLSConfig.ServerName
		}
		opts.TLSConfig = tlsConfig
	}
	opts.ContextTimeoutEnabled = true
	return redis.NewClient(opts), nil
}

// redisTLS makes the TLS configuration of lock.redis.tls; nil when TLS is
// not asked for beyond what a rediss:// URL sets.
func redisTLS(r config.Redis) (*tls.Config, error) {
	if !r.TLS.Enabled {
		return nil, nil
	}
	t := r.TLS
	// An empty ServerName is each server's host, as dialled.
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("lock.redis.tls.ca_file: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("lock.redis.tls.ca_file %q holds no PEM certificate", t.CAFile)
		}
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("lock.redis.tls.cert_file and key_file: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// refusing marks the errors of a store that refuses beat as configured
// with lock.ErrRefused, so that the scheduler says so once a minute rather
// than at every claim.
type refusing struct {
	lock.Store
	l config.Lock
}

func (r refusing) mark(err error) error {
	if err == nil {
		return nil
	}
	if setting := refusal(err, r.l); setting != "" {
		return fmt.Errorf("%w: %s: %w", lock.ErrRefused, setting, err)
	}
	return err
}

func (r refusing) Epoch(ctx context.Context) (time.Time, time.Time, error) {
	epoch, now, err := r.Store.Epoch(ctx)
	return epoch, now, r.mark(err)
}

func (r refusing) Claim(ctx context.Context, req lock.ClaimRequest) (lock.ClaimResult, error) {
	res, err := r.Store.Claim(ctx, req)
	return res, r.mark(err)
}

func (r refusing) ClaimBatch(ctx context.Context, reqs []lock.ClaimRequest) ([]lock.ClaimResult, error) {
	res, err := lock.ClaimBatch(ctx, r.Store, reqs)
	return res, r.mark(err)
}

func (r refusing) ReleaseBatch(ctx context.Context, ends []lock.LeaseEnd) ([]bool, error) {
	released, err := lock.ReleaseBatch(ctx, r.Store, ends)
	return released, r.mark(err)
}

func (r refusing) RenewBatch(ctx context.Context, leases []lock.Lease, ttl time.Duration) ([]bool, error) {
	renewed, err := lock.RenewBatch(ctx, r.Store, leases, ttl)
	return renewed, r.mark(err)
}

func (r refusing) RenewLease(ctx context.Context, l lock.Lease, ttl time.Duration) (bool, error) {
	ok, err := r.Store.RenewLease(ctx, l, ttl)
	return ok, r.mark(err)
}

func (r refusing) ReleaseLease(ctx context.Context, l lock.Lease, run *lock.RunRecord) (bool, error) {
	ok, err := r.Store.ReleaseLease(ctx, l, run)
	return ok, r.mark(err)
}

func (r refusing) ReleaseAll(ctx context.Context, owner string) (uint64, error) {
	n, err := r.Store.ReleaseAll(ctx, owner)
	return n, r.mark(err)
}
