package locktest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/beatlock/beat/lock"
)

// BenchmarkAcquireRelease measures one TryAcquire plus one Release on s, the
// cost of a lock held briefly, with parallel callers on distinct keys.
func BenchmarkAcquireRelease(b *testing.B, s lock.Store) {
	ctx := context.Background()
	b.ReportAllocs()
	var id int64
	var mu = make(chan struct{}, 1)
	b.RunParallel(func(pb *testing.PB) {
		mu <- struct{}{}
		id++
		key := fmt.Sprintf("bench-%d", id)
		<-mu
		for pb.Next() {
			ok, err := s.TryAcquire(ctx, key, "bench", time.Minute)
			if err != nil || !ok {
				b.Fatalf("TryAcquire = %v, %v", ok, err)
			}
			if ok, err := s.Release(ctx, key, "bench"); err != nil || !ok {
				b.Fatalf("Release = %v, %v", ok, err)
			}
		}
	})
}

// BenchmarkClaim measures claiming successive ticks of one task and
// releasing each lease: the store's work for one run of a task. The store's
// epoch must lie a day or more before its clock (as for Harness.New), so
// that there are past ticks to claim.
func BenchmarkClaim(b *testing.B, s lock.Store) {
	ctx := context.Background()
	b.ReportAllocs()
	tick, _, err := s.Epoch(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; b.Loop(); i++ {
		res, err := s.Claim(ctx, lock.ClaimRequest{Task: "bench", Tick: tick.Add(time.Duration(i) * time.Millisecond), Owner: "bench", TTL: time.Minute})
		if err != nil || res.Outcome != lock.Claimed {
			b.Fatalf("Claim = %+v, %v", res, err)
		}
		if ok, err := s.ReleaseLease(ctx, res.Lease, nil); err != nil || !ok {
			b.Fatalf("ReleaseLease = %v, %v", ok, err)
		}
	}
}

// BenchmarkClaimBatch measures claiming one tick of each of n tasks in one
// batch (s must be a lock.BatchClaimer), reported per claim, as a
// replica's burst of n ticks due together costs the store. Epoch as for
// BenchmarkClaim.
func BenchmarkClaimBatch(b *testing.B, s lock.Store, n int) {
	ctx := context.Background()
	bc, ok := s.(lock.BatchClaimer)
	if !ok {
		b.Fatalf("%T is not a lock.BatchClaimer", s)
	}
	tick, _, err := s.Epoch(ctx)
	if err != nil {
		b.Fatal(err)
	}
	reqs := make([]lock.ClaimRequest, n)
	for i := range reqs {
		reqs[i] = lock.ClaimRequest{Task: fmt.Sprintf("bench-%d", i), Owner: "bench", TTL: time.Minute}
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		for j := range reqs {
			reqs[j].Tick = tick.Add(time.Duration(i) * time.Millisecond)
			reqs[j].Policy = lock.Allow // no lock of an earlier tick in the way
		}
		res, err := bc.ClaimBatch(ctx, reqs)
		if err != nil || len(res) != n || res[n-1].Outcome != lock.Claimed {
			b.Fatalf("ClaimBatch = %d results, %v", len(res), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/claim")
}

// BenchmarkRenewLease measures renewing one claimed lease, as a running
// task's lease is renewed.
func BenchmarkRenewLease(b *testing.B, s lock.Store) {
	ctx := context.Background()
	tick, _, err := s.Epoch(ctx)
	if err != nil {
		b.Fatal(err)
	}
	res, err := s.Claim(ctx, lock.ClaimRequest{Task: "bench", Tick: tick, Owner: "bench", TTL: time.Minute})
	if err != nil || res.Outcome != lock.Claimed {
		b.Fatalf("Claim = %+v, %v", res, err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if ok, err := s.RenewLease(ctx, res.Lease, time.Minute); err != nil || !ok {
			b.Fatalf("RenewLease = %v, %v", ok, err)
		}
	}
}

// BenchmarkRenewBatch measures renewing n claimed leases, of n tasks, in
// one batch (s must be a lock.BatchRenewer), reported per renewal, as a
// replica's n running tasks renew together every renew interval. Epoch as
// for BenchmarkClaim.
func BenchmarkRenewBatch(b *testing.B, s lock.Store, n int) {
	ctx := context.Background()
	br, ok := s.(lock.BatchRenewer)
	if !ok {
		b.Fatalf("%T is not a lock.BatchRenewer", s)
	}
	tick, _, err := s.Epoch(ctx)
	if err != nil {
		b.Fatal(err)
	}
	reqs := make([]lock.ClaimRequest, n)
	for i := range reqs {
		reqs[i] = lock.ClaimRequest{Task: fmt.Sprintf("bench-%d", i), Tick: tick, Owner: "bench", TTL: time.Minute}
	}
	leases := ClaimAll(b, s, reqs)
	b.ReportAllocs()
	for b.Loop() {
		renewed, err := br.RenewBatch(ctx, leases, time.Minute)
		if err != nil || len(renewed) != n || !renewed[n-1] {
			b.Fatalf("RenewBatch = %d results, %v", len(renewed), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/renewal")
}

// ClaimAll claims reqs in one batch (lock.ClaimBatch) and returns their
// leases, failing tb unless every one of them is Claimed.
func ClaimAll(tb testing.TB, s lock.Claimer, reqs []lock.ClaimRequest) []lock.Lease {
	tb.Helper()
	res, err := lock.ClaimBatch(context.Background(), s, reqs)
	if err != nil {
		tb.Fatal(err)
	}
	leases := make([]lock.Lease, len(res))
	for i, r := range res {
		if r.Outcome != lock.Claimed {
			tb.Fatalf("claim %d (%q): %v", i, reqs[i].Task, r.Outcome)
		}
		leases[i] = r.Lease
	}
	return leases
}
