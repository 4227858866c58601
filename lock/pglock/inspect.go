package pglock

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/beatlock/beat/lock"
)

// lastLockJoin matches, for a task's row t, the live lock of its last
// claim: the lock on the claim's key that still carries the claim's token.
const lastLockJoin = `t.last_claimed IS NOT NULL AND l.key = t.lock_key AND l.token = t.fence`

// Tasks is one statement: every listed task's row with the live lock of its
// last claim, sorted by name (bytea compares bytewise, as Go strings do).
func (b *Backend) Tasks(ctx context.Context) ([]lock.TaskRecord, time.Time, error) {
	if b.err != nil {
		return nil, time.Time{}, b.err
	}
	rows, err := b.pool.Query(ctx, `WITH n AS MATERIALIZED (SELECT clock_timestamp() AS now)
		SELECT n.now, t.task, t.last_claimed, t.fence, t.busy,
			t.run_tick, t.run_token, t.run_owner, t.run_result, t.run_ms, t.run_error, t.run_ended,
			l.owner, l.expires
		FROM n
		LEFT JOIN `+b.tasks+` t ON t.last_claimed IS NOT NULL OR t.busy IS NOT NULL OR t.run_token IS NOT NULL
		LEFT JOIN `+b.locks+` l ON `+lastLockJoin+` AND l.expires > n.now
		ORDER BY t.task`)
	if err != nil {
		return nil, time.Time{}, b.fail("tasks", b.name, err)
	}
	defer rows.Close()
	var (
		recs []lock.TaskRecord
		now  time.Time
	)
	for rows.Next() {
		var (
			task, runOwner, runErr, holder []byte
			last, busy, runTick, runEnded  pgtype.Timestamptz
			expires                        pgtype.Timestamptz
			fence                          pgtype.Int8
			runToken, runMS                pgtype.Int8
			runResult                      pgtype.Text
		)
		if err := rows.Scan(&now, &task, &last, &fence, &busy, &runTick, &runToken, &runOwner, &runResult,
			&runMS, &runErr, &runEnded, &holder, &expires); err != nil {
			return nil, time.Time{}, b.fail("tasks", b.name, err)
		}
		if task == nil {
			continue // no task: the row of the clock alone
		}
		if err := checkRecord(fence, runToken, runMS); err != nil {
			// A row written by hand must not hide the others, nor keep an
			// operator from repairing it.
			recs = append(recs, lock.TaskRecord{Task: string(task), Err: fmt.Errorf("table %s, task %q: %w", b.tasks, task, err)})
			continue
		}
		r := lock.TaskRecord{Task: string(task), LastClaimed: utc(last), LastSkipped: utc(busy)}
		if last.Valid {
			r.Token = uint64(fence.Int64)
		}
		if expires.Valid {
			r.Holder, r.LockLeft = string(holder), expires.Time.Sub(now)
		}
		if runToken.Valid {
			r.LastRun = &lock.RunRecord{
				Tick:     utc(runTick),
				Token:    uint64(runToken.Int64),
				Owner:    string(runOwner),
				Result:   runResult.String,
				Duration: time.Duration(runMS.Int64) * time.Millisecond,
				Error:    string(runErr),
				Ended:    utc(runEnded),
			}
		}
		recs = append(recs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, time.Time{}, b.fail("tasks", b.name, err)
	}
	return recs, now.UTC(), nil
}

// checkRecord refuses the values of a task's row that no call writes.
func checkRecord(fence, runToken, runMS pgtype.Int8) error {
	switch {
	case fence.Int64 < 0:
		return fmt.Errorf("fence %d is negative", fence.Int64)
	case runToken.Valid && runToken.Int64 <= 0:
		return fmt.Errorf("run_token %d is not a token", runToken.Int64)
	case runMS.Int64 < 0:
		return fmt.Errorf("run_ms %d is negative", runMS.Int64)
	}
	return nil
}

// utc is t in UTC, the zero time for NULL.
func utc(t pgtype.Timestamptz) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return t.Time.UTC()
}

// ForceRelease locks the task's row first, as a claim does, then passes the
// live lock of its last claim to lock.RevokedOwner for hold, keeping its
// token, so that it still reads as that claim's lock (Forbid claims stay
// Busy, Forget refuses) while its holder's renewals fail: one transaction,
// one round trip.
func (b *Backend) ForceRelease(ctx context.Context, task string, hold time.Duration) (bool, error) {
	if err := lock.CheckRevoke(task, hold); err != nil {
		return false, err
	}
	if b.err != nil {
		return false, b.err
	}
	var ok bool
	err := b.inTx(ctx, func(batch *pgx.Batch) {
		batch.Queue(`SELECT 1 FROM `+b.tasks+` WHERE task = $1::bytea FOR UPDATE`, []byte(task))
		batch.Queue(`WITH n AS MATERIALIZED (SELECT clock_timestamp() AS now)
			UPDATE `+b.locks+` l SET owner = $2::bytea, expires = n.now + $3::bigint * interval '1 microsecond'
			FROM `+b.tasks+` t, n
			WHERE t.task = $1::bytea AND `+lastLockJoin+` AND l.expires > n.now
			RETURNING true`, []byte(task), []byte(lock.RevokedOwner), micros(hold))
	}, func(br pgx.BatchResults) (err error) {
		if _, err = br.Exec(); err != nil {
			return err
		}
		ok, err = anyTrue(br.Query())
		return err
	})
	if err != nil {
		return false, b.fail("force-release", task, err)
	}
	return ok, nil
}

// Forget locks the task's row, reads the live lock of its last claim and
// the age of its last decided tick, and clears every column but the fence
// unless that lock is live or that tick recent: one transaction, one round
// trip.
func (b *Backend) Forget(ctx context.Context, task string, minAge time.Duration) error {
	if err := lock.CheckTask(task); err != nil {
		return err
	}
	if b.err != nil {
		return b.err
	}
	const age = `clock_timestamp() - greatest(t.last_claimed, t.busy)` // NULL when neither
	var (
		found, forgot bool
		ageSeconds    *float64
		holder        []byte
		left          float64
	)
	err := b.inTx(ctx, func(batch *pgx.Batch) {
		batch.Queue(`SELECT extract(epoch FROM `+age+`)::float8 FROM `+b.tasks+` t WHERE t.task = $1::bytea FOR UPDATE`, []byte(task))
		batch.Queue(`SELECT l.owner, extract(epoch FROM l.expires - clock_timestamp())::float8
			FROM `+b.tasks+` t JOIN `+b.locks+` l ON `+lastLockJoin+`
			WHERE t.task = $1::bytea AND l.expires > clock_timestamp()`, []byte(task))
		batch.Queue(`UPDATE `+b.tasks+` t SET last_claimed = NULL, prev = NULL, busy = NULL, session = NULL, lock_key = NULL,
				run_tick = NULL, run_token = NULL, run_owner = NULL, run_result = NULL, run_ms = NULL, run_error = NULL, run_ended = NULL,
				rival = NULL
			WHERE t.task = $1::bytea
				AND NOT EXISTS (SELECT 1 FROM `+b.locks+` l WHERE `+lastLockJoin+` AND l.expires > clock_timestamp())
				AND (`+age+` IS NULL OR `+age+` >= $2::bigint * interval '1 microsecond')
			RETURNING true`, []byte(task), micros(max(minAge, 0)))
	}, func(br pgx.BatchResults) (err error) {
		rows, err := br.Query()
		if err != nil {
			return err
		}
		ages, err := pgx.CollectRows(rows, pgx.RowTo[*float64])
		if err != nil {
			return err
		}
		if found = len(ages) == 1; found {
			ageSeconds = ages[0]
		}
		if err = br.QueryRow().Scan(&holder, &left); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		forgot, err = one(br.Query())
		return err
	})
	if err != nil {
		return b.fail("forget", task, err)
	}
	switch {
	case !found || forgot:
		return nil
	case holder != nil || ageSeconds == nil:
		return fmt.Errorf("pglock: forget %q: %w (by %q, for %v more)", task, lock.ErrHeld, holder, seconds(left))
	}
	return fmt.Errorf("pglock: forget %q: %w: %v ago, less than %v", task, lock.ErrRecent, seconds(*ageSeconds).Round(time.Second), minAge)
}

// seconds is s seconds, to the millisecond.
func seconds(s float64) time.Duration {
	return time.Duration(s * float64(time.Second)).Round(time.Millisecond)
}
