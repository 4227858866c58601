package pglock_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/beatlock/beat/internal/pgtest"
	"github.com/beatlock/beat/lock"
	"github.com/beatlock/beat/lock/locktest"
)

// TestNoDeadlock: the calls that hold several lock rows at once (batches
// of claims, of releases and of renewals, ReleaseAll) take them in one
// order, so that none of them fails on a deadlock. Each round, replica a
// claims every task under Replace; then, at once: replica b claims them
// again in a batch that writes its Forbid rows (the tasks "z-..."), taken
// over expired or found held, before its Replace rows ("a-..."); a releases
// half of its leases in a batch that lists them in reverse key order, with
// runs every other round (their task rows locked first) and without (lock
// rows alone); a renews all its leases in a batch in reverse key order; and
// ReleaseAll frees a's rows. Before they took lock rows in key order, each
// pair of the first three deadlocked within a few dozen rounds, and
// renewals that locked theirs in the batch's order deadlocked with the
// others within a few.
func TestNoDeadlock(t *testing.T) {
	const tasks, rounds = 16, 200
	b := newBackend(t, pgtest.Pool(t))
	epoch, _, err := b.Epoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, 2*tasks)
	for i := range tasks {
		names = append(names, fmt.Sprintf("a-%02d", i), fmt.Sprintf("z-%02d", i))
	}
	slices.Sort(names)
	batch := func(owner string, tick int, policy func(task string) lock.Policy) []lock.ClaimRequest {
		reqs := make([]lock.ClaimRequest, len(names))
		for i, n := range names {
			reqs[i] = lock.ClaimRequest{Task: n, Tick: epoch.Add(time.Duration(tick) * time.Millisecond),
				Owner: owner, TTL: time.Minute, Policy: policy(n)}
		}
		return reqs
	}
	// Each call starts a little later in some rounds than in others, so
	// that over the rounds each meets the others' second round trips.
	delay := func(r, n int) { time.Sleep(time.Duration(r%n) * 200 * time.Microsecond) }
	for r := range rounds {
		res, err := b.ClaimBatch(ctx, batch("a", 2*r, func(string) lock.Policy { return lock.Replace }))
		if err != nil {
			t.Fatal(err)
		}
		var ends []lock.LeaseEnd
		var leases []lock.Lease
		for i, c := range res {
			if c.Outcome != lock.Claimed {
				t.Fatalf("round %d: a's claim of %s: %v", r, names[i], c.Outcome)
			}
			leases = append(leases, c.Lease)
			if i%2 == 0 {
				e := lock.LeaseEnd{Lease: c.Lease}
				if r%2 == 0 {
					e.Run = &lock.RunRecord{Result: lock.RunSucceeded}
				}
				ends = append(ends, e)
			}
		}
		slices.Reverse(ends)
		slices.Reverse(leases)
		var wg sync.WaitGroup
		wg.Go(func() {
			_, err := b.ClaimBatch(ctx, batch("b", 2*r+1, func(task string) lock.Policy {
				if task[0] == 'z' {
					return lock.Forbid
				}
				return lock.Replace
			}))
			if err != nil {
				t.Errorf("round %d: b's ClaimBatch: %v", r, err)
			}
		})
		wg.Go(func() {
			delay(r, 7)
			if _, err := b.ReleaseBatch(ctx, ends); err != nil {
				t.Errorf("round %d: a's ReleaseBatch: %v", r, err)
			}
		})
		wg.Go(func() {
			delay(r, 5)
			if _, err := b.RenewBatch(ctx, leases, time.Minute); err != nil {
				t.Errorf("round %d: a's RenewBatch: %v", r, err)
			}
		})
		wg.Go(func() {
			delay(r, 10)
			if _, err := b.ReleaseAll(ctx, "a"); err != nil {
				t.Errorf("round %d: ReleaseAll(a): %v", r, err)
			}
		})
		wg.Wait()
		if t.Failed() {
			return
		}
	}
}

// TestReleaseRoundTrips: ReleaseLease, with a run or without, and a batch
// of releases of any size are one round trip each, once their statements
// are prepared on the connection.
func TestReleaseRoundTrips(t *testing.T) {
	pool, writes := countingPool(t)
	b := newBackend(t, pool)
	epoch, _, err := b.Epoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tick := 0
	claim := func(n int) []lock.Lease {
		t.Helper()
		reqs := make([]lock.ClaimRequest, n)
		for i := range reqs {
			reqs[i] = lock.ClaimRequest{Task: fmt.Sprint("t", i), Tick: epoch.Add(time.Duration(tick) * time.Millisecond),
				Owner: "a", TTL: time.Minute, Policy: lock.Allow}
		}
		tick++
		return locktest.ClaimAll(t, b, reqs)
	}
	run := &lock.RunRecord{Result: lock.RunSucceeded}
	for _, c := range []struct {
		name string
		n    int // leases
		// release releases leases, every other one with run when runs.
		release func(leases []lock.Lease) ([]bool, error)
	}{
		{"ReleaseLease", 1, func(ls []lock.Lease) ([]bool, error) {
			ok, err := b.ReleaseLease(ctx, ls[0], nil)
			return []bool{ok}, err
		}},
		{"ReleaseLease with a run", 1, func(ls []lock.Lease) ([]bool, error) {
			ok, err := b.ReleaseLease(ctx, ls[0], run)
			return []bool{ok}, err
		}},
		{"ReleaseBatch of 500, half with runs", 500, func(ls []lock.Lease) ([]bool, error) {
			ends := make([]lock.LeaseEnd, len(ls))
			for i, l := range ls {
				ends[i].Lease = l
				if i%2 == 0 {
					ends[i].Run = run
				}
			}
			return b.ReleaseBatch(ctx, ends)
		}},
	} {
		for i := range 2 { // the first prepares the statements
			leases := claim(c.n)
			before := writes.Load()
			got, err := c.release(leases)
			if err != nil || slices.Contains(got, false) {
				t.Fatalf("%s: %v, %v; want all released", c.name, got, err)
			}
			if w := writes.Load() - before; i == 1 && w != 1 {
				t.Errorf("%s: %d round trips; want 1", c.name, w)
			}
		}
	}
}

// TestReleaseBatchRuns: of several runs of one task in a batch, the task
// keeps the one that releases one after another would leave: the one with
// the highest token, and of the runs of one lease the last.
func TestReleaseBatchRuns(t *testing.T) {
	b := newBackend(t, pgtest.Pool(t))
	epoch, _, err := b.Epoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var leases []lock.Lease
	for n := range 2 {
		res, err := b.Claim(ctx, lock.ClaimRequest{Task: "t", Tick: epoch.Add(time.Duration(n) * time.Second), Owner: "a", TTL: time.Minute, Policy: lock.Allow})
		if err != nil || res.Outcome != lock.Claimed {
			t.Fatalf("Claim = %+v, %v", res, err)
		}
		leases = append(leases, res.Lease)
	}
	older, newer := leases[0], leases[1]
	end := func(l lock.Lease, result string) lock.LeaseEnd {
		return lock.LeaseEnd{Lease: l, Run: &lock.RunRecord{Tick: epoch, Result: result}}
	}
	lastRun := func() *lock.RunRecord {
		t.Helper()
		recs, _, err := b.Tasks(ctx)
		if err != nil || len(recs) != 1 || recs[0].LastRun == nil {
			t.Fatalf("Tasks = %+v, %v; want t's record, with a run", recs, err)
		}
		return recs[0].LastRun
	}
	got, err := b.ReleaseBatch(ctx, []lock.LeaseEnd{end(newer, lock.RunFailed), end(older, lock.RunSucceeded),
		end(newer, lock.RunTimeout), end(older, lock.RunLost)})
	if err != nil || fmt.Sprint(got) != "[true true false false]" {
		t.Fatalf("ReleaseBatch = %v, %v; want [true true false false]", got, err)
	}
	if r := lastRun(); r.Token != newer.Token || r.Result != lock.RunTimeout || !r.Tick.Equal(epoch.Truncate(time.Millisecond)) {
		t.Errorf("last run = %+v; want the newer lease's second, timeout, tick %v", r, epoch)
	}
	// A run of an older lease, alone in its batch, leaves the record too.
	if got, err := b.ReleaseBatch(ctx, []lock.LeaseEnd{end(older, lock.RunCancelled)}); err != nil || got[0] {
		t.Fatalf("ReleaseBatch of a released lease = %v, %v; want false", got, err)
	}
	if r := lastRun(); r.Token != newer.Token || r.Result != lock.RunTimeout {
		t.Errorf("last run = %+v; want the newer lease's still", r)
	}
}
