package pglock_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/beatlock/beat/internal/pgtest"
	"github.com/beatlock/beat/lock"
	"github.com/beatlock/beat/lock/locktest"
	"github.com/beatlock/beat/lock/pglock"
)

// BenchmarkClaimRelease claims successive ticks of one task and releases
// each lease: the store's work for one run of a task (locktest.BenchmarkClaim).
func BenchmarkClaimRelease(b *testing.B) {
	locktest.BenchmarkClaim(b, newBackend(b, pgtest.Pool(b)))
}

// BenchmarkAcquireRelease is one TryAcquire and one Release, with parallel
// callers on distinct keys.
func BenchmarkAcquireRelease(b *testing.B) {
	locktest.BenchmarkAcquireRelease(b, newBackend(b, pgtest.Pool(b)))
}

// BenchmarkClaimBatch claims the next tick of 500 tasks, a third under
// each policy, in one ClaimBatch or in 500 Claims; between rounds, untimed,
// ReleaseAll frees the locks so that the Forbid ticks are claimed too.
func BenchmarkClaimBatch(b *testing.B) {
	const tasks = 500
	for _, mode := range []string{"ClaimBatch", "Claim"} {
		b.Run(fmt.Sprintf("%s-%d", mode, tasks), func(b *testing.B) {
			s, epoch, reqs := benchTasks(b, tasks)
			var err error
			round := func(n int) {
				for i := range reqs {
					reqs[i].Tick = epoch.Add(time.Duration(n) * time.Millisecond)
				}
				var res []lock.ClaimResult
				if mode == "ClaimBatch" {
					if res, err = s.ClaimBatch(ctx, reqs); err != nil {
						b.Fatal(err)
					}
				} else {
					for _, req := range reqs {
						r, err := s.Claim(ctx, req)
						if err != nil {
							b.Fatal(err)
						}
						res = append(res, r)
					}
				}
				for i, r := range res {
					if r.Outcome != lock.Claimed {
						b.Fatalf("claim %d: %v", i, r.Outcome)
					}
				}
				b.StopTimer()
				if _, err := s.ReleaseAll(ctx, "bench"); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			round(0) // makes the tasks' rows
			b.ReportAllocs()
			for n := 1; b.Loop(); n++ {
				round(n)
			}
			b.ReportMetric(float64(tasks*b.N)/b.Elapsed().Seconds(), "claims/s")
		})
	}
}

// BenchmarkReleaseBatch releases 500 leases, each with its run's record, in
// one ReleaseBatch or in 500 ReleaseLeases; before each round, untimed, one
// ClaimBatch claims the next tick of the 500 tasks, a third under each
// policy.
func BenchmarkReleaseBatch(b *testing.B) {
	const tasks = 500
	for _, mode := range []string{"ReleaseBatch", "ReleaseLease"} {
		b.Run(fmt.Sprintf("%s-%d", mode, tasks), func(b *testing.B) {
			s, epoch, reqs := benchTasks(b, tasks)
			ends := make([]lock.LeaseEnd, tasks)
			round := func(n int) {
				b.StopTimer()
				for i := range reqs {
					reqs[i].Tick = epoch.Add(time.Duration(n) * time.Millisecond)
				}
				for i, l := range locktest.ClaimAll(b, s, reqs) {
					ends[i] = lock.LeaseEnd{Lease: l, Run: &lock.RunRecord{Tick: reqs[i].Tick, Result: lock.RunSucceeded, Duration: time.Second}}
				}
				b.StartTimer()
				var (
					released []bool
					err      error
				)
				if mode == "ReleaseBatch" {
					if released, err = s.ReleaseBatch(ctx, ends); err != nil {
						b.Fatal(err)
					}
				} else {
					for _, e := range ends {
						ok, err := s.ReleaseLease(ctx, e.Lease, e.Run)
						if err != nil {
							b.Fatal(err)
						}
						released = append(released, ok)
					}
				}
				for i, ok := range released {
					if !ok {
						b.Fatalf("release %d: not released", i)
					}
				}
			}
			round(0) // makes the tasks' rows, prepares the statements
			b.ReportAllocs()
			for n := 1; b.Loop(); n++ {
				round(n)
			}
			b.ReportMetric(float64(tasks*b.N)/b.Elapsed().Seconds(), "releases/s")
		})
	}
}

// BenchmarkRenewBatch renews 500 leases, of 500 tasks, a third under each
// policy, in one RenewBatch or in 500 RenewLeases, as a replica's running
// tasks renew together every renew interval.
func BenchmarkRenewBatch(b *testing.B) {
	const tasks = 500
	for _, mode := range []string{"RenewBatch", "RenewLease"} {
		b.Run(fmt.Sprintf("%s-%d", mode, tasks), func(b *testing.B) {
			s, epoch, reqs := benchTasks(b, tasks)
			for i := range reqs {
				reqs[i].Tick = epoch
			}
			leases := locktest.ClaimAll(b, s, reqs)
			round := func() {
				var (
					renewed []bool
					err     error
				)
				if mode == "RenewBatch" {
					if renewed, err = s.RenewBatch(ctx, leases, time.Minute); err != nil {
						b.Fatal(err)
					}
				} else {
					for _, l := range leases {
						ok, err := s.RenewLease(ctx, l, time.Minute)
						if err != nil {
							b.Fatal(err)
						}
						renewed = append(renewed, ok)
					}
				}
				for i, ok := range renewed {
					if !ok {
						b.Fatalf("renewal %d: not renewed", i)
					}
				}
			}
			round() // prepares the statements
			b.ReportAllocs()
			for b.Loop() {
				round()
			}
			b.ReportMetric(float64(tasks*b.N)/b.Elapsed().Seconds(), "renewals/s")
		})
	}
}

// benchTasks returns a store, its epoch, and requests for the next tick of
// n tasks, a third under each policy, without their Tick.
func benchTasks(b *testing.B, n int) (*pglock.Backend, time.Time, []lock.ClaimRequest) {
	s := newBackend(b, pgtest.Pool(b))
	epoch, _, err := s.Epoch(ctx)
	if err != nil {
		b.Fatal(err)
	}
	reqs := make([]lock.ClaimRequest, n)
	for i := range reqs {
		reqs[i] = lock.ClaimRequest{Task: fmt.Sprint("bench-", i), Owner: "bench", TTL: time.Minute, Policy: lock.Policy(i % 3)}
	}
	return s, epoch, reqs
}
