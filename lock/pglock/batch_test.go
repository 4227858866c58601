package pglock_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/beatlock/beat/internal/pgtest"
	"github.com/beatlock/beat/lock"
	"github.com/beatlock/beat/lock/pglock"
)

// countingConn counts the writes to a connection: with pgx's pipelines,
// one per round trip.
type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// countingPool returns a pool of one connection, and the count of its
// writes.
func countingPool(t *testing.T) (*pgxpool.Pool, *atomic.Int64) {
	t.Helper()
	cfg := pgtest.Config(t)
	if cfg.ConnConfig.TLSConfig != nil {
		t.Skip("TLS may split a write in records; run with sslmode=disable")
	}
	cfg.MaxConns, cfg.MinConns = 1, 0
	writes := new(atomic.Int64)
	dial := cfg.ConnConfig.DialFunc
	cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return countingConn{c, writes}, nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool, writes
}

// TestClaimBatchRoundTrips: a batch is two round trips whatever its size,
// once its statements are prepared on the connection.
func TestClaimBatchRoundTrips(t *testing.T) {
	pool, writes := countingPool(t)
	b := newBackend(t, pool)
	epoch, _, err := b.Epoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 500} {
		claim := func(tick int) {
			t.Helper()
			reqs := make([]lock.ClaimRequest, n)
			for i := range reqs {
				reqs[i] = lock.ClaimRequest{Task: fmt.Sprintf("t%d-%d", n, i), Tick: epoch.Add(time.Duration(tick) * time.Minute),
					Owner: "a", TTL: time.Minute, Policy: lock.Policy(i % 3), MaxSkew: time.Second}
			}
			res, err := b.ClaimBatch(ctx, reqs)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range res {
				// The Forbid ticks after the first find their task busy.
				if want := reqs[i].Policy != lock.Forbid || tick == 0; (r.Outcome == lock.Claimed) != want {
					t.Fatalf("claim %d of tick %d: %v", i, tick, r.Outcome)
				}
			}
		}
		claim(0) // prepares the statements
		before := writes.Load()
		claim(1)
		if w := writes.Load() - before; w != 2 {
			t.Errorf("a batch of %d claims took %d round trips; want 2", n, w)
		}
	}
}

// TestClaimBatchAfterStoreLoss: a batch from a replica that knew the epoch
// before a loss sets the guard for all its claims, as claims one after
// another would: every Forbid claim is busy and guarded, the others are
// claimed.
func TestClaimBatchAfterStoreLoss(t *testing.T) {
	pool := pgtest.Pool(t)
	b := newBackend(t, pool)
	_, _, meta := pglock.Tables(b)
	old, _, err := b.Epoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `DELETE FROM `+meta); err != nil {
		t.Fatal(err)
	}
	epoch, _, err := b.Epoch(ctx) // begins an epoch, unguarded: it knows no caller's
	if err != nil || !epoch.After(old) {
		t.Fatalf("Epoch = %v, %v; want a new one after %v", epoch, err, old)
	}
	reqs := make([]lock.ClaimRequest, 9)
	for i := range reqs {
		reqs[i] = lock.ClaimRequest{Task: fmt.Sprint("t", i), Tick: epoch, Owner: "a", TTL: time.Minute,
			Policy: lock.Policy(i % 3), MaxSkew: time.Second, KnownEpoch: old}
	}
	res, err := b.ClaimBatch(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		want := lock.Claimed
		if reqs[i].Policy == lock.Forbid {
			want = lock.Busy
		}
		if r.Outcome != want || r.Guarded != (want == lock.Busy) || !r.Epoch.Equal(epoch) {
			t.Errorf("claim %d (%v) = %+v; want %v, guarded %v, epoch %v", i, reqs[i].Policy, r, want, want == lock.Busy, epoch)
		}
	}
	// The skipped ticks stay skipped, and the guard holds for claims that
	// know the new epoch.
	if r, err := b.Claim(ctx, reqs[0]); err != nil || r.Outcome != lock.Busy {
		t.Errorf("Claim of a skipped tick again = %+v, %v; want busy", r, err)
	}
	fresh := lock.ClaimRequest{Task: "fresh", Tick: epoch, Owner: "b", TTL: time.Minute, MaxSkew: time.Second, KnownEpoch: epoch}
	if r, err := b.Claim(ctx, fresh); err != nil || r.Outcome != lock.Busy || !r.Guarded {
		t.Errorf("Forbid claim within the guard = %+v, %v; want busy, guarded", r, err)
	}
}

// TestSweepUsesExpiresIndex: the sweep of a claim reads only the expired
// rows' entries in the index on expires, even under the generic plan that
// a batch runs, whatever its limit: never every live row.
func TestSweepUsesExpiresIndex(t *testing.T) {
	pool := pgtest.Pool(t)
	b := newBackend(t, pool)
	locks, _, _ := pglock.Tables(b)
	if _, err := pool.Exec(ctx, `INSERT INTO `+locks+` (key, owner, expires)
		SELECT convert_to('live-' || i, 'UTF8'), 'a', clock_timestamp() + interval '1 hour'
		FROM generate_series(1, 20000) i`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE `+locks); err != nil {
		t.Fatal(err)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	for _, stmt := range []string{`BEGIN`, `SET LOCAL plan_cache_mode = force_generic_plan`, `PREPARE sweep(bigint) AS ` + pglock.SweepSQL(b)} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	defer conn.Exec(ctx, `ROLLBACK`)
	var plan []string
	rows, err := conn.Query(ctx, `EXPLAIN (ANALYZE, FORMAT TEXT) EXECUTE sweep(1000)`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	p := strings.Join(plan, "\n")
	idx := strings.Trim(locks, `"`) + "_expires"
	if !strings.Contains(p, "Index Cond: (expires <=") || !strings.Contains(p, idx) || strings.Contains(p, "Seq Scan") ||
		strings.Contains(p, "Rows Removed by Filter") {
		t.Errorf("the sweep reads more than the expired rows:\n%s", p)
	}
}
