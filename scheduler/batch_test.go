package scheduler_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beatlock/beat/lock"
	"github.com/beatlock/beat/scheduler"
	"github.com/beatlock/beat/tasks"
)

// batchSpy is a lock store that claims in batches, recording the size of
// each batch and counting lone claims; its first failBatches batches fail.
type batchSpy struct {
	lock.Store
	mu          sync.Mutex
	sizes       []int
	claims      atomic.Int64
	failBatches atomic.Int64
}

func (b *batchSpy) Claim(ctx context.Context, r lock.ClaimRequest) (lock.ClaimResult, error) {
	b.claims.Add(1)
	return b.Store.Claim(ctx, r)
}

func (b *batchSpy) ClaimBatch(ctx context.Context, reqs []lock.ClaimRequest) ([]lock.ClaimResult, error) {
	b.mu.Lock()
	b.sizes = append(b.sizes, len(reqs))
	b.mu.Unlock()
	if b.failBatches.Add(-1) >= 0 {
		return nil, errDown
	}
	return lock.ClaimBatch(ctx, b.Store, reqs)
}

func (b *batchSpy) batches() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := slices.Clone(b.sizes)
	slices.Sort(s)
	return s
}

// claimCounter counts the Claimed events per task.
type claimCounter struct {
	mu      sync.Mutex
	claimed map[string]int
	total   atomic.Int64
}

func (c *claimCounter) observe(ev scheduler.Event) {
	if ev.Kind != scheduler.Claimed {
		return
	}
	c.mu.Lock()
	c.claimed[ev.Task]++
	c.mu.Unlock()
	c.total.Add(1)
}

// wait waits until n ticks were claimed.
func (c *claimCounter) wait(t *testing.T, n int64) {
	t.Helper()
	deadline := time.Now().Add(hang)
	for c.total.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d ticks claimed; want %d", c.total.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestClaimsInBatches(t *testing.T) {
	rows := []struct {
		name        string
		tasks       int
		maxRuns     int
		failBatches int64
		// wantBatches are the batch sizes, sorted; wantAlone the lone claims.
		wantBatches []int
		wantAlone   int64
	}{
		{name: "ticks due together go out in batches of at most 500", tasks: 1200,
			wantBatches: []int{200, 500, 500}},
		{name: "one due tick is claimed alone", tasks: 1, wantAlone: 1},
		{name: "the ticks of a failed batch retry alone", tasks: 10, failBatches: 1,
			wantBatches: []int{10}, wantAlone: 10},
		{name: "a replica at max_concurrent_runs batches only what it has room for", tasks: 5, maxRuns: 3,
			wantBatches: []int{3}, wantAlone: 2},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			b := setup(t)
			spy := &batchSpy{Store: b.store}
			spy.failBatches.Store(r.failBatches)
			b.store = spy
			hold := make(chan struct{}) // runs return once it is closed
			var once sync.Once
			release := func() { once.Do(func() { close(hold) }) }
			t.Cleanup(release)
			ts := make([]scheduler.Task, r.tasks)
			for i := range ts {
				ts[i] = scheduler.Task{Name: fmt.Sprintf("task-%d", i), Schedule: every(t, "* * * * *"), StartingDeadline: 10 * time.Second,
					Func: func(ctx context.Context, _ tasks.Run) error {
						if r.maxRuns > 0 {
							<-hold
						}
						return nil
					}}
			}
			b.clock.Advance(30 * time.Second) // the 12:00 tick is past its starting deadline
			cc := &claimCounter{claimed: make(map[string]int)}
			b.start(t, ts, scheduler.WithObserver(cc.observe), scheduler.WithMaxConcurrentRuns(r.maxRuns))
			b.clock.Advance(30 * time.Second) // every tick due at once
			if r.failBatches > 0 {
				b.runClock(t, 10*time.Millisecond, func() bool { return cc.total.Load() < int64(r.tasks) })
			}
			if r.maxRuns > 0 {
				cc.wait(t, int64(r.maxRuns))
				if got := spy.claims.Load(); got != 0 {
					t.Errorf("%d lone claims while the replica was full; want none", got)
				}
				release()
			}
			cc.wait(t, int64(r.tasks))
			if got := spy.batches(); !slices.Equal(got, r.wantBatches) {
				t.Errorf("batch sizes %v; want %v", got, r.wantBatches)
			}
			if got := spy.claims.Load(); got != r.wantAlone {
				t.Errorf("%d lone claims; want %d", got, r.wantAlone)
			}
			cc.mu.Lock()
			defer cc.mu.Unlock()
			for task, n := range cc.claimed {
				if n != 1 {
					t.Errorf("%s claimed %d times", task, n)
				}
			}
			if len(cc.claimed) != r.tasks {
				t.Errorf("%d tasks claimed; want %d", len(cc.claimed), r.tasks)
			}
		})
	}
}

// renewSpy is a lock store that renews in batches, recording the size of
// each batch and counting lone renewals. Each batch takes a round trip's
// time, as with a store across a network, during which the next gathers.
type renewSpy struct {
	lock.Store
	mu    sync.Mutex
	sizes []int
	alone atomic.Int64
}

func (r *renewSpy) RenewLease(ctx context.Context, l lock.Lease, ttl time.Duration) (bool, error) {
	r.alone.Add(1)
	return r.Store.RenewLease(ctx, l, ttl)
}

func (r *renewSpy) RenewBatch(ctx context.Context, leases []lock.Lease, ttl time.Duration) ([]bool, error) {
	r.mu.Lock()
	r.sizes = append(r.sizes, len(leases))
	r.mu.Unlock()
	time.Sleep(2 * time.Millisecond)
	return lock.RenewBatch(ctx, r.Store, leases, ttl)
}

// TestRenewalsInBatches: the runs of a burst renew their leases together,
// in a few calls to the store, none alone, and every lease is renewed.
func TestRenewalsInBatches(t *testing.T) {
	const n = 700
	b := setup(t)
	spy := &renewSpy{Store: b.store}
	b.store = spy
	hold := make(chan struct{})
	t.Cleanup(func() { close(hold) })
	ts := make([]scheduler.Task, n)
	for i := range ts {
		ts[i] = scheduler.Task{Name: fmt.Sprintf("task-%d", i), Schedule: every(t, "* * * * *"), StartingDeadline: 10 * time.Second,
			Func: func(ctx context.Context, _ tasks.Run) error {
				select {
				case <-hold:
				case <-ctx.Done():
				}
				return nil
			}}
	}
	b.clock.Advance(30 * time.Second)
	cc := &claimCounter{claimed: make(map[string]int)}
	var renewed, lost atomic.Int64
	b.start(t, ts, scheduler.WithLease(30*time.Second, 10*time.Second), scheduler.WithObserver(func(ev scheduler.Event) {
		cc.observe(ev)
		switch ev.Kind {
		case scheduler.Renewed:
			renewed.Add(1)
		case scheduler.Lost:
			lost.Add(1)
		}
	}))
	b.clock.Advance(30 * time.Second) // every tick due at once
	cc.wait(t, n)
	b.clock.Advance(10 * time.Second) // every run's renewal due at once
	deadline := time.Now().Add(hang)
	for renewed.Load() < n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := renewed.Load(); got != n {
		t.Fatalf("%d leases renewed; want %d", got, n)
	}
	spy.mu.Lock()
	sizes := slices.Clone(spy.sizes)
	spy.mu.Unlock()
	sum := 0
	for _, size := range sizes {
		sum += size
		if size > 500 {
			t.Errorf("a batch of %d renewals; want at most 500", size)
		}
	}
	if sum < n || len(sizes) > 20 {
		t.Errorf("%d renewals in %d batches %v; want %d in a few", sum, len(sizes), sizes, n)
	}
	if got := spy.alone.Load(); got != 0 {
		t.Errorf("%d lone renewals; want none", got)
	}
	t.Logf("renewal batches: %v", sizes)
	if got := lost.Load(); got != 0 {
		t.Errorf("%d leases lost", got)
	}
}
