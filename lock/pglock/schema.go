package pglock

import (
	"context"
	"fmt"
	"hash/fnv"
	"strings"

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
//	                  history and the tables when it began (see epoch.go);
//	                  guard_until, when Forbid claims are Busy after a loss.
func (b *Backend) tables() []table {
	return []table{
		{name: b.locks, writes: []string{"INSERT", "UPDATE", "DELETE"}, columns: []column{
			{name: "key", def: "bytea PRIMARY KEY"},
			{name: "owner", def: "bytea NOT NULL"},
			{name: "token", def: "bigint NOT NULL DEFAULT 0"},
			{name: "expires", def: "timestamptz NOT NULL"},
		}, indexes: []string{
			`CREATE INDEX IF NOT EXISTS ` + b.ownerIdx + ` ON ` + b.locks + ` (owner)`,
			`CREATE INDEX IF NOT EXISTS ` + b.expiresIdx + ` ON ` + b.locks + ` (expires)`,
		}},
		{name: b.tasks, writes: []string{"INSERT", "UPDATE"}, columns: []column{
			{name: "task", def: "bytea PRIMARY KEY"},
			{name: "last_claimed", def: "timestamptz"},
			{name: "prev", def: "timestamptz"},
			{name: "busy", def: "timestamptz"},
			{name: "fence", def: "bigint NOT NULL DEFAULT 0"},
			{name: "session", def: "bytea"},
			{name: "lock_key", def: "bytea"},
			{name: "run_tick", def: "timestamptz"},
			{name: "run_token", def: "bigint"},
			{name: "run_owner", def: "bytea"},
			{name: "run_result", def: "text"},
			{name: "run_ms", def: "bigint"},
			{name: "run_error", def: "bytea"},
			{name: "run_ended", def: "timestamptz"},
			{name: "rival", def: "timestamptz", added: true},
		}},
		{name: b.meta, writes: []string{"INSERT", "UPDATE"}, columns: []column{
			{name: "id", def: "boolean PRIMARY KEY DEFAULT true CHECK (id)"},
			{name: "epoch", def: "timestamptz NOT NULL"},
			{name: "system_id", def: "text NOT NULL DEFAULT ''"},
			{name: "timeline", def: "text NOT NULL DEFAULT ''"},
			{name: "table_oid", def: "oid NOT NULL"},
			{name: "table_node", def: "oid NOT NULL DEFAULT 0", added: true},
			{name: "guard_until", def: "timestamptz"},
			{name: "tasks_node", def: "oid NOT NULL DEFAULT 0", added: true},
		}},
	}
}

// table is one of beat's tables, as this version of beat uses it.
type table struct {
	name    string
	columns []column
	// writes are the privileges, besides SELECT, that beat's calls use.
	writes []string
	// indexes are the CREATE INDEX IF NOT EXISTS statements of the table.
	indexes []string
}

// column is a column of a table; added is set for those added after the
// table's first form, which Migrate adds to older tables. Adding one must
// not rewrite the table (a constant default, no type change): a rewritten
// meta or tasks table has a new file node, and so begins a new epoch.
type column struct {
	name, def string
	added     bool
}

func (b *Backend) schema() []string {
	var creates, alters []string
	for _, t := range b.tables() {
		var defs []string
		for _, c := range t.columns {
			defs = append(defs, c.name+" "+c.def)
			if c.added {
				alters = append(alters, `ALTER TABLE `+t.name+` ADD COLUMN IF NOT EXISTS `+c.name+` `+c.def)
			}
		}
		creates = append(creates, `CREATE TABLE IF NOT EXISTS `+t.name+` (`+strings.Join(defs, ", ")+`)`)
		creates = append(creates, t.indexes...)
	}
	return append(creates, alters...)
}

// checkSQL is one statement that fails as beat's calls would on tables they
// cannot use, while it reads and writes no row: SQLSTATE 42P01 (ErrNoSchema)
// where a table is missing, 42703 (ErrOldSchema) where a column is, and
// 42501 where this role lacks a privilege the calls use. PostgreSQL checks
// the privileges of a statement before running it, so the writes that match
// no row (WHERE false) are refused all the same.
func (b *Backend) checkSQL() string {
	var writes, reads []string
	for i, t := range b.tables() {
		var cols, sets []string
		for _, c := range t.columns {
			cols = append(cols, c.name)
			sets = append(sets, c.name+" = "+c.name)
		}
		reads = append(reads, fmt.Sprintf(`(SELECT %s FROM %s LIMIT 0) r%d`, strings.Join(cols, ", "), t.name, i))
		for _, w := range t.writes {
			var stmt string
			switch w {
			case "INSERT":
				stmt = `INSERT INTO ` + t.name + ` SELECT * FROM ` + t.name + ` WHERE false`
			case "UPDATE":
				// Every column: a grant of UPDATE on some columns only
				// would pass a check of one.
				stmt = `UPDATE ` + t.name + ` SET ` + strings.Join(sets, ", ") + ` WHERE false`
			case "DELETE":
				stmt = `DELETE FROM ` + t.name + ` WHERE false`
			}
			writes = append(writes, fmt.Sprintf(`w%d AS (%s RETURNING 1)`, len(writes), stmt))
		}
	}
	return `WITH ` + strings.Join(writes, ", ") + ` SELECT 1 FROM ` + strings.Join(reads, ", ")
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
