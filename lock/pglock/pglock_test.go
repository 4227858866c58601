package pglock_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/beatlock/beat/internal/pgtest"
	"github.com/beatlock/beat/lock"
	"github.com/beatlock/beat/lock/locktest"
	"github.com/beatlock/beat/lock/pglock"
)

var ctx = context.Background()

// newBackend returns a Backend on tables of its own, migrated, whose epoch
// lies three hours back (see locktest.Harness.New).
func newBackend(t testing.TB, pool *pgxpool.Pool) *pglock.Backend {
	t.Helper()
	b := pglock.New(pool, pglock.WithTable(pgtest.Table(t)))
	if err := b.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := pglock.Backdate(ctx, b, 3*time.Hour); err != nil {
		t.Fatal(err)
	}
	return b
}

// unreachable is a store whose pool points at a port nothing listens on.
func unreachable(t *testing.T) lock.Store {
	pool, err := pgxpool.New(ctx, "postgres://beat:s3cret@127.0.0.1:1/test?sslmode=disable&connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pglock.New(pool)
}

func TestConformance(t *testing.T) {
	pool := pgtest.Pool(t)
	locktest.Run(t, locktest.Harness{
		New: func(t *testing.T) (lock.Store, func(time.Duration)) {
			return newBackend(t, pool), time.Sleep
		},
		TTL:         time.Second,
		Unreachable: unreachable,
		// The database's clock cannot be stepped back;
		// TestFutureRecordDisregarded writes a record ahead of it instead.
	})
}

// TestErrorsHideThePassword: a failure to connect names neither the URL
// nor its password.
func TestErrorsHideThePassword(t *testing.T) {
	s := unreachable(t)
	_, err := s.TryAcquire(ctx, "k", "a", time.Second)
	if err == nil || strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "postgres://") {
		t.Fatalf("TryAcquire = %v; want an error without the URL or its password", err)
	}
	if !strings.HasPrefix(err.Error(), `pglock: try-acquire "k": `) {
		t.Errorf("error %q does not say what was being done", err)
	}
}

func TestMigrate(t *testing.T) {
	pool := pgtest.Pool(t)
	t.Run("twice", func(t *testing.T) {
		b := pglock.New(pool, pglock.WithTable(pgtest.Table(t)))
		for range 2 {
			if err := b.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if ok, err := b.TryAcquire(ctx, "k", "a", time.Minute); !ok || err != nil {
			t.Fatalf("TryAcquire after Migrate = %v, %v", ok, err)
		}
		if err := b.Migrate(ctx); err != nil {
			t.Fatalf("Migrate of tables in use: %v", err)
		}
		if owner, ok, err := b.Owner(ctx, "k"); owner != "a" || !ok || err != nil {
			t.Fatalf("Owner after a second Migrate = %q, %v, %v; want the lock kept", owner, ok, err)
		}
	})
	t.Run("concurrently", func(t *testing.T) {
		// Without the advisory lock, concurrent CREATE TABLE IF NOT EXISTS
		// of one table fails now and then; a few rounds make it likely.
		for range 5 {
			name := pgtest.Table(t)
			const replicas = 4
			errs := make(chan error, replicas)
			for range replicas {
				go func() { errs <- pglock.New(pool, pglock.WithTable(name)).Migrate(ctx) }()
			}
			for range replicas {
				if err := <-errs; err != nil {
					t.Fatalf("concurrent Migrate: %v", err)
				}
			}
			if ok, err := pglock.New(pool, pglock.WithTable(name)).TryAcquire(ctx, "k", "a", time.Minute); !ok || err != nil {
				t.Fatalf("TryAcquire = %v, %v", ok, err)
			}
		}
	})
}

// TestNoSchema: every call on a database without the tables says to run
// beat migrate, and none of them creates anything.
func TestNoSchema(t *testing.T) {
	pool := pgtest.Pool(t)
	name := pgtest.Table(t)
	b := pglock.New(pool, pglock.WithTable(name))
	lease := lock.Lease{Task: "t", Key: "t", Owner: "a", Token: 1}
	calls := map[string]func() error{
		"TryAcquire": func() error { _, err := b.TryAcquire(ctx, "k", "a", time.Second); return err },
		"Release":    func() error { _, err := b.Release(ctx, "k", "a"); return err },
		"Renew":      func() error { _, err := b.Renew(ctx, "k", "a", time.Second); return err },
		"IsLocked":   func() error { _, err := b.IsLocked(ctx, "k"); return err },
		"Owner":      func() error { _, _, err := b.Owner(ctx, "k"); return err },
		"ReleaseAll": func() error { _, err := b.ReleaseAll(ctx, "a"); return err },
		"Epoch":      func() error { _, _, err := b.Epoch(ctx); return err },
		"Claim": func() error {
			_, err := b.Claim(ctx, lock.ClaimRequest{Task: "t", Tick: time.Now().Add(-time.Minute), Owner: "a", TTL: time.Second})
			return err
		},
		"RenewLease":   func() error { _, err := b.RenewLease(ctx, lease, time.Second); return err },
		"ReleaseLease": func() error { _, err := b.ReleaseLease(ctx, lease, nil); return err },
		"ReleaseLease with a run": func() error {
			_, err := b.ReleaseLease(ctx, lease, &lock.RunRecord{Result: lock.RunSucceeded})
			return err
		},
		"ReleaseBatch": func() error {
			_, err := b.ReleaseBatch(ctx, []lock.LeaseEnd{{Lease: lease}, {Lease: lease, Run: &lock.RunRecord{Result: lock.RunSucceeded}}})
			return err
		},
		"Tasks":        func() error { _, _, err := b.Tasks(ctx); return err },
		"ForceRelease": func() error { _, err := b.ForceRelease(ctx, "t", time.Second); return err },
		"Forget":       func() error { return b.Forget(ctx, "t", 0) },
	}
	for name, call := range calls {
		err := call()
		if !errors.Is(err, pglock.ErrNoSchema) || !strings.Contains(err.Error(), "beat migrate") {
			t.Errorf("%s = %v; want ErrNoSchema, saying to run beat migrate", name, err)
		}
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename LIKE $1 || '%'`, name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d tables named %s* exist; only Migrate may create them", n, name)
	}
}

// TestOldSchema: tables made by an earlier beat, without a column this one
// uses, fail Epoch (which readiness and the start ask) and claims with
// ErrOldSchema, saying to run beat migrate, and Migrate brings them up to
// date. A column of the tables' first form, dropped by hand, fails them
// alike (Migrate does not make it again).
func TestOldSchema(t *testing.T) {
	pool := pgtest.Pool(t)
	for _, tt := range []struct {
		table, column string
		added         bool // since the tables' first form: Migrate adds it
	}{
		{"_tasks", "rival", true},
		{"_meta", "table_node", true},
		{"_meta", "tasks_node", true},
		{"_tasks", "busy", false},
		{"", "token", false},
	} {
		t.Run(tt.column, func(t *testing.T) {
			name := pgtest.Table(t)
			b := pglock.New(pool, pglock.WithTable(name))
			if err := b.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := pool.Exec(ctx, `ALTER TABLE `+name+tt.table+` DROP COLUMN `+tt.column); err != nil {
				t.Fatal(err)
			}
			_, _, err := b.Epoch(ctx)
			if !errors.Is(err, pglock.ErrOldSchema) || !strings.Contains(err.Error(), "beat migrate") || !strings.Contains(err.Error(), `"`+tt.column+`"`) {
				t.Fatalf("Epoch on old tables = %v; want ErrOldSchema, saying to run beat migrate and naming the column", err)
			}
			if !tt.added {
				return
			}
			req := lock.ClaimRequest{Task: "t", Tick: time.Now(), Owner: "a", TTL: time.Second}
			if _, err := b.Claim(ctx, req); !errors.Is(err, pglock.ErrOldSchema) || !strings.Contains(err.Error(), "beat migrate") {
				t.Fatalf("Claim on old tables = %v; want ErrOldSchema, saying to run beat migrate", err)
			}
			if err := b.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			epoch, _, err := b.Epoch(ctx)
			if err != nil {
				t.Fatalf("Epoch after Migrate: %v", err)
			}
			req.Tick = epoch.Add(time.Millisecond)
			if res, err := b.Claim(ctx, req); err != nil || res.Outcome != lock.Claimed {
				t.Fatalf("Claim after Migrate = %+v, %v; want Claimed", res, err)
			}
		})
	}
}

func TestWithTable(t *testing.T) {
	pool := pgtest.Pool(t)
	for _, name := range []string{
		"x; drop table y", "A-b", "", "Beat", "1abc", "a b", `a"b`, "a.b", "beat_locks\x00", "ünï",
		strings.Repeat("a", 42),
	} {
		b := pglock.New(pool, pglock.WithTable(name))
		if err := b.Err(); !errors.Is(err, pglock.ErrConfig) || !strings.Contains(err.Error(), "table name") {
			t.Errorf("WithTable(%q).Err() = %v; want ErrConfig naming the table name", name, err)
		}
		if ok, err := b.TryAcquire(ctx, "k", "a", time.Second); ok || !errors.Is(err, pglock.ErrConfig) {
			t.Errorf("WithTable(%q): TryAcquire = %v, %v; want ErrConfig", name, ok, err)
		}
		if err := b.Migrate(ctx); !errors.Is(err, pglock.ErrConfig) {
			t.Errorf("WithTable(%q): Migrate = %v; want ErrConfig", name, err)
		}
		if _, err := b.Claim(ctx, lock.ClaimRequest{Task: "t", Tick: time.Now(), Owner: "a", TTL: time.Second}); !errors.Is(err, pglock.ErrConfig) {
			t.Errorf("WithTable(%q): Claim = %v; want ErrConfig", name, err)
		}
		if _, _, err := b.Tasks(ctx); !errors.Is(err, pglock.ErrConfig) {
			t.Errorf("WithTable(%q): Tasks = %v; want ErrConfig", name, err)
		}
	}
	for _, name := range []string{"beat_locks", "_x", "a1", strings.Repeat("a", 41)} {
		if err := pglock.New(pool, pglock.WithTable(name)).Err(); err != nil {
			t.Errorf("WithTable(%q).Err() = %v; want nil", name, err)
		}
	}
	if err := pglock.New(pool).Err(); err != nil {
		t.Errorf("default table: %v", err)
	}
}

// TestClockIsTheDatabases: the store's clock in every answer is the
// database's clock_timestamp() when it answered, in UTC.
func TestClockIsTheDatabases(t *testing.T) {
	pool := pgtest.Pool(t)
	b := newBackend(t, pool)
	dbNow := func() time.Time {
		t.Helper()
		var now time.Time
		if err := pool.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&now); err != nil {
			t.Fatal(err)
		}
		return now
	}
	within := func(what string, got, before, after time.Time) {
		t.Helper()
		if got.Before(before) || got.After(after) || got.Location() != time.UTC {
			t.Errorf("%s = %v; want the database's clock, in UTC, in [%v, %v]", what, got, before, after)
		}
	}
	before := dbNow()
	res, err := b.Claim(ctx, lock.ClaimRequest{Task: "t", Tick: before.Add(-time.Second), Owner: "a", TTL: time.Minute, MaxSkew: time.Second})
	after := dbNow()
	if err != nil || res.Outcome != lock.Claimed {
		t.Fatalf("Claim = %+v, %v", res, err)
	}
	within("ClaimResult.StoreTime", res.StoreTime, before, after)

	before = dbNow()
	_, now, err := b.Epoch(ctx)
	after = dbNow()
	if err != nil {
		t.Fatal(err)
	}
	within("Epoch's clock", now, before, after)

	before = dbNow()
	_, now, err = b.Tasks(ctx)
	after = dbNow()
	if err != nil {
		t.Fatal(err)
	}
	within("Tasks' clock", now, before, after)

	// A tick just ahead of the database's clock is not yet claimable,
	// whatever the client's clock says.
	ahead := dbNow().Add(500 * time.Millisecond)
	res, err = b.Claim(ctx, lock.ClaimRequest{Task: "t", Tick: ahead, Owner: "a", TTL: time.Minute, MaxSkew: time.Second})
	if err != nil || res.Outcome != lock.NotYet || !res.StoreTime.Before(ahead) {
		t.Fatalf("Claim of a tick ahead = %+v, %v; want not-yet", res, err)
	}

	// The expiry is the database's clock plus the ttl.
	locks, _, _ := pglock.Tables(b)
	before = dbNow()
	if ok, err := b.TryAcquire(ctx, "k", "a", time.Hour); !ok || err != nil {
		t.Fatal(ok, err)
	}
	after = dbNow()
	var expires time.Time
	if err := pool.QueryRow(ctx, `SELECT expires FROM `+locks+` WHERE key = $1`, []byte("k")).Scan(&expires); err != nil {
		t.Fatal(err)
	}
	within("the lock's expiry", expires.UTC(), before.Add(time.Hour), after.Add(time.Hour))
}

// TestPrivileges: a role that may read beat's tables but not write them as
// claims do fails Epoch (which readiness and the start ask) with
// insufficient_privilege, as its claims would, instead of answering while
// every claim fails; with the privileges the README lists, it claims and
// releases.
func TestPrivileges(t *testing.T) {
	pool := pgtest.Pool(t)
	name := pgtest.Table(t)
	owner := pglock.New(pool, pglock.WithTable(name))
	if err := owner.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	// The epoch begins, as where other replicas run already: only a write
	// can tell a role that may not write.
	if _, _, err := owner.Epoch(ctx); err != nil {
		t.Fatal(err)
	}
	role := name + "_role"
	if _, err := pool.Exec(ctx, `CREATE ROLE `+role+` LOGIN`); err != nil {
		t.Skipf("this test needs a database user that may create roles (CREATEROLE): %v", err)
	}
	t.Cleanup(func() {
		for _, stmt := range []string{`DROP OWNED BY ` + role, `DROP ROLE ` + role} {
			if _, err := pool.Exec(context.Background(), stmt); err != nil {
				t.Errorf("%s: %v", stmt, err)
			}
		}
	})
	cfg := pgtest.Config(t)
	cfg.ConnConfig.User = role
	rolePool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rolePool.Close)
	b := pglock.New(rolePool, pglock.WithTable(name))
	locks, tasks, meta := pglock.Tables(b)
	all := locks + ", " + tasks + ", " + meta
	// grants are GRANT statements without their "TO role".
	for _, tt := range []struct {
		name   string
		grants []string
		ok     bool
	}{
		{"nothing", nil, false},
		{"SELECT only", []string{`GRANT SELECT ON ` + all}, false},
		{"no DELETE on the locks table", []string{`GRANT SELECT, INSERT, UPDATE ON ` + all}, false},
		{"no UPDATE on the meta table", []string{`GRANT SELECT, INSERT, UPDATE, DELETE ON ` + locks + `, ` + tasks, `GRANT SELECT, INSERT ON ` + meta}, false},
		{"UPDATE of one column of the tasks table", []string{`GRANT SELECT, INSERT, UPDATE, DELETE ON ` + locks + `, ` + meta,
			`GRANT SELECT, INSERT, DELETE ON ` + tasks, `GRANT UPDATE (task) ON ` + tasks}, false},
		{"what the README lists", []string{`GRANT SELECT, INSERT, UPDATE, DELETE ON ` + all}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			stmts := []string{`REVOKE ALL ON ` + all + ` FROM ` + role}
			for _, g := range tt.grants {
				stmts = append(stmts, g+` TO `+role)
			}
			if _, err := pool.Exec(ctx, strings.Join(stmts, "; ")); err != nil {
				t.Fatal(err)
			}
			_, tick, err := b.Epoch(ctx)
			if !tt.ok {
				var pgErr *pgconn.PgError
				if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
					t.Fatalf("Epoch = %v; want insufficient_privilege (42501)", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Epoch: %v", err)
			}
			res, err := b.Claim(ctx, lock.ClaimRequest{Task: "t", Tick: tick, Owner: "a", TTL: time.Minute, MaxSkew: time.Second})
			if err != nil || res.Outcome != lock.Claimed {
				t.Fatalf("Claim = %+v, %v; want claimed", res, err)
			}
			if ok, err := b.ReleaseLease(ctx, res.Lease, &lock.RunRecord{Tick: tick, Result: lock.RunSucceeded}); err != nil || !ok {
				t.Fatalf("ReleaseLease = %v, %v; want released", ok, err)
			}
		})
	}
}
