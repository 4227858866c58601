package pglock

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/beatlock/beat/lock"
)

// A batch of releases (ReleaseBatch) is one round trip, pipelined, each
// statement over arrays that hold the whole batch and queued only when the
// batch needs it; ReleaseLease is a batch of one, so that the two cannot
// answer differently:
//
//   - record the runs: one upsert of their tasks' rows in name order, so
//     that it locks them, as claims do, before any lock row;
//   - lock the leases' lock rows in key order, when there are two or more
//     (see claim.go: the order of every call that holds several);
//   - delete the lock rows that still carry their lease's owner and token,
//     reading the store's clock once: a row deleted while live answers
//     true.
//
// With more than the DELETE to send, the statements are one READ COMMITTED
// transaction, under the generic plans of claims (genericPlans); the
// DELETE alone (one lease, without a run) is sent alone. The batch is thus
// atomic as a whole, and answers as releases one after another would: no
// release changes what another's answer reads, but for a lease named twice
// (its repeats answer false: its first release deleted its row, and no
// call writes a row with its token again) and for runs of one task (the
// task keeps the one with the highest token, the last of equal ones: each
// run replaces a record whose token is not higher).

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
	released, err := b.releases(ctx, []lock.LeaseEnd{{Lease: l}}, []*lock.RunRecord{rec})
	if err != nil {
		return false, b.fail("release-lease", l.Key, err)
	}
	return released[0], nil
}

func (b *Backend) ReleaseBatch(ctx context.Context, ends []lock.LeaseEnd) ([]bool, error) {
	runs, err := lock.CheckEnds(ends)
	if err != nil {
		return nil, err
	}
	for i, e := range ends {
		if err := checkToken(fmt.Sprintf("release %d of the batch", i), e.Lease); err != nil {
			return nil, err
		}
	}
	if b.err != nil {
		return nil, b.err
	}
	if len(ends) == 0 {
		return []bool{}, nil
	}
	released, err := b.releases(ctx, ends, runs)
	if err != nil {
		return nil, b.fail("release-batch", ends[0].Lease.Key, fmt.Errorf("the first of %d leases: %w", len(ends), err))
	}
	return released, nil
}

// leaseID is what a lock row must carry to be a lease's.
type leaseID struct {
	key, owner string
	token      uint64
}

// releases releases ends, a checked batch that is not empty, recording
// runs[i] (as lock.CheckEnds returns them; ends[i].Run is not read) for
// ends[i].
func (b *Backend) releases(ctx context.Context, ends []lock.LeaseEnd, runs []*lock.RunRecord) ([]bool, error) {
	// Each lease once: the DELETE then returns each row once, for the
	// lease's first end.
	var (
		keys, owners [][]byte
		tokens       []int64
		slot         = make([]int, len(ends)) // ends[i]'s element of the arrays; -1 for a repeat
		seen         = make(map[leaseID]bool, len(ends))
	)
	for i, e := range ends {
		l := e.Lease
		id := leaseID{l.Key, l.Owner, l.Token}
		if seen[id] {
			slot[i] = -1
			continue
		}
		seen[id] = true
		slot[i] = len(keys)
		keys, owners, tokens = append(keys, []byte(l.Key)), append(owners, []byte(l.Owner)), append(tokens, int64(l.Token))
	}

	// One run per task, since an upsert may not write a row twice.
	last := make(map[string]*lock.RunRecord)
	for i, rec := range runs {
		if rec == nil {
			continue
		}
		if r, ok := last[ends[i].Lease.Task]; !ok || rec.Token >= r.Token {
			last[ends[i].Lease.Task] = rec
		}
	}
	var r runColumns
	for task, rec := range last {
		r.add(task, rec)
	}

	released := make([]bool, len(keys))
	tx := len(last) > 0 || len(keys) > 1
	batch := &pgx.Batch{}
	if tx {
		batch.Queue(beginRC)
		batch.Queue(genericPlans)
	}
	if len(last) > 0 {
		batch.Queue(`INSERT INTO `+b.tasks+` AS t (task, run_tick, run_token, run_owner, run_result, run_ms, run_error, run_ended)
			SELECT r.task, r.tick, r.token, r.owner, r.result, r.ms, r.err, date_trunc('milliseconds', clock_timestamp())
			FROM unnest($1::bytea[], $2::timestamptz[], $3::bigint[], $4::bytea[], $5::text[], $6::bigint[], $7::bytea[])
				AS r(task, tick, token, owner, result, ms, err)
			ORDER BY r.task
			ON CONFLICT (task) DO UPDATE SET run_tick = EXCLUDED.run_tick, run_token = EXCLUDED.run_token,
				run_owner = EXCLUDED.run_owner, run_result = EXCLUDED.run_result, run_ms = EXCLUDED.run_ms,
				run_error = EXCLUDED.run_error, run_ended = EXCLUDED.run_ended
			WHERE t.run_token IS NULL OR t.run_token <= EXCLUDED.run_token`,
			r.tasks, r.ticks, r.tokens, r.owners, r.results, r.millis, r.errs)
	}
	if len(keys) > 1 {
		batch.Queue(`SELECT 1 FROM `+b.locks+` l
			JOIN unnest($1::bytea[], $2::bytea[], $3::bigint[]) AS r(key, owner, token)
				ON l.key = r.key AND l.owner = r.owner AND l.token = r.token
			ORDER BY l.key FOR UPDATE OF l`, keys, owners, tokens)
	}
	batch.Queue(`WITH n AS MATERIALIZED (SELECT clock_timestamp() AS now)
		DELETE FROM `+b.locks+` l
		USING n, unnest($1::bytea[], $2::bytea[], $3::bigint[]) WITH ORDINALITY AS r(key, owner, token, i)
		WHERE l.key = r.key AND l.owner = r.owner AND l.token = r.token
		RETURNING r.i, l.expires > n.now`, keys, owners, tokens).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var (
				i    int64
				live bool
			)
			if err := rows.Scan(&i, &live); err != nil {
				return err
			}
			if i < 1 || i > int64(len(released)) {
				return fmt.Errorf("the DELETE answered for lease %d of %d", i, len(released))
			}
			released[i-1] = live
		}
		return rows.Err()
	})
	if err := b.roundTrip(ctx, batch, tx); err != nil {
		return nil, err
	}
	answers := make([]bool, len(ends))
	for i, s := range slot {
		answers[i] = s >= 0 && released[s]
	}
	return answers, nil
}

// runColumns are the run records of a batch of releases, one per task:
// parallel arrays, a column of the tasks' table each.
type runColumns struct {
	tasks, owners, errs [][]byte
	ticks               []pgtype.Timestamptz
	tokens, millis      []int64
	results             []string
}

func (r *runColumns) add(task string, rec *lock.RunRecord) {
	r.tasks = append(r.tasks, []byte(task))
	r.ticks = append(r.ticks, pgtype.Timestamptz{Time: ms(rec.Tick), Valid: !rec.Tick.IsZero()})
	r.tokens = append(r.tokens, int64(rec.Token))
	r.owners = append(r.owners, []byte(rec.Owner))
	r.results = append(r.results, rec.Result)
	r.millis = append(r.millis, rec.Duration.Milliseconds())
	r.errs = append(r.errs, []byte(rec.Error))
}

// roundTrip sends batch, which begins a transaction when tx (and is then
// committed here), on a connection of the pool: one round trip.
func (b *Backend) roundTrip(ctx context.Context, batch *pgx.Batch, tx bool) error {
	if tx {
		batch.Queue(`COMMIT`).Exec(committed)
	}
	c, err := b.acquire(ctx)
	if err != nil {
		return err
	}
	defer c.release()
	return send(ctx, c, batch)
}
