package pglock

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Transactions. A pipeline sends several statements and one Sync: one round
// trip. Wrapped in BEGIN ISOLATION LEVEL READ COMMITTED ... COMMIT, it is
// one transaction whatever the database's default isolation, and each
// statement reads a fresh snapshot, so one that follows a SELECT ... FOR
// UPDATE sees what the transaction it waited for committed.

const beginRC = `BEGIN ISOLATION LEVEL READ COMMITTED`

// genericPlans follows beginRC in the transactions of batches. PostgreSQL
// plans a statement with array parameters afresh at every call, since its
// generic plan, costed for arrays of 10, never looks cheaper than a plan
// for the array at hand: the planning then costs more than the statement.
// The generic plans (index scans and nested loops on the primary keys)
// suit every size of batch, where a plan for a large array may scan a
// whole table.
const genericPlans = `SET LOCAL plan_cache_mode = force_generic_plan`

// txConn is a connection in a transaction begun by a pipeline.
type txConn struct{ *pgxpool.Conn }

// acquire takes a connection from the pool; release must follow.
func (b *Backend) acquire(ctx context.Context) (txConn, error) {
	c, err := b.pool.Acquire(ctx)
	return txConn{c}, err
}

// release ends a transaction left open by an error, and returns the
// connection to the pool (which closes it if the transaction could not be
// ended, or if an error left the connection unusable).
func (c txConn) release() {
	if s := c.Conn.Conn().PgConn().TxStatus(); s == 'T' || s == 'E' {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c.Exec(ctx, `ROLLBACK`)
		cancel()
	}
	c.Release()
}

// pipeline runs batch on c and reads its results with read, one call per
// queued statement in order (a statement read with nothing: Exec). It
// returns the first error.
func pipeline(ctx context.Context, c txConn, batch *pgx.Batch, read func(br pgx.BatchResults) error) error {
	br := c.SendBatch(ctx, batch)
	err := read(br)
	return errors.Join(err, br.Close())
}

// send runs batch on c, each statement's results read by the callback
// queued with it (pgx.QueuedQuery's Query, QueryRow or Exec). It returns the
// first error.
func send(ctx context.Context, c txConn, batch *pgx.Batch) error {
	return c.SendBatch(ctx, batch).Close()
}

// inTx runs the statements that queue queues as one READ COMMITTED
// transaction in one round trip, reading their results with read.
func (b *Backend) inTx(ctx context.Context, queue func(*pgx.Batch), read func(br pgx.BatchResults) error) error {
	c, err := b.acquire(ctx)
	if err != nil {
		return err
	}
	defer c.release()
	batch := &pgx.Batch{}
	batch.Queue(beginRC)
	queue(batch)
	batch.Queue(`COMMIT`)
	return pipeline(ctx, c, batch, func(br pgx.BatchResults) error {
		if _, err := br.Exec(); err != nil {
			return err
		}
		if err := read(br); err != nil {
			return err
		}
		return commit(br)
	})
}

// commit reads the result of a queued COMMIT.
func commit(br pgx.BatchResults) error {
	tag, err := br.Exec()
	if err != nil {
		return err
	}
	return committed(tag)
}

// committed checks the tag of a COMMIT: one that ends a failed transaction
// answers ROLLBACK, without an error.
func committed(tag pgconn.CommandTag) error {
	if tag.String() != "COMMIT" {
		return errors.New("the transaction was rolled back")
	}
	return nil
}
