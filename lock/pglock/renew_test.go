package pglock_test

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/beatlock/beat/internal/pgtest"
	"github.com/beatlock/beat/lock"
	"github.com/beatlock/beat/lock/locktest"
)

// TestRenewRoundTrips: RenewLease and a batch of renewals of any size are
// one round trip each, once their statements are prepared on the
// connection.
func TestRenewRoundTrips(t *testing.T) {
	pool, writes := countingPool(t)
	b := newBackend(t, pool)
	epoch, _, err := b.Epoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	reqs := make([]lock.ClaimRequest, 500)
	for i := range reqs {
		reqs[i] = lock.ClaimRequest{Task: fmt.Sprint("t", i), Tick: epoch, Owner: "a", TTL: time.Minute, Policy: lock.Policy(i % 3)}
	}
	leases := locktest.ClaimAll(t, b, reqs)
	for _, c := range []struct {
		name  string
		renew func() ([]bool, error)
	}{
		{"RenewLease", func() ([]bool, error) {
			ok, err := b.RenewLease(ctx, leases[0], time.Minute)
			return []bool{ok}, err
		}},
		{"RenewBatch of one", func() ([]bool, error) { return b.RenewBatch(ctx, leases[:1], time.Minute) }},
		{"RenewBatch of 500", func() ([]bool, error) { return b.RenewBatch(ctx, leases, time.Minute) }},
	} {
		for i := range 2 { // the first prepares the statements
			before := writes.Load()
			got, err := c.renew()
			if err != nil || slices.Contains(got, false) {
				t.Fatalf("%s: %v, %v; want all renewed", c.name, got, err)
			}
			if w := writes.Load() - before; i == 1 && w != 1 {
				t.Errorf("%s: %d round trips; want 1", c.name, w)
			}
		}
	}
}

// TestRenewBatchTokens: a token this store cannot have issued is refused,
// naming its lease, and the batch renews nothing.
func TestRenewBatchTokens(t *testing.T) {
	b := newBackend(t, pgtest.Pool(t))
	epoch, _, err := b.Epoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res, err := b.Claim(ctx, lock.ClaimRequest{Task: "t", Tick: epoch, Owner: "a", TTL: time.Second})
	if err != nil || res.Outcome != lock.Claimed {
		t.Fatalf("Claim = %+v, %v", res, err)
	}
	huge := lock.Lease{Task: "u", Key: "u", Owner: "a", Token: math.MaxInt64 + 1}
	if got, err := b.RenewBatch(ctx, []lock.Lease{res.Lease, huge}, time.Hour); err == nil || !strings.Contains(err.Error(), "renewal 1 of the batch") {
		t.Errorf("RenewBatch with a token above 2^63 = %v, %v; want an error naming renewal 1", got, err)
	}
	if ok, err := b.RenewLease(ctx, huge, time.Hour); err == nil || ok {
		t.Errorf("RenewLease with a token above 2^63 = %v, %v; want an error", ok, err)
	}
	recs, _, err := b.Tasks(ctx)
	if err != nil || len(recs) != 1 || recs[0].LockLeft > time.Second {
		t.Errorf("Tasks = %+v, %v; want t's lock with its first ttl, not renewed", recs, err)
	}
}
