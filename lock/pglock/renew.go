package pglock

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/beatlock/beat/lock"
)

// A batch of renewals (RenewBatch) is one round trip: one UPDATE over
// arrays that hold the whole batch, reading the store's clock once, that
// pushes out the expiry of each live lock row still carrying its lease's
// owner and token. RenewLease is a batch of one, so that the two cannot
// answer differently.
//
// With two or more keys the UPDATE would lock their rows in an order of its
// own: it is then one READ COMMITTED transaction, pipelined, under the
// generic plans of claims (genericPlans), that first locks the rows in key
// order (see claim.go: the order of every call that holds several). A
// batch of one key is the UPDATE alone.
//
// No renewal changes what another's answer reads: a lease named twice
// answers true both times while it is live, as RenewLease twice would.

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
	renewed, err := b.renewals(ctx, []lock.Lease{l}, ttl)
	if err != nil {
		return false, b.fail("renew-lease", l.Key, err)
	}
	return renewed[0], nil
}

func (b *Backend) RenewBatch(ctx context.Context, leases []lock.Lease, ttl time.Duration) ([]bool, error) {
	if err := lock.CheckRenewals(leases, ttl); err != nil {
		return nil, err
	}
	for i, l := range leases {
		if err := checkToken(fmt.Sprintf("renewal %d of the batch", i), l); err != nil {
			return nil, err
		}
	}
	if b.err != nil {
		return nil, b.err
	}
	if len(leases) == 0 {
		return []bool{}, nil
	}
	renewed, err := b.renewals(ctx, leases, ttl)
	if err != nil {
		return nil, b.fail("renew-batch", leases[0].Key, fmt.Errorf("the first of %d leases: %w", len(leases), err))
	}
	return renewed, nil
}

// renewals renews leases, a checked batch that is not empty, for ttl.
func (b *Backend) renewals(ctx context.Context, leases []lock.Lease, ttl time.Duration) ([]bool, error) {
	var (
		keys, owners [][]byte
		tokens       []int64
		distinct     = make(map[string]bool, len(leases))
		renewed      = make(map[leaseID]bool, len(leases))
	)
	for _, l := range leases {
		keys, owners, tokens = append(keys, []byte(l.Key)), append(owners, []byte(l.Owner)), append(tokens, int64(l.Token))
		distinct[l.Key] = true
	}
	tx := len(distinct) > 1
	batch := &pgx.Batch{}
	if tx {
		batch.Queue(beginRC)
		batch.Queue(genericPlans)
		batch.Queue(`SELECT 1 FROM `+b.locks+` WHERE key = ANY($1::bytea[]) ORDER BY key FOR UPDATE`, keys)
	}
	// A lease named twice joins its row twice; the row is updated, and
	// returned, once.
	batch.Queue(`WITH n AS MATERIALIZED (SELECT clock_timestamp() AS now)
		UPDATE `+b.locks+` l SET expires = n.now + $4::bigint * interval '1 microsecond'
		FROM n, unnest($1::bytea[], $2::bytea[], $3::bigint[]) AS r(key, owner, token)
		WHERE l.key = r.key AND l.owner = r.owner AND l.token = r.token AND l.expires > n.now
		RETURNING l.key, l.owner, l.token`, keys, owners, tokens, micros(ttl)).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var (
				key, owner []byte
				token      int64
			)
			if err := rows.Scan(&key, &owner, &token); err != nil {
				return err
			}
			renewed[leaseID{string(key), string(owner), uint64(token)}] = true
		}
		return rows.Err()
	})
	if err := b.roundTrip(ctx, batch, tx); err != nil {
		return nil, err
	}
	answers := make([]bool, len(leases))
	for i, l := range leases {
		answers[i] = renewed[leaseID{l.Key, l.Owner, l.Token}]
	}
	return answers, nil
}
