package pglock_test

import (
	"testing"

	"github.com/beatlock/beat/internal/pgtest"
	"github.com/beatlock/beat/lock/locktest"
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
