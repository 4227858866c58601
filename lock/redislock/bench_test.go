package redislock_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/beatlock/beat/internal/redistest"
	"github.com/beatlock/beat/lock/locktest"
	"github.com/beatlock/beat/lock/redislock"
)

func realBackend(b *testing.B) *redislock.Backend {
	c := redistest.Client(b)
	prefix := redistest.Prefix(b, c)
	backdate(b, c, prefix)
	return redislock.New(c, redislock.WithKeyPrefix(prefix))
}

func miniBackend(b *testing.B) *redislock.Backend {
	m := miniredis.RunT(b)
	c := redis.NewClient(&redis.Options{Addr: m.Addr()})
	b.Cleanup(func() { c.Close() })
	return redislock.New(c)
}

func BenchmarkAcquireRelease(b *testing.B) {
	b.Run("redis", func(b *testing.B) { locktest.BenchmarkAcquireRelease(b, realBackend(b)) })
	b.Run("miniredis", func(b *testing.B) { locktest.BenchmarkAcquireRelease(b, miniBackend(b)) })
}

func BenchmarkClaim(b *testing.B) {
	b.Run("redis", func(b *testing.B) { locktest.BenchmarkClaim(b, realBackend(b)) })
}

func BenchmarkClaimBatch(b *testing.B) {
	for _, n := range []int{1, 100, 500} {
		b.Run(fmt.Sprintf("redis/n=%d", n), func(b *testing.B) { locktest.BenchmarkClaimBatch(b, realBackend(b), n) })
	}
}

func BenchmarkRenewLease(b *testing.B) {
	b.Run("redis", func(b *testing.B) { locktest.BenchmarkRenewLease(b, realBackend(b)) })
}

func BenchmarkRenewBatch(b *testing.B) {
	for _, n := range []int{1, 100, 500} {
		b.Run(fmt.Sprintf("redis/n=%d", n), func(b *testing.B) { locktest.BenchmarkRenewBatch(b, realBackend(b), n) })
	}
}

// BenchmarkReleaseAll frees 3 locks with 0 and with 100,000 unrelated keys
// in the same keyspace; the two should cost the same.
func BenchmarkReleaseAll(b *testing.B) {
	for _, unrelated := range []int{0, 100_000} {
		b.Run(fmt.Sprintf("keyspace=%d", unrelated), func(b *testing.B) {
			c := redistest.Client(b)
			prefix := redistest.Prefix(b, c)
			pipe := c.Pipeline()
			for i := range unrelated {
				pipe.Set(ctx, fmt.Sprintf("%slock:other-%d", prefix, i), "other", time.Hour)
			}
			if _, err := pipe.Exec(ctx); err != nil {
				b.Fatal(err)
			}
			s := redislock.New(c, redislock.WithKeyPrefix(prefix))
			for b.Loop() {
				b.StopTimer()
				for _, k := range []string{"k1", "k2", "k3"} {
					if ok, err := s.TryAcquire(ctx, k, "a", time.Minute); !ok || err != nil {
						b.Fatal(ok, err)
					}
				}
				b.StartTimer()
				if n, err := s.ReleaseAll(ctx, "a"); n != 3 || err != nil {
					b.Fatal(n, err)
				}
			}
		})
	}
}
