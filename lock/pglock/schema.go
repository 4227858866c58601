package pglock

import (
	"context"
	"fmt"
	"hash/fnv"

	"github.com/jackc/pgx/v5"
)

// The tables, for the default name "beat_locks". Strings a caller gives
// (keys, owners, task names, sessions, run errors) are bytea; ticks are
// timestamptz at millisecond precision; tokens are bigint.
//
//	beat_locks        one row per lock: key, owner, token (of the claim that
//	                  set it; 0 for TryAcquire), expires. A row whose expiry
//	                  has passed is absent; it is deleted when its key is
//	                  written again, by its owner's Release or ReleaseAll, or
//	                  by a claim's sweep (a few at a time, by the index on
//	                  expires). The index on owner serves ReleaseAll.
//	beat_locks_tasks  one row per task: the claim record (last_claimed, its
//	                  prev, busy, session, lock_key, rival: the last claimed
//	                  tick another session was refused), fence (the last token
//	                  issued; Forget keeps it), and the last run (run_*).
//	beat_locks_meta   one row: the epoch, and what identified the database's
//	                  history when it began (see claim.go); guard_until,
//	                  when Forbid claims are Busy after a loss.
func (b *Backend) schema() []string {
	return append([]string{
		`CREATE TABLE IF NOT EXISTS ` + b.locks + ` (
			key     bytea PRIMARY KEY,
			owner   bytea NOT NULL,
			token   bigint NOT NULL DEFAULT 0,
			expires timestamptz NOT NULL
		)`,
		`CREATE INDEX IF NOT EXISTS ` + b.ownerIdx + ` ON ` + b.locks + ` (owner)`,
		`CREATE INDEX IF NOT EXISTS ` + b.expiresIdx + ` ON ` + b.locks + ` (expires)`,
		`CREATE TABLE IF NOT EXISTS ` + b.tasks + ` (
			task         bytea PRIMARY KEY,
			last_claimed timestamptz,
			prev         timestamptz,
			busy         timestamptz,
			fence        bigint NOT NULL DEFAULT 0,
			session      bytea,
			lock_key     bytea,
			run_tick     timestamptz,
			run_token    bigint,
			run_owner    bytea,
			run_result   text,
			run_ms       bigint,
			run_error    bytea,
			run_ended    timestamptz,
			rival        timestamptz
		)`,
		`CREATE TABLE IF NOT EXISTS ` + b.meta + ` (
			id          boolean PRIMARY KEY DEFAULT true CHECK (id),
			epoch       timestamptz NOT NULL,
			system_id   text NOT NULL DEFAULT '',
			timeline    text NOT NULL DEFAULT '',
			table_oid   oid NOT NULL,
			table_node  oid NOT NULL DEFAULT 0,
			guard_until timestamptz
		)`,
	}, b.addColumns()...)
}

// column is a column added to a table after the table's first form.
type column struct{ table, name, def string }

// added lists the columns added after the tables' first form (they are in
// the CREATE TABLEs too). Migrate adds them to older tables, and Epoch
// checks that they are there.
func (b *Backend) added() []column {
	return []column{
		{b.meta, "table_node", "oid NOT NULL DEFAULT 0"},
		{b.tasks, "rival", "timestamptz"},
	}
}

func (b *Backend) addColumns() []string {
	var stmts []string
	for _, c := range b.added() {
		stmts = append(stmts, `ALTER TABLE `+c.table+` ADD COLUMN IF NOT EXISTS `+c.name+` `+c.def)
	}
	return stmts
}

// shapeProbe names every added column without reading a row: it fails with
// SQLSTATE 42703 (ErrOldSchema) on tables that lack one, and 42P01
// (ErrNoSchema) where a table is missing.
func (b *Backend) shapeProbe() string {
	q := `SELECT 1`
	for i, c := range b.added() {
		sep := ` FROM `
		if i > 0 {
			sep = `, `
		}
		q += sep + fmt.Sprintf(`(SELECT %s FROM %s LIMIT 0) c%d`, c.name, c.table, i)
	}
	return q
}

// Migrate creates the tables and indexes if they do not exist. It is
// idempotent, and safe when several replicas run it at once: a transaction
// takes an advisory lock named after the tables first. No other call
// creates anything.
func (b *Backend) Migrate(ctx context.Context) error {
	if b.err != nil {
		return b.err
	}
	err := pgx.BeginTxFunc(ctx, b.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
		// Two concurrent CREATE ... IF NOT EXISTS of one table can both
		// find it missing, and one then fails on the catalog's unique index.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrateLockID(b.name)); err != nil {
			return err
		}
		for _, stmt := range b.schema() {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("pglock: migrate %q: %w", b.name, err)
	}
	return nil
}

// migrateLockID is the advisory lock that Migrate of the tables name takes.
func migrateLockID(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("beat/pglock migrate " + name))
	return int64(h.Sum64())
}
