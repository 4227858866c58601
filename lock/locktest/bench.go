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
