package pglock

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/beatlock/beat/lock"
)

// The claim is one READ COMMITTED transaction, the algorithm of redislock's
// claim script with the task's row lock in place of Lua's atomicity:
//
//  1. One round trip, pipelined: BEGIN; SELECT the task's row FOR UPDATE
//     (claims of one task queue here, one at a time); SELECT the meta row
//     with clock_timestamp() and the database's identity. The meta row is
//     read after the task's row is locked, so a claim sees every epoch
//     and guard that an earlier claim of its task wrote. A task without a
//     row gets one (INSERT ... ON CONFLICT DO NOTHING, then the two SELECTs
//     again): claims lock their task before they decide, even the first.
//  2. Rarely: begin an epoch or set the guard (see epoch.go).
//  3. Decide in Go, as memlock does: the clock checks, the epoch, the
//     task's record.
//  4. One round trip, pipelined, when the claim writes: upsert the lock row
//     with the new token (under Forbid only over an expired row, so that a
//     lock taken meanwhile by TryAcquire makes the tick Busy), update the
//     task's record if the lock row now carries the token, else record the
//     tick as busy; delete a few expired lock rows (SKIP LOCKED: never
//     waits); COMMIT. An outcome that writes nothing sends COMMIT alone.
//
// A claim is thus two round trips, three for a task's first claim; no
// statement in it waits on anything but the row locks described here.
// Locks are taken in one order everywhere, the task's row before a lock
// row (ReleaseLease with a run does the same), so claims never deadlock
// with each other or with lease calls; the meta row is written only by a
// transaction that holds nothing else or only its task's row.

// taskState is a task's claim record; ticks in Unix ms, 0 for none.
type taskState struct {
	last, prev, busy int64
	fence            int64
	session          []byte
}

func (b *Backend) stateSelect() string {
	return `SELECT last_claimed, prev, busy, fence, session FROM ` + b.tasks + ` WHERE task = $1::bytea FOR UPDATE`
}

func scanState(row pgx.Row) (st taskState, found bool, err error) {
	var last, prev, busy pgtype.Timestamptz
	err = row.Scan(&last, &prev, &busy, &st.fence, &st.session)
	if errors.Is(err, pgx.ErrNoRows) {
		return st, false, nil
	}
	st.last, st.prev, st.busy = unixMS(last), unixMS(prev), unixMS(busy)
	return st, err == nil, err
}

// unixMS is t in Unix milliseconds, 0 for NULL.
func unixMS(t pgtype.Timestamptz) int64 {
	if !t.Valid {
		return 0
	}
	return t.Time.UnixMilli()
}

// msTime is the inverse of time.Time.UnixMilli, in UTC; 0 is the zero time.
func msTime(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// msParam is a tick for a timestamptz parameter, NULL for 0.
func msParam(ms int64) any {
	if ms == 0 {
		return nil
	}
	return time.UnixMilli(ms).UTC()
}

func (b *Backend) Claim(ctx context.Context, req lock.ClaimRequest) (lock.ClaimResult, error) {
	if err := lock.CheckClaim(req); err != nil {
		return lock.ClaimResult{}, err
	}
	if b.err != nil {
		return lock.ClaimResult{}, b.err
	}
	res, err := b.claim(ctx, req)
	if err != nil {
		return lock.ClaimResult{}, b.fail("claim", req.Task, fmt.Errorf("tick %s: %w", req.Tick.UTC().Format(time.RFC3339Nano), err))
	}
	return res, nil
}

func (b *Backend) claim(ctx context.Context, req lock.ClaimRequest) (res lock.ClaimResult, err error) {
	e, err := b.identityExprs(ctx)
	if err != nil {
		return res, err
	}
	task := []byte(req.Task)
	key := lock.LeaseKey(req.Task, req.Tick, req.Policy)
	c, err := b.acquire(ctx)
	if err != nil {
		return res, err
	}
	defer c.release()

	// 1. Lock the task's row, read the meta row.
	var (
		st               taskState
		m                metaRow
		found, metaFound bool
		first            = true
	)
	for {
		batch := &pgx.Batch{}
		if first {
			batch.Queue(beginRC)
		} else {
			batch.Queue(`INSERT INTO `+b.tasks+` (task) VALUES ($1::bytea) ON CONFLICT (task) DO NOTHING`, task)
		}
		batch.Queue(b.stateSelect(), task)
		batch.Queue(b.metaSelect(e))
		err := pipeline(ctx, c, batch, func(br pgx.BatchResults) (err error) {
			if _, err = br.Exec(); err != nil {
				return err
			}
			if st, found, err = scanState(br.QueryRow()); err != nil {
				return err
			}
			m, metaFound, err = scanMeta(br.QueryRow())
			return err
		})
		if err != nil {
			return res, err
		}
		if found {
			break
		}
		if !first {
			return res, errors.New("the task's row vanished as it was made")
		}
		first = false
	}

	// 2. The epoch and the guard.
	ep, err := b.settle(ctx, c, e, m, metaFound, &req)
	if err != nil {
		return res, err
	}

	// 3. Decide.
	now := ep.now
	res = lock.ClaimResult{StoreTime: now, Epoch: ep.epoch}
	tick := req.Tick.UnixMilli()
	horizon := now.Add(req.MaxSkew).UnixMilli()
	done := func(o lock.Outcome) (lock.ClaimResult, error) {
		res.Outcome = o
		tag, err := c.Exec(ctx, `COMMIT`)
		if err == nil && tag.String() != "COMMIT" {
			err = errors.New("the transaction was rolled back")
		}
		return res, err
	}
	switch {
	case tick > horizon:
		return done(lock.ClockAhead)
	case tick > now.UnixMilli():
		return done(lock.NotYet)
	case tick < ep.epoch.UnixMilli():
		return done(lock.StoreLost)
	}

	// A record written while the clock read differently (see lock.Claimer).
	last, busy, future := lock.TrustRecord(st.last, st.prev, st.busy, horizon)
	if future != 0 {
		res.FutureRecord = msTime(future)
	}
	decided := max(last, busy)
	res.Previous = msTime(decided)
	if last != 0 && tick <= last {
		if res.FutureRecord.IsZero() && tick == st.last && req.Session != "" && req.Session == string(st.session) {
			// The same process asks again: its first answer was lost.
			tag, err := c.Exec(ctx, `WITH n AS MATERIALIZED (SELECT clock_timestamp() AS now)
				UPDATE `+b.locks+` l SET expires = n.now + $4::bigint * interval '1 microsecond' FROM n
				WHERE l.key = $1::bytea AND l.owner = $2::bytea AND l.token = $3 AND l.expires > n.now`,
				[]byte(key), []byte(req.Owner), st.fence, micros(req.TTL))
			if err != nil {
				return res, err
			}
			if tag.RowsAffected() == 1 {
				res.Previous = msTime(st.prev)
				res.Lease = lock.Lease{Task: req.Task, Key: key, Owner: req.Owner, Token: uint64(st.fence)}
				return done(lock.Claimed)
			}
		}
		if res.FutureRecord.IsZero() && tick < last && tick > st.prev {
			return done(lock.TooLate) // passed over: claims only move forward
		}
		return done(lock.AlreadyClaimed)
	}
	if busy != 0 && tick <= busy {
		return done(lock.Busy)
	}
	if !req.NotAfter.IsZero() && !now.Before(req.NotAfter) {
		return done(lock.TooLate)
	}
	if req.Policy == lock.Forbid && ep.guarded {
		if _, err := c.Exec(ctx, `UPDATE `+b.tasks+` SET busy = $2 WHERE task = $1::bytea`, task, msParam(tick)); err != nil {
			return res, err
		}
		res.Guarded = true
		return done(lock.Busy)
	}

	// 4. Write, and 5. commit, in one round trip. The token also follows
	// the clock, so that it keeps rising even if this record is lost and
	// rebuilt from nothing.
	if st.fence == math.MaxInt64 {
		return res, errors.New("the task's fencing tokens are exhausted")
	}
	fence := max(st.fence+1, now.UnixMicro())
	forbid := req.Policy == lock.Forbid
	upsert := `INSERT INTO ` + b.locks + ` AS l (key, owner, token, expires)
		VALUES ($1::bytea, $2::bytea, $3, clock_timestamp() + $4::bigint * interval '1 microsecond')
		ON CONFLICT (key) DO UPDATE SET owner = EXCLUDED.owner, token = EXCLUDED.token, expires = EXCLUDED.expires`
	if forbid {
		upsert += ` WHERE l.expires <= clock_timestamp()` // the task's lock held: busy
	}
	holds := `EXISTS (SELECT 1 FROM ` + b.locks + ` WHERE key = $3::bytea AND token = $4)`
	batch := &pgx.Batch{}
	batch.Queue(upsert+` RETURNING true`, []byte(key), []byte(req.Owner), fence, micros(req.TTL))
	batch.Queue(`UPDATE `+b.tasks+` SET last_claimed = $2, fence = $4, prev = $5, session = $6::bytea, lock_key = $3::bytea, busy = NULL
		WHERE task = $1::bytea AND `+holds,
		task, msParam(tick), []byte(key), fence, msParam(decided), []byte(req.Session))
	if forbid {
		batch.Queue(`UPDATE `+b.tasks+` SET busy = $2 WHERE task = $1::bytea AND NOT `+holds,
			task, msParam(tick), []byte(key), fence)
	}
	batch.Queue(`DELETE FROM ` + b.locks + ` WHERE key IN (SELECT key FROM ` + b.locks + `
		WHERE expires <= clock_timestamp() ORDER BY expires LIMIT 8 FOR UPDATE SKIP LOCKED)`)
	batch.Queue(`COMMIT`)
	var claimed bool
	err = pipeline(ctx, c, batch, func(br pgx.BatchResults) (err error) {
		if claimed, err = one(br.Query()); err != nil {
			return err
		}
		for range batch.Len() - 2 {
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		return commit(br)
	})
	if err != nil {
		return res, err
	}
	if !claimed {
		res.Outcome = lock.Busy
		return res, nil
	}
	res.Outcome = lock.Claimed
	res.Lease = lock.Lease{Task: req.Task, Key: key, Owner: req.Owner, Token: uint64(fence)}
	return res, nil
}

func (b *Backend) RenewLease(ctx context.Context, l lock.Lease, ttl time.Duration) (bool, error) {
	if err := lock.CheckLease(l, ttl); err != nil {
		return false, err
	}
	if err := checkToken("renew-lease", l); err != nil {
		return false, err
	}
	if b.err != nil {
		return false, b.err
	}
	tag, err := b.pool.Exec(ctx, `WITH n AS MATERIALIZED (SELECT clock_timestamp() AS now)
		UPDATE `+b.locks+` l SET expires = n.now + $4::bigint * interval '1 microsecond' FROM n
		WHERE l.key = $1::bytea AND l.owner = $2::bytea AND l.token = $3 AND l.expires > n.now`,
		[]byte(l.Key), []byte(l.Owner), int64(l.Token), micros(ttl))
	if err != nil {
		return false, b.fail("renew-lease", l.Key, err)
	}
	return tag.RowsAffected() == 1, nil
}

// ReleaseLease is one statement, or with a run one transaction of two in
// one round trip: the run's upsert locks the task's row before the lock row
// is deleted, the order of claims.
func (b *Backend) ReleaseLease(ctx context.Context, l lock.Lease, run *lock.RunRecord) (bool, error) {
	if err := lock.CheckLease(l, -1); err != nil {
		return false, err
	}
	rec, err := lock.CheckRun(l, run)
	if err != nil {
		return false, fmt.Errorf("pglock: release-lease %q: %w", l.Key, err)
	}
	if err := checkToken("release-lease", l); err != nil {
		return false, err
	}
	if b.err != nil {
		return false, b.err
	}
	release := `WITH n AS MATERIALIZED (SELECT clock_timestamp() AS now)
		DELETE FROM ` + b.locks + ` l USING n WHERE l.key = $1::bytea AND l.owner = $2::bytea AND l.token = $3
		RETURNING l.expires > n.now`
	args := []any{[]byte(l.Key), []byte(l.Owner), int64(l.Token)}
	if rec == nil {
		rows, err := b.pool.Query(ctx, release, args...)
		ok, err := anyTrue(rows, err)
		if err != nil {
			return false, b.fail("release-lease", l.Key, err)
		}
		return ok, nil
	}
	var tick any
	if !rec.Tick.IsZero() {
		tick = ms(rec.Tick)
	}
	var ok bool
	err = b.inTx(ctx, func(batch *pgx.Batch) {
		batch.Queue(`INSERT INTO `+b.tasks+` AS t (task, run_tick, run_token, run_owner, run_result, run_ms, run_error, run_ended)
			VALUES ($1::bytea, $2, $3, $4::bytea, $5, $6, $7::bytea, date_trunc('milliseconds', clock_timestamp()))
			ON CONFLICT (task) DO UPDATE SET run_tick = EXCLUDED.run_tick, run_token = EXCLUDED.run_token,
				run_owner = EXCLUDED.run_owner, run_result = EXCLUDED.run_result, run_ms = EXCLUDED.run_ms,
				run_error = EXCLUDED.run_error, run_ended = EXCLUDED.run_ended
			WHERE t.run_token IS NULL OR t.run_token <= EXCLUDED.run_token`,
			[]byte(l.Task), tick, int64(rec.Token), []byte(rec.Owner), rec.Result, rec.Duration.Milliseconds(), []byte(rec.Error))
		batch.Queue(release, args...)
	}, func(br pgx.BatchResults) (err error) {
		if _, err = br.Exec(); err != nil {
			return err
		}
		ok, err = anyTrue(br.Query())
		return err
	})
	if err != nil {
		return false, b.fail("release-lease", l.Key, err)
	}
	return ok, nil
}
