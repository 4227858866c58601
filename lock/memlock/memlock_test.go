package memlock_test

import (
	"testing"
	"time"

	"github.com/beatlock/beat/clock/clocktest"
	"github.com/beatlock/beat/lock"
	"github.com/beatlock/beat/lock/locktest"
	"github.com/beatlock/beat/lock/memlock"
)

func TestConformance(t *testing.T) {
	locktest.Run(t, locktest.Harness{
		New: func(t *testing.T) (lock.Store, func(time.Duration)) {
			clk := clocktest.New(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC))
			return memlock.New(memlock.WithClock(clk.Now)), clk.Advance
		},
		TTL: time.Second,
	})
}

func TestRealClock(t *testing.T) {
	// The default clock is the system's; a short real TTL shows it is used.
	locktest.Run(t, locktest.Harness{
		New: func(t *testing.T) (lock.Store, func(time.Duration)) {
			return memlock.New(), time.Sleep
		},
		TTL: time.Second,
	})
}

func BenchmarkAcquireRelease(b *testing.B) { locktest.BenchmarkAcquireRelease(b, memlock.New()) }
func BenchmarkClaim(b *testing.B)          { locktest.BenchmarkClaim(b, memlock.New()) }
