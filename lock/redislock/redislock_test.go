package redislock_test

import (
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/beatlock/beat/internal/redistest"
	"github.com/beatlock/beat/lock"
	"github.com/beatlock/beat/lock/locktest"
	"github.com/beatlock/beat/lock/redislock"
)

func newMini(t *testing.T) (*miniredis.Miniredis, *redis.Client) {
	t.Helper()
	m := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { c.Close() })
	return m, c
}

// unreachable is a store whose client is already closed.
func unreachable(t *testing.T) lock.Store {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	c.Close()
	return redislock.New(c)
}

func TestConformanceMiniredis(t *testing.T) {
	locktest.Run(t, locktest.Harness{
		New: func(t *testing.T) (lock.Store, func(time.Duration)) {
			m, c := newMini(t)
			// The store's clock is miniredis's own: TIME as well as the
			// keys' TTLs move with advance alone, so that a tick ages as
			// a lock runs down.
			var mu sync.Mutex
			now := time.Now()
			m.SetTime(now)
			backdate(t, c, redislock.DefaultKeyPrefix)
			return redislock.New(c), func(d time.Duration) {
				mu.Lock()
				defer mu.Unlock()
				now = now.Add(d)
				m.SetTime(now)
				m.FastForward(d)
			}
		},
		TTL:         time.Second,
		Unreachable: unreachable,
	})
}

func TestConformanceRedis(t *testing.T) {
	c := redistest.Client(t)
	locktest.Run(t, locktest.Harness{
		New: func(t *testing.T) (lock.Store, func(time.Duration)) {
			prefix := redistest.Prefix(t, c)
			backdate(t, c, prefix)
			return redislock.New(c, redislock.WithKeyPrefix(prefix)), time.Sleep
		},
		TTL:         time.Second,
		Unreachable: unreachable,
	})
}
