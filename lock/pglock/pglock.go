// Package pglock is a lock.Store on PostgreSQL (12 or later) through
// jackc/pgx v5.
//
// A lock is a row of a table, keyed by the lock's key, that holds its owner,
// the fencing token of the claim that set it and its expiry, a timestamptz
// judged by the database's clock_timestamp(), never the client's clock. A
// row whose expiry has passed is absent to every call, and deleted lazily.
// Every operation is one statement, or one short READ COMMITTED transaction
// of pipelined statements (a claim, or a batch of any number of claims: two
// round trips; a release with a run, or a batch of any number of releases
// or renewals: one) that waits on nothing but the row locks it takes; all
// of them are correct under concurrent callers. See schema.go for the
// tables, claim.go for the claim and the order of the row locks, release.go
// for the release, renew.go for the renewal, and epoch.go for how a
// database that lost records is noticed.
//
// The tables are created by Migrate (`beat migrate`), never by another
// call: on a database without them, every call returns an error wrapping
// ErrNoSchema.
//
// Keys, owners, task names and sessions are stored as bytea, so that they
// may be any Go string (PostgreSQL's text holds no NUL byte). A key, owner
// or task name that does not compress below about 2,700 bytes exceeds what
// a btree index entry holds (a third of a page), and the database refuses
// it with an error.
package pglock

import (
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/beatlock/beat/lock"
)

var (
	_ lock.Store         = (*Backend)(nil)
	_ lock.Inspector     = (*Backend)(nil)
	_ lock.BatchClaimer  = (*Backend)(nil)
	_ lock.BatchReleaser = (*Backend)(nil)
	_ lock.BatchRenewer  = (*Backend)(nil)
)

// DefaultTable is the name of the lock table, and the start of the names of
// the others, when WithTable is not given.
const DefaultTable = "beat_locks"

var (
	// ErrConfig marks a Backend whose options are invalid.
	ErrConfig = errors.New("pglock: configuration")
	// ErrNoSchema: the database has no lock tables (SQLSTATE 42P01).
	ErrNoSchema = errors.New("pglock: the lock tables do not exist in this database; run `beat migrate` to create them")
	// ErrOldSchema: the lock tables lack a column this version of beat
	// uses (SQLSTATE 42703): they were made by an earlier one.
	ErrOldSchema = errors.New("pglock: the lock tables lack columns this version of beat needs; run `beat migrate` to add them")
)

// tableName is what WithTable accepts: a plain lower-case SQL identifier,
// short enough that the derived names fit PostgreSQL's 63 bytes.
var tableName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,40}$`)

// Backend is a lock.Store on PostgreSQL, safe for concurrent use.
type Backend struct {
	pool *pgxpool.Pool
	name string
	err  error // configuration error, returned by every call

	// Quoted table and index names.
	locks, tasks, meta, ownerIdx, expiresIdx string

	ident identity
}

// Option configures a Backend.
type Option func(*Backend)

// WithTable names the tables: name for the locks, name_tasks and name_meta
// for the claim records and the epoch (default "beat_locks"). Deployments
// that share a database use different names. name must match
// ^[a-z_][a-z0-9_]{0,40}$; any other gives every call an error wrapping
// ErrConfig.
func WithTable(name string) Option {
	return func(b *Backend) { b.name = name }
}

// New returns a Backend on pool, which stays the caller's to close.
func New(pool *pgxpool.Pool, opts ...Option) *Backend {
	b := &Backend{pool: pool, name: DefaultTable}
	for _, o := range opts {
		o(b)
	}
	if !tableName.MatchString(b.name) {
		b.err = fmt.Errorf("%w: table name %q: use lower-case letters, digits and _, starting with a letter or _, at most 41 characters", ErrConfig, b.name)
		return b
	}
	if pool == nil {
		b.err = fmt.Errorf("%w: no connection pool", ErrConfig)
		return b
	}
	quote := func(s string) string { return pgx.Identifier{s}.Sanitize() }
	b.locks = quote(b.name)
	b.tasks = quote(b.name + "_tasks")
	b.meta = quote(b.name + "_meta")
	b.ownerIdx = quote(b.name + "_owner")
	b.expiresIdx = quote(b.name + "_expires")
	return b
}

// Err returns the Backend's configuration error, if any, so that a program
// can refuse to start instead of failing at the first tick.
func (b *Backend) Err() error { return b.err }

// fail wraps err, from the operation op on subject: a missing table becomes
// ErrNoSchema, a missing column ErrOldSchema.
func (b *Backend) fail(op, subject string, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		// The PostgreSQL error stays in the chain, for a caller that
		// judges errors by their SQLSTATE.
		case "42P01": // undefined_table
			return fmt.Errorf("pglock: %s %q: %w (%w)", op, subject, ErrNoSchema, err)
		case "42703": // undefined_column
			return fmt.Errorf("pglock: %s %q: %w (%w)", op, subject, ErrOldSchema, err)
		case "42501": // insufficient_privilege: perhaps a function the identity reads
			b.ident.reset()
		}
	}
	return fmt.Errorf("pglock: %s %q: %w", op, subject, err)
}

// micros is d in microseconds, the precision of a timestamptz.
func micros(d time.Duration) int64 { return d.Microseconds() }

// checkToken refuses a token this store cannot have issued: its tokens are
// bigints.
func checkToken(op string, l lock.Lease) error {
	if l.Token > math.MaxInt64 {
		return fmt.Errorf("pglock: %s %q: token %d was not issued by this store, whose tokens stay below 2^63", op, l.Key, l.Token)
	}
	return nil
}

// ms is t truncated to the millisecond, in UTC, the precision at which
// every store compares ticks.
func ms(t time.Time) time.Time { return time.UnixMilli(t.UnixMilli()).UTC() }

func (b *Backend) TryAcquire(ctx context.Context, key, owner string, ttl time.Duration) (bool, error) {
	if err := lock.CheckHold(key, owner, ttl); err != nil {
		return false, err
	}
	if b.err != nil {
		return false, b.err
	}
	// A free or expired key becomes a new lock (token 0: no claim's lease);
	// the same owner's live lock keeps its token, so that its lease lives on.
	// Another owner's live lock, as the statement's snapshot shows it, is
	// refused before the upsert, which would lock its row (and, to lock a
	// row, a transaction writes and commits) for nothing.
	rows, err := b.pool.Query(ctx, `INSERT INTO `+b.locks+` AS l (key, owner, token, expires)
		SELECT $1::bytea, $2::bytea, 0, clock_timestamp() + $3::bigint * interval '1 microsecond'
		WHERE NOT EXISTS (SELECT 1 FROM `+b.locks+` WHERE key = $1::bytea AND owner <> $2::bytea AND expires > clock_timestamp())
		ON CONFLICT (key) DO UPDATE SET owner = EXCLUDED.owner, expires = EXCLUDED.expires,
			token = CASE WHEN l.expires > clock_timestamp() THEN l.token ELSE 0 END
		WHERE l.owner = EXCLUDED.owner OR l.expires <= clock_timestamp()
		RETURNING true`, []byte(key), []byte(owner), micros(ttl))
	ok, err := one(rows, err)
	if err != nil {
		return false, b.fail("try-acquire", key, err)
	}
	return ok, nil
}

func (b *Backend) Release(ctx context.Context, key, owner string) (bool, error) {
	if err := lock.CheckRelease(key, owner); err != nil {
		return false, err
	}
	if b.err != nil {
		return false, b.err
	}
	// The owner's expired row goes too: it is absent already.
	rows, err := b.pool.Query(ctx, `WITH n AS MATERIALIZED (SELECT clock_timestamp() AS now)
		DELETE FROM `+b.locks+` l USING n WHERE l.key = $1::bytea AND l.owner = $2::bytea
		RETURNING l.expires > n.now`, []byte(key), []byte(owner))
	ok, err := anyTrue(rows, err)
	if err != nil {
		return false, b.fail("release", key, err)
	}
	return ok, nil
}

func (b *Backend) Renew(ctx context.Context, key, owner string, ttl time.Duration) (bool, error) {
	if err := lock.CheckHold(key, owner, ttl); err != nil {
		return false, err
	}
	if b.err != nil {
		return false, b.err
	}
	tag, err := b.pool.Exec(ctx, `WITH n AS MATERIALIZED (SELECT clock_timestamp() AS now)
		UPDATE `+b.locks+` l SET expires = n.now + $3::bigint * interval '1 microsecond' FROM n
		WHERE l.key = $1::bytea AND l.owner = $2::bytea AND l.expires > n.now`,
		[]byte(key), []byte(owner), micros(ttl))
	if err != nil {
		return false, b.fail("renew", key, err)
	}
	return tag.RowsAffected() == 1, nil
}

func (b *Backend) IsLocked(ctx context.Context, key string) (bool, error) {
	_, ok, err := b.Owner(ctx, key)
	return ok, err
}

func (b *Backend) Owner(ctx context.Context, key string) (string, bool, error) {
	if err := lock.CheckKey(key); err != nil {
		return "", false, err
	}
	if b.err != nil {
		return "", false, b.err
	}
	var owner []byte
	err := b.pool.QueryRow(ctx, `SELECT owner FROM `+b.locks+` WHERE key = $1::bytea AND expires > clock_timestamp()`,
		[]byte(key)).Scan(&owner)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return "", false, nil
	case err != nil:
		return "", false, b.fail("owner", key, err)
	}
	return string(owner), true, nil
}

// ReleaseAll finds the owner's rows through the index on owner, and deletes
// its expired ones too. It locks them in key order before it deletes any,
// the order of every call that holds several lock rows (see claim.go).
func (b *Backend) ReleaseAll(ctx context.Context, owner string) (uint64, error) {
	if err := lock.CheckOwner(owner); err != nil {
		return 0, err
	}
	if b.err != nil {
		return 0, b.err
	}
	var n int64
	err := b.pool.QueryRow(ctx, b.releaseAllSQL(), []byte(owner)).Scan(&n)
	if err != nil {
		return 0, b.fail("release-all", owner, err)
	}
	return uint64(n), nil
}

func (b *Backend) releaseAllSQL() string {
	return `WITH n AS MATERIALIZED (SELECT clock_timestamp() AS now),
		d AS (DELETE FROM ` + b.locks + ` l USING n
			WHERE l.key = ANY (ARRAY(SELECT key FROM ` + b.locks + ` WHERE owner = $1::bytea ORDER BY key FOR UPDATE))
				AND l.owner = $1::bytea
			RETURNING l.expires > n.now AS live)
		SELECT count(*) FILTER (WHERE live) FROM d`
}

// one reads a query that returns at most one row of one boolean: false
// when it returns none.
func one(rows pgx.Rows, err error) (bool, error) {
	if err != nil {
		return false, err
	}
	v, err := pgx.CollectExactlyOneRow(rows, pgx.RowTo[bool])
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return v, err
}

// anyTrue reads a query that returns rows of one boolean: whether any is
// true.
func anyTrue(rows pgx.Rows, err error) (bool, error) {
	if err != nil {
		return false, err
	}
	vs, err := pgx.CollectRows(rows, pgx.RowTo[bool])
	if err != nil {
		return false, err
	}
	for _, v := range vs {
		if v {
			return true, nil
		}
	}
	return false, nil
}
