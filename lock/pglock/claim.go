package pglock

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/beatlock/beat/lock"
)

// A batch of claims (ClaimBatch) is one READ COMMITTED transaction, the
// algorithm of redislock's claim script with the tasks' row locks in place
// of Lua's atomicity. Claim is a batch of one, so that the two cannot
// answer differently.
//
//  1. One round trip, pipelined: BEGIN; INSERT the batch's task rows that
//     are missing (ON CONFLICT DO NOTHING), so that claims lock their task
//     before they decide, even the first; SELECT the batch's task rows FOR
//     UPDATE (claims of one task queue here, one at a time); SELECT the
//     meta row with clock_timestamp() and the database's identity. The meta
//     row is read after the task rows are locked, so a claim sees every
//     epoch and guard that an earlier claim of its task wrote.
//  2. Rarely: begin an epoch or set the guard (see epoch.go), once for the
//     batch: its claims share their ttl and known epoch, and the first to
//     settle the epoch settles it for the others.
//  3. Decide each claim in Go, as memlock does (decide): the clock checks,
//     the epoch, the task's record.
//  4. One round trip, pipelined, each statement over arrays that hold the
//     whole batch and queued only when some claim needs it: lock, in key
//     order, the lock rows the batch writes, when it writes two or more
//     (see below); renew the lock of each tick its session asks for again;
//     record as busy the Forbid ticks skipped under the guard; upsert the
//     lock rows with the new tokens (under Forbid only over an expired row,
//     so that a lock taken meanwhile by TryAcquire makes the tick Busy);
//     update the record of each task whose lock row now carries the token,
//     and record the others' ticks as busy; delete a few expired lock rows
//     per claim (SKIP LOCKED: never waits); COMMIT.
//
// A batch is thus two round trips whatever its size; no statement in it
// waits on anything but the row locks described here. Locks are taken in
// one order everywhere, so that no two calls deadlock: task rows before
// lock rows; task rows in the order of their names (a batch inserts and
// locks its task rows in that order, ReleaseBatch upserts its runs' task
// rows in it; ReleaseLease with a run, ForceRelease and Forget take their
// one task's row); and lock rows in the order of their keys in every call
// that holds more than one: a batch of claims locks those it writes,
// ReleaseBatch and RenewBatch those of their leases, ReleaseAll those of
// the owner, each before it writes any (without any one of the four,
// TestNoDeadlock fails in most runs). The other calls write one lock row
// and hold no other. The meta row is written only by a transaction that
// holds nothing else or only its task rows.
//
// One gap remains: a lock row that a TryAcquire inserts on one of a
// batch's keys between the batch's locking of its rows and its upsert is
// locked out of order. Should a ReleaseAll of the TryAcquire's owner hold
// that row and wait for another of the batch's, PostgreSQL fails one of
// the two after deadlock_timeout: an error, never a wrong answer.

// taskState is a task's claim record; ticks in Unix ms, 0 for none.
type taskState struct {
	last, prev, busy int64
	fence            int64
	session          []byte
	rival            int64 // the last claimed tick another session was refused
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

// msParam is a tick for a timestamptz array parameter, NULL for 0.
func msParam(ms int64) pgtype.Timestamptz {
	return pgtype.Timestamptz{Time: msTime(ms), Valid: ms != 0}
}

// action is what a claim writes once decided.
type action uint8

const (
	answer action = iota // nothing: the decision's result is the answer
	renew                // the same session asks again: renew its lock
	skip                 // Forbid under the guard: record the tick as busy
	take                 // lock the key with a new token, record the tick
	rival                // a peer lost the race: record it for the winner
)

// decision is a claim as decide leaves it: its answer, but for what its
// write settles (result).
type decision struct {
	res lock.ClaimResult
	act action
	key string
	// token is the token to renew (renew) or to issue (take); prev, the
	// tick decided before the claim's, its Previous when Claimed.
	token, prev int64
	// contested: another session claimed the task's tick before, or was
	// refused it (take only).
	contested bool
}

// decide judges req against its task's record st and the store's epoch and
// clock, as lock.Claimer describes; every claim, alone or in a batch, is
// judged here and only here.
func decide(req lock.ClaimRequest, st taskState, ep epochState) (decision, error) {
	now := ep.now
	d := decision{
		res: lock.ClaimResult{StoreTime: now, Epoch: ep.epoch},
		key: lock.LeaseKey(req.Task, req.Tick, req.Policy),
	}
	done := func(o lock.Outcome) (decision, error) {
		d.res.Outcome = o
		return d, nil
	}
	tick := req.Tick.UnixMilli()
	horizon := now.Add(req.MaxSkew).UnixMilli()
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
		d.res.FutureRecord = msTime(future)
	}
	decided := max(last, busy)
	d.res.Previous = msTime(decided)
	if last != 0 && tick <= last {
		trusted := d.res.FutureRecord.IsZero()
		if trusted && tick == st.last && req.Session != "" && req.Session == string(st.session) {
			// The same process asks again: its first answer was lost. It
			// gets its lease back only while the lock still carries it.
			d.act, d.token, d.prev = renew, st.fence, st.prev
			return done(lock.AlreadyClaimed)
		}
		if trusted && tick < last && tick > st.prev {
			return done(lock.TooLate) // passed over: claims only move forward
		}
		if req.Session != string(st.session) && st.rival != st.last {
			d.act = rival // the winner's next claim says so (once a tick)
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
		d.act, d.res.Guarded = skip, true
		return done(lock.Busy)
	}
	if st.fence == math.MaxInt64 {
		return d, fmt.Errorf("the fencing tokens of task %q are exhausted", req.Task)
	}
	// The token also follows the clock, so that it keeps rising even if
	// this record is lost and rebuilt from nothing.
	d.act, d.token, d.prev = take, max(st.fence+1, now.UnixMicro()), decided
	d.contested = st.last != 0 && (string(st.session) != req.Session || st.rival == st.last)
	return done(lock.Busy) // unless the upsert takes the lock (Forbid)
}

// result is the claim's answer, given whether its write renewed or took
// the lock (ok).
func (d decision) result(req lock.ClaimRequest, ok bool) lock.ClaimResult {
	if ok && (d.act == renew || d.act == take) {
		d.res.Outcome, d.res.Previous, d.res.Contested = lock.Claimed, msTime(d.prev), d.contested
		d.res.Lease = lock.Lease{Task: req.Task, Key: d.key, Owner: req.Owner, Token: uint64(d.token)}
	}
	return d.res
}

func (b *Backend) Claim(ctx context.Context, req lock.ClaimRequest) (lock.ClaimResult, error) {
	if err := lock.CheckClaim(req); err != nil {
		return lock.ClaimResult{}, err
	}
	if b.err != nil {
		return lock.ClaimResult{}, b.err
	}
	res, err := b.claims(ctx, []lock.ClaimRequest{req})
	if err != nil {
		return lock.ClaimResult{}, b.fail("claim", req.Task, fmt.Errorf("tick %s: %w", req.Tick.UTC().Format(time.RFC3339Nano), err))
	}
	return res[0], nil
}

func (b *Backend) ClaimBatch(ctx context.Context, reqs []lock.ClaimRequest) ([]lock.ClaimResult, error) {
	if err := lock.CheckBatch(reqs); err != nil {
		return nil, err
	}
	if b.err != nil {
		return nil, b.err
	}
	if len(reqs) == 0 {
		return []lock.ClaimResult{}, nil
	}
	res, err := b.claims(ctx, reqs)
	if err != nil {
		return nil, b.fail("claim-batch", reqs[0].Owner, fmt.Errorf("%d claims, the first of task %q: %w", len(reqs), reqs[0].Task, err))
	}
	return res, nil
}

// claims runs reqs, a checked batch that is not empty, as one transaction.
func (b *Backend) claims(ctx context.Context, reqs []lock.ClaimRequest) ([]lock.ClaimResult, error) {
	e, err := b.identityExprs(ctx)
	if err != nil {
		return nil, err
	}
	tasks := make([][]byte, len(reqs))
	for i, req := range reqs {
		tasks[i] = []byte(req.Task)
	}
	c, err := b.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer c.release()

	// 1. Lock the task rows, read the meta row.
	var (
		states    = make(map[string]taskState, len(reqs))
		m         metaRow
		metaFound bool
	)
	batch := &pgx.Batch{}
	batch.Queue(beginRC)
	batch.Queue(genericPlans)
	batch.Queue(`INSERT INTO `+b.tasks+` (task) SELECT t FROM unnest($1::bytea[]) AS t ORDER BY t
		ON CONFLICT (task) DO NOTHING`, tasks)
	batch.Queue(`SELECT task, last_claimed, prev, busy, fence, session, rival FROM `+b.tasks+`
		WHERE task = ANY($1::bytea[]) ORDER BY task FOR UPDATE`, tasks).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var (
				task                    []byte
				st                      taskState
				last, prev, busy, rival pgtype.Timestamptz
			)
			if err := rows.Scan(&task, &last, &prev, &busy, &st.fence, &st.session, &rival); err != nil {
				return err
			}
			st.last, st.prev, st.busy, st.rival = unixMS(last), unixMS(prev), unixMS(busy), unixMS(rival)
			states[string(task)] = st
		}
		return rows.Err()
	})
	batch.Queue(b.metaSelect(e)).QueryRow(func(row pgx.Row) (err error) {
		m, metaFound, err = scanMeta(row)
		return err
	})
	if err := send(ctx, c, batch); err != nil {
		return nil, err
	}

	// 2. The epoch and the guard.
	ep, err := b.settle(ctx, c, e, m, metaFound, &reqs[0])
	if err != nil {
		return nil, err
	}

	// 3. Decide.
	ds := make([]decision, len(reqs))
	for i, req := range reqs {
		st, ok := states[req.Task]
		if !ok {
			// Only a hand-made DELETE can do it: no call deletes task rows.
			return nil, fmt.Errorf("the row of task %q vanished as it was made", req.Task)
		}
		if ds[i], err = decide(req, st, ep); err != nil {
			return nil, err
		}
	}

	// 4. Write, and commit, in one round trip.
	done, err := b.write(ctx, c, reqs, ds)
	if err != nil {
		return nil, err
	}
	results := make([]lock.ClaimResult, len(reqs))
	for i, d := range ds {
		results[i] = d.result(reqs[i], done[d.key])
	}
	return results, nil
}

// takes are the claims of a batch that lock their keys, under one upsert,
// and what their tasks' records become: parallel arrays, one element per
// claim.
type takes struct {
	tasks, keys  [][]byte
	ticks, prevs []pgtype.Timestamptz
	tokens       []int64
}

func (t *takes) add(req lock.ClaimRequest, d decision) {
	t.tasks = append(t.tasks, []byte(req.Task))
	t.keys = append(t.keys, []byte(d.key))
	t.ticks = append(t.ticks, msParam(req.Tick.UnixMilli()))
	t.prevs = append(t.prevs, msParam(d.prev))
	t.tokens = append(t.tokens, d.token)
}

// write queues the writes of the decisions ds of reqs and COMMIT, and sends
// them in one round trip. It returns the keys whose lock a claim renewed or
// took. The keys of a batch are distinct: its tasks are, and a task's name
// holds no '@'; its claims share one owner, session and ttl.
func (b *Backend) write(ctx context.Context, c txConn, reqs []lock.ClaimRequest, ds []decision) (map[string]bool, error) {
	var (
		forbid, other        takes
		renewKeys, skipTasks [][]byte
		rivalTasks           [][]byte
		renewTokens          []int64
		skipTicks            []pgtype.Timestamptz
		owner, session, ttl  = []byte(reqs[0].Owner), []byte(reqs[0].Session), micros(reqs[0].TTL)
		done                 = make(map[string]bool)
		readKeys             = func(rows pgx.Rows) error {
			for rows.Next() {
				var key []byte
				if err := rows.Scan(&key); err != nil {
					return err
				}
				done[string(key)] = true
			}
			return rows.Err()
		}
	)
	for i, d := range ds {
		switch req := reqs[i]; {
		case d.act == renew:
			renewKeys, renewTokens = append(renewKeys, []byte(d.key)), append(renewTokens, d.token)
		case d.act == skip:
			skipTasks, skipTicks = append(skipTasks, []byte(req.Task)), append(skipTicks, msParam(req.Tick.UnixMilli()))
		case d.act == rival:
			rivalTasks = append(rivalTasks, []byte(req.Task))
		case d.act == take && req.Policy == lock.Forbid:
			forbid.add(req, d)
		case d.act == take:
			other.add(req, d)
		}
	}

	batch := &pgx.Batch{}
	if keys := slices.Concat(renewKeys, forbid.keys, other.keys); len(keys) > 1 {
		// The statements below lock rows in orders of their own (the
		// renewals in the batch's order, then each upsert's keys): lock
		// those that exist in key order first, the order of ReleaseAll and
		// ReleaseBatch, which may hold several of them too.
		batch.Queue(`SELECT 1 FROM `+b.locks+` WHERE key = ANY($1::bytea[]) ORDER BY key FOR UPDATE`, keys)
	}
	if len(renewKeys) > 0 {
		batch.Queue(`WITH n AS MATERIALIZED (SELECT clock_timestamp() AS now)
			UPDATE `+b.locks+` l SET expires = n.now + $4::bigint * interval '1 microsecond'
			FROM n, unnest($1::bytea[], $2::bigint[]) AS r(key, token)
			WHERE l.key = r.key AND l.token = r.token AND l.owner = $3::bytea AND l.expires > n.now
			RETURNING l.key`, renewKeys, renewTokens, owner, ttl).Query(readKeys)
	}
	if len(skipTasks) > 0 {
		batch.Queue(`UPDATE `+b.tasks+` t SET busy = s.tick
			FROM unnest($1::bytea[], $2::timestamptz[]) AS s(task, tick) WHERE t.task = s.task`, skipTasks, skipTicks)
	}
	if len(rivalTasks) > 0 {
		batch.Queue(`UPDATE `+b.tasks+` SET rival = last_claimed WHERE task = ANY($1::bytea[])`, rivalTasks)
	}
	for _, g := range []struct {
		*takes
		forbid bool
	}{{&forbid, true}, {&other, false}} {
		if len(g.keys) == 0 {
			continue
		}
		upsert := `INSERT INTO ` + b.locks + ` AS l (key, owner, token, expires)
			SELECT u.key, $3::bytea, u.token, clock_timestamp() + $4::bigint * interval '1 microsecond'
			FROM unnest($1::bytea[], $2::bigint[]) AS u(key, token) ORDER BY u.key
			ON CONFLICT (key) DO UPDATE SET owner = EXCLUDED.owner, token = EXCLUDED.token, expires = EXCLUDED.expires`
		if g.forbid {
			upsert += ` WHERE l.expires <= clock_timestamp()` // the task's lock held: busy
		}
		batch.Queue(upsert+` RETURNING l.key`, g.keys, g.tokens, owner, ttl).Query(readKeys)
		holds := `EXISTS (SELECT 1 FROM ` + b.locks + ` l WHERE l.key = u.key AND l.token = u.token)`
		batch.Queue(`UPDATE `+b.tasks+` t SET last_claimed = u.tick, fence = u.token, prev = u.prev,
				session = $6::bytea, lock_key = u.key, busy = NULL
			FROM unnest($1::bytea[], $2::timestamptz[], $3::bytea[], $4::bigint[], $5::timestamptz[]) AS u(task, tick, key, token, prev)
			WHERE t.task = u.task AND `+holds,
			g.tasks, g.ticks, g.keys, g.tokens, g.prevs, session)
		if g.forbid {
			batch.Queue(`UPDATE `+b.tasks+` t SET busy = u.tick
				FROM unnest($1::bytea[], $2::timestamptz[], $3::bytea[], $4::bigint[]) AS u(task, tick, key, token)
				WHERE t.task = u.task AND NOT `+holds,
				g.tasks, g.ticks, g.keys, g.tokens)
		}
	}
	if n := len(forbid.keys) + len(other.keys); n > 0 {
		// Each claim may leave a lock row behind (Allow's keys are never
		// written again): sweeping more than that keeps the table small
		// without a reaper. The clock is read once, by a sub-select, so
		// that it bounds the scan of the index on expires: compared with
		// each row (clock_timestamp() is volatile), it would only filter,
		// and read every live row's entry whenever fewer rows than the
		// limit have expired. ARRAY(...) keeps the plan a lookup by key for
		// any limit, where the generic plan would join with a scan of the
		// whole table.
		batch.Queue(b.sweepSQL(), max(8, 2*n))
	}
	batch.Queue(`COMMIT`).Exec(committed)
	if err := send(ctx, c, batch); err != nil {
		return nil, err
	}
	return done, nil
}

// sweepSQL deletes up to $1 expired lock rows, skipping those locked.
func (b *Backend) sweepSQL() string {
	return `DELETE FROM ` + b.locks + ` WHERE key = ANY (ARRAY(SELECT key FROM ` + b.locks + `
		WHERE expires <= (SELECT clock_timestamp()) ORDER BY expires LIMIT $1 FOR UPDATE SKIP LOCKED))`
}
