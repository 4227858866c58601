package memlock_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beatlock/beat/clock/clocktest"
	"github.com/beatlock/beat/lock"
	"github.com/beatlock/beat/lock/locktest"
	"github.com/beatlock/beat/lock/memlock"
)

// backdated returns a backend on clk whose epoch lies three hours before
// the clock's reading, as locktest.Harness.New wants.
func backdated(clk *clocktest.Fake) *memlock.Backend {
	clk.Advance(-3 * time.Hour)
	b := memlock.New(memlock.WithClock(clk.Now))
	clk.Advance(3 * time.Hour)
	return b
}

func TestConformance(t *testing.T) {
	var mu sync.Mutex
	clocks := map[lock.Store]*clocktest.Fake{}
	locktest.Run(t, locktest.Harness{
		New: func(t *testing.T) (lock.Store, func(time.Duration)) {
			clk := clocktest.New(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC))
			b := backdated(clk)
			mu.Lock()
			clocks[b] = clk
			mu.Unlock()
			return b, clk.Advance
		},
		TTL: time.Second,
		StepBack: func(s lock.Store, d time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			clocks[s].Advance(-d)
		},
	})
}

func TestRealClock(t *testing.T) {
	// The default clock is the system's; a short real TTL shows it is used.
	// (Its epoch is set back through an offset clock read only at New.)
	locktest.Run(t, locktest.Harness{
		New: func(t *testing.T) (lock.Store, func(time.Duration)) {
			var offset atomic.Int64
			offset.Store(int64(-3 * time.Hour))
			b := memlock.New(memlock.WithClock(func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }))
			offset.Store(0)
			return b, time.Sleep
		},
		TTL: time.Second,
	})
}

func TestEpochIsCreation(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC))
	b := memlock.New(memlock.WithClock(clk.Now))
	created := clk.Now()
	clk.Advance(time.Hour)
	epoch, now, err := b.Epoch(context.Background())
	if err != nil || !epoch.Equal(created) || !now.Equal(created.Add(time.Hour)) {
		t.Fatalf("Epoch = %v, %v, %v; want %v, %v", epoch, now, err, created, created.Add(time.Hour))
	}
	// A restarted process has a new store: the tick its predecessor ran
	// just before is refused, not run again.
	res, err := b.Claim(context.Background(), lock.ClaimRequest{Task: "t", Tick: created.Add(-time.Second), Owner: "a", TTL: time.Minute})
	if err != nil || res.Outcome != lock.StoreLost {
		t.Fatalf("Claim of a tick before the store was made = %v, %v; want store-lost", res.Outcome, err)
	}
}

func BenchmarkAcquireRelease(b *testing.B) { locktest.BenchmarkAcquireRelease(b, memlock.New()) }
func BenchmarkClaim(b *testing.B) {
	locktest.BenchmarkClaim(b, backdated(clocktest.New(time.Now().Add(24*time.Hour))))
}
