// Package pgtest connects tests to the real PostgreSQL server they run
// against.
//
// The database is BEAT_TEST_POSTGRES_URL (default
// postgres://127.0.0.1:5432/test?sslmode=disable). When it does not answer,
// tests skip with a message saying so, unless BEAT_TEST_POSTGRES_REQUIRED=1,
// where they fail.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultURL is the database tests use when BEAT_TEST_POSTGRES_URL is unset.
const DefaultURL = "postgres://127.0.0.1:5432/test?sslmode=disable"

// URL returns the database's URL.
func URL() string {
	if u := os.Getenv("BEAT_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// Config returns a pool configuration for the database, or skips (fails,
// if required) when it does not answer. Its error messages never show the
// URL, which may hold a password.
func Config(t testing.TB) *pgxpool.Config {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(URL())
	if err != nil {
		t.Fatalf("BEAT_TEST_POSTGRES_URL: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg.ConnConfig.Copy())
	if err != nil {
		unavailable(t, err)
	}
	conn.Close(ctx)
	return cfg
}

// Pool returns a pool of connections to the database, closed when t ends,
// or skips (fails, if required) when the database does not answer.
func Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	cfg := Config(t)
	cfg.MaxConns = 16
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		unavailable(t, err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func unavailable(t testing.TB, err error) {
	t.Helper()
	msg := "no PostgreSQL server answers at BEAT_TEST_POSTGRES_URL (default " + DefaultURL + "): " + err.Error() +
		"; start one, or point BEAT_TEST_POSTGRES_URL at one"
	if os.Getenv("BEAT_TEST_POSTGRES_REQUIRED") == "1" {
		t.Fatal(msg + "; BEAT_TEST_POSTGRES_REQUIRED=1 makes this a failure")
	}
	t.Skip(msg)
}

// Table returns a table name no other test uses, a plain identifier, and
// drops, when t ends, every table of the current schema named after it:
// the name itself and the name followed by "_" and anything. Tests that
// share one database touch only their own tables.
func Table(t testing.TB) string {
	t.Helper()
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	name := "beattest_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, URL())
		if err != nil {
			return // no database, so no tables either
		}
		defer conn.Close(ctx)
		rows, err := conn.Query(ctx, `SELECT tablename FROM pg_tables
			WHERE schemaname = current_schema() AND (tablename = $1 OR left(tablename, length($1) + 1) = $1 || '_')`, name)
		if err != nil {
			t.Errorf("pgtest: listing the tables of %s: %v", name, err)
			return
		}
		tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Errorf("pgtest: listing the tables of %s: %v", name, err)
			return
		}
		for _, table := range tables {
			if _, err := conn.Exec(ctx, `DROP TABLE IF EXISTS `+pgx.Identifier{table}.Sanitize()+` CASCADE`); err != nil {
				t.Errorf("pgtest: dropping %s: %v", table, err)
			}
		}
	})
	return name
}
