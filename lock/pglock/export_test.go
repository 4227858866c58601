package pglock

import (
	"context"
	"time"
)

// Backdate moves the epoch of b's store back by d, beginning one first if
// there is none, so that a test has past ticks to claim (see
// locktest.Harness.New).
func Backdate(ctx context.Context, b *Backend, d time.Duration) error {
	if _, _, err := b.Epoch(ctx); err != nil {
		return err
	}
	_, err := b.pool.Exec(ctx, `UPDATE `+b.meta+` SET epoch = epoch - $1::bigint * interval '1 microsecond'`, d.Microseconds())
	return err
}

// Tables returns the quoted names of b's tables.
func Tables(b *Backend) (locks, tasks, meta string) { return b.locks, b.tasks, b.meta }

// ResetIdentity makes b probe again which identity functions it may run.
func ResetIdentity(b *Backend) { b.ident.reset() }

// ReleaseAllSQL is the statement of ReleaseAll, for EXPLAIN.
func ReleaseAllSQL(b *Backend) string { return b.releaseAllSQL() }

// SweepSQL is the statement that deletes expired lock rows, for EXPLAIN.
func SweepSQL(b *Backend) string { return b.sweepSQL() }
