package pglock

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/beatlock/beat/lock"
)

// The epoch, and how a loss of records is noticed.
//
// PostgreSQL is durable: a restart keeps every committed claim, so it does
// not begin a new epoch. What can lose the last records is a database that
// is not the one that wrote them: a restored backup, or a promoted replica
// that lagged. The meta row records, with the epoch, what identifies the
// database's history, and a claim that finds it changed begins a new epoch,
// as redislock does when another Redis process (run_id) serves it:
//
//   - system_id: pg_control_system().system_identifier, set by initdb; a
//     dump restored into another cluster has another.
//   - timeline: the timeline of the WAL being written, the first 8 hex
//     digits of pg_walfile_name(pg_current_wal_insert_lsn()). A promoted
//     replica, and a point-in-time recovery, switch to a new timeline the
//     moment they open for writes. (pg_control_checkpoint().timeline_id
//     tells the same only after the next checkpoint, which after a
//     promotion may be minutes later.)
//   - table_oid: the meta table's own oid. A dump restored into the same
//     cluster (pg_dump, pg_restore) recreates the table with another oid.
//   - table_node: the meta table's file node. A data-only restore
//     (TRUNCATE, then the dump's rows) keeps the table but not its file
//     node.
//   - tasks_node: the tasks table's file node. The claim records are
//     there: a tasks table dropped and made again by beat migrate, or
//     truncated, would otherwise read as tasks never claimed, and their
//     last ticks would run again.
//
// The first two are functions that PostgreSQL grants to PUBLIC by default,
// but a managed service may revoke them: a Backend tries each once, and
// where it may not run one (insufficient_privilege, or no such function)
// leaves that part empty. An empty part, recorded or current, matches any
// other, so that replicas that run as different roles never flap between
// epochs; a part recorded empty is filled in once a caller can read it.
// The tables' oids and file nodes need no privilege; a file node recorded
// 0, by a beat from before it was recorded, is filled in alike. What none
// of them sees is a physical copy of the data directory started without
// recovery to a new timeline (a file system snapshot put back in place).
//
// VACUUM FULL, CLUSTER or pg_repack of the meta or tasks table give it a
// new file node too, and so a new epoch: the ticks just before it are
// skipped (reported store-lost), never run twice. Plain VACUUM, as
// autovacuum does it, keeps the file node. The locks table is not
// watched: it holds no tick's record, only who holds a lock now.
//
// A meta row that is missing (a new store, or a truncated table) begins an
// epoch too. Either way the claim that began it, or any claim from a
// caller that knew an earlier epoch (ClaimRequest.KnownEpoch), sets
// guard_until to the new epoch plus its ttl: until then Forbid claims are
// Busy and Guarded, since runs from before the loss may still hold locks
// that the store no longer knows of.

const (
	systemIDExpr = `(SELECT system_identifier::text FROM pg_control_system())`
	timelineExpr = `substr(pg_walfile_name(pg_current_wal_insert_lsn()), 1, 8)`
)

// identity holds the SQL expressions that read the database's identity,
// each `”` where this Backend's role may not run it.
type identity struct{ exprs atomic.Pointer[identityExprs] }

type identityExprs struct{ system, timeline string }

// reset makes the next call try the functions again.
func (id *identity) reset() { id.exprs.Store(nil) }

func (b *Backend) identityExprs(ctx context.Context) (*identityExprs, error) {
	if e := b.ident.exprs.Load(); e != nil {
		return e, nil
	}
	e := &identityExprs{}
	var err error
	if e.system, err = b.probe(ctx, systemIDExpr); err != nil {
		return nil, err
	}
	if e.timeline, err = b.probe(ctx, timelineExpr); err != nil {
		return nil, err
	}
	b.ident.exprs.Store(e)
	return e, nil
}

// probe returns expr if this role may evaluate it, `”` if it may not.
func (b *Backend) probe(ctx context.Context, expr string) (string, error) {
	var s string
	err := b.pool.QueryRow(ctx, `SELECT `+expr).Scan(&s)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "42501", // insufficient_privilege
			"42883", // undefined_function: not PostgreSQL itself
			"0A000": // feature_not_supported
			return `''`, nil
		}
	}
	if err != nil {
		return "", err
	}
	return expr, nil
}

// querier is a pool, a transaction or a connection.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// metaRow is the meta row, the database's clock and its identity now.
type metaRow struct {
	epoch                  time.Time
	system, timeline       string
	sameTables             bool
	nodesUnset             bool
	guard                  pgtype.Timestamptz
	now                    time.Time
	curSystem, curTimeline string
}

func (b *Backend) metaSelect(e *identityExprs) string {
	// A row restored into the table (TRUNCATE, then COPY) finds it with
	// another file node: a TRUNCATE gives it a new one. A node recorded 0
	// (by a beat from before it was recorded) matches any.
	return `SELECT m.epoch, m.system_id, m.timeline,
		m.table_oid = m.tableoid AND (m.table_node = 0 OR m.table_node = pg_relation_filenode(m.tableoid))
			AND (m.tasks_node = 0 OR m.tasks_node = pg_relation_filenode('` + b.tasks + `'::regclass)),
		m.table_node = 0 OR m.tasks_node = 0,
		m.guard_until, clock_timestamp(), ` +
		e.system + `, ` + e.timeline + ` FROM ` + b.meta + ` m`
}

// scanMeta reads a metaSelect; found is false when the row is missing.
func scanMeta(row pgx.Row) (m metaRow, found bool, err error) {
	err = row.Scan(&m.epoch, &m.system, &m.timeline, &m.sameTables, &m.nodesUnset, &m.guard, &m.now, &m.curSystem, &m.curTimeline)
	if errors.Is(err, pgx.ErrNoRows) {
		return m, false, nil
	}
	return m, err == nil, err
}

// changed reports whether the database is not the one that began the epoch.
func (m metaRow) changed() bool {
	differs := func(recorded, cur string) bool { return recorded != "" && cur != "" && recorded != cur }
	return !m.sameTables || differs(m.system, m.curSystem) || differs(m.timeline, m.curTimeline)
}

// incomplete reports whether a part recorded empty can be read now.
func (m metaRow) incomplete() bool {
	return m.nodesUnset || (m.system == "" && m.curSystem != "") || (m.timeline == "" && m.curTimeline != "")
}

// epochState is the store's epoch as a call found it, its clock, and
// whether Forbid claims are guarded.
type epochState struct {
	epoch, now time.Time
	guarded    bool
}

// settle makes sure there is an epoch: it begins one where the meta row is
// missing and, for a claim (req not nil), where the database is not the one
// that began the epoch; and for a claim it sets and reads the guard. m and
// found are the meta row as read by q (metaSelect), in the claim's
// transaction if there is one.
func (b *Backend) settle(ctx context.Context, q querier, e *identityExprs, m metaRow, found bool, req *lock.ClaimRequest) (epochState, error) {
	began := false
	for attempt := 0; ; attempt++ {
		if attempt == 5 {
			return epochState{}, errors.New("the epoch changed under every attempt to read it")
		}
		var err error
		switch {
		case !found:
			_, err = q.Exec(ctx, `INSERT INTO `+b.meta+` (id, epoch, system_id, timeline, table_oid, table_node, tasks_node)
				VALUES (true, date_trunc('milliseconds', clock_timestamp()), `+e.system+`, `+e.timeline+`, $1::text::regclass,
					pg_relation_filenode($1::text::regclass), pg_relation_filenode($2::text::regclass))
				ON CONFLICT (id) DO NOTHING`, b.meta, b.tasks)
		case req != nil && m.changed():
			// Compare and set: of concurrent claims that notice, one
			// begins the epoch and the others read it.
			var tag pgconn.CommandTag
			tag, err = q.Exec(ctx, `UPDATE `+b.meta+` SET epoch = date_trunc('milliseconds', clock_timestamp()),
				system_id = `+e.system+`, timeline = `+e.timeline+`, table_oid = $2::text::regclass,
				table_node = pg_relation_filenode($2::text::regclass), tasks_node = pg_relation_filenode($3::text::regclass),
				guard_until = NULL
				WHERE epoch = $1`, m.epoch, b.meta, b.tasks)
			began = began || tag.RowsAffected() == 1
		case req != nil && m.incomplete():
			_, err = q.Exec(ctx, `UPDATE `+b.meta+` SET
				system_id = CASE WHEN system_id = '' THEN `+e.system+` ELSE system_id END,
				timeline = CASE WHEN timeline = '' THEN `+e.timeline+` ELSE timeline END,
				table_node = CASE WHEN table_node = 0 THEN pg_relation_filenode($2::text::regclass) ELSE table_node END,
				tasks_node = CASE WHEN tasks_node = 0 THEN pg_relation_filenode($3::text::regclass) ELSE tasks_node END
				WHERE epoch = $1`, m.epoch, b.meta, b.tasks)
		default:
			return b.guard(ctx, q, m, began, req)
		}
		if err != nil {
			return epochState{}, err
		}
		if m, found, err = scanMeta(q.QueryRow(ctx, b.metaSelect(e))); err != nil {
			return epochState{}, err
		}
	}
}

// guard sets the guard when the claim req follows a loss, and reads it.
func (b *Backend) guard(ctx context.Context, q querier, m metaRow, began bool, req *lock.ClaimRequest) (epochState, error) {
	st := epochState{epoch: m.epoch.UTC(), now: m.now.UTC()}
	if req == nil {
		return st, nil
	}
	known := req.KnownEpoch
	lost := began || (!known.IsZero() && known.UnixMilli() < m.epoch.UnixMilli())
	until := m.epoch.Add(req.TTL)
	if lost && m.now.Before(until) && (!m.guard.Valid || m.guard.Time.Before(until)) {
		if _, err := q.Exec(ctx, `UPDATE `+b.meta+` SET guard_until = $2
			WHERE epoch = $1 AND (guard_until IS NULL OR guard_until < $2)`, m.epoch, until); err != nil {
			return epochState{}, err
		}
		m.guard = pgtype.Timestamptz{Time: until, Valid: true}
	}
	st.guarded = m.guard.Valid && m.now.Before(m.guard.Time)
	return st, nil
}

func (b *Backend) Epoch(ctx context.Context) (time.Time, time.Time, error) {
	if b.err != nil {
		return time.Time{}, time.Time{}, b.err
	}
	// Tables that claims would find missing or too old, or that this role
	// may not write, fail here too, so that such a replica is not ready,
	// and does not start.
	if _, err := b.pool.Exec(ctx, b.checkSQL()); err != nil {
		return time.Time{}, time.Time{}, b.fail("epoch", b.name, err)
	}
	st, err := b.epochNow(ctx)
	if err != nil {
		return time.Time{}, time.Time{}, b.fail("epoch", b.name, err)
	}
	return st.epoch, st.now, nil
}

// epochNow reads the epoch, beginning one if there is none. Like redislock's
// Epoch, it leaves noticing a changed database to claims, which know
// whether their caller saw the epoch before.
func (b *Backend) epochNow(ctx context.Context) (epochState, error) {
	e, err := b.identityExprs(ctx)
	if err != nil {
		return epochState{}, err
	}
	m, found, err := scanMeta(b.pool.QueryRow(ctx, b.metaSelect(e)))
	if err != nil {
		return epochState{}, err
	}
	if found {
		return epochState{epoch: m.epoch.UTC(), now: m.now.UTC()}, nil
	}
	return b.settle(ctx, b.pool, e, m, found, nil)
}
