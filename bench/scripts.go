package main

import (
	"context"
	"fmt"
	"runtime"
	"time"

	bsm "github.com/bsm/redislock"
	"github.com/go-redsync/redsync/v4"
	"github.com/go-redsync/redsync/v4/redis/goredis/v9"

	"github.com/beatlock/beat/lock"
	"github.com/beatlock/beat/lock/redislock"
)

// measureScripts looks at what one lock operation costs, one at a time:
// the size of each of beat's scripts (sent in full once, when EVALSHA finds
// the script missing), the client's allocations per lock pair of beat and
// the peers, and the server's commands per claim (INFO commandstats).
func measureScripts(ctx context.Context, p Params) (Result, error) {
	if err := flush(ctx, p.Redis); err != nil {
		return Result{}, err
	}
	hook := &counter{}
	c := newClient(p.Redis, 0, hook)
	defer c.Close()
	admin := newClient(p.Redis, 1, nil)
	defer admin.Close()
	if err := admin.ScriptFlush(ctx).Err(); err != nil {
		return Result{}, err
	}
	const prefix = "{pair}:"
	if err := backdate(ctx, c, prefix); err != nil {
		return Result{}, err
	}
	s := redislock.New(c, redislock.WithKeyPrefix(prefix))
	met := map[string]float64{}
	size := func(name string, op func() error) error {
		hook.evalBytes.Store(0)
		if err := op(); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		met["script_bytes_"+name] = float64(hook.evalBytes.Load())
		return nil
	}
	epoch, _, err := s.Epoch(ctx)
	if err != nil {
		return Result{}, err
	}
	var lease lock.Lease
	ops := []struct {
		name string
		op   func() error
	}{
		{"try_acquire", func() error { _, err := s.TryAcquire(ctx, "k", "o", time.Minute); return err }},
		{"release", func() error { _, err := s.Release(ctx, "k", "o"); return err }},
		{"claim", func() error {
			res, err := s.Claim(ctx, lock.ClaimRequest{Task: "t", Tick: epoch.Add(time.Millisecond), Owner: "o", TTL: time.Minute})
			lease = res.Lease
			return err
		}},
		{"renew_lease", func() error { _, err := s.RenewLease(ctx, lease, time.Minute); return err }},
		{"release_lease", func() error { _, err := s.ReleaseLease(ctx, lease, nil); return err }},
	}
	for _, o := range ops {
		if err := size(o.name, o.op); err != nil {
			return Result{}, err
		}
	}
	// The peers' scripts, the same way.
	var held *bsm.Lock
	rs := redsync.New(goredis.NewPool(c)).NewMutex(prefix+"redsync", redsync.WithTries(1))
	peers := []struct {
		name string
		op   func() error
	}{
		{"bsm_obtain", func() error { l, err := bsm.New(c).Obtain(ctx, prefix+"bsm", time.Minute, nil); held = l; return err }},
		{"bsm_release", func() error { return held.Release(ctx) }},
		{"redsync_lock", func() error { return rs.TryLockContext(ctx) }},
		{"redsync_unlock", func() error { _, err := rs.UnlockContext(ctx); return err }},
	}
	for _, o := range peers {
		if err := size(o.name, o.op); err != nil {
			return Result{}, err
		}
	}

	// Allocations per pair, one caller, after a warm-up.
	const n = 2000
	for _, impl := range pairImpls[:4] {
		pair, err := pairFunc(ctx, impl, c)
		if err != nil {
			return Result{}, err
		}
		next := pair(1)
		for i := range 200 {
			if err := next(i); err != nil {
				return Result{}, err
			}
		}
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		for i := 200; i < 200+n; i++ {
			if err := next(i); err != nil {
				return Result{}, err
			}
		}
		runtime.ReadMemStats(&m1)
		met["allocs:"+impl] = float64(m1.Mallocs-m0.Mallocs) / n
		met["bytes:"+impl] = float64(m1.TotalAlloc-m0.TotalAlloc) / n
	}

	// The server's commands per claim and per lease release, on a task
	// that has a record, as in steady state.
	next := func() func(int) error {
		pair, _ := pairFunc(ctx, pairClaim, c)
		return pair(2)
	}()
	for i := range 10 {
		if err := next(i); err != nil {
			return Result{}, err
		}
	}
	before, err := readServer(ctx, admin)
	if err != nil {
		return Result{}, err
	}
	for i := 10; i < 10+n; i++ {
		if err := next(i); err != nil {
			return Result{}, err
		}
	}
	after, err := readServer(ctx, admin)
	if err != nil {
		return Result{}, err
	}
	cpu, cmds := after.since(before, n)
	met["server_us_per_claim_pair"] = cpu * 1e6 / n
	return Result{Metrics: met, Commands: cmds}, nil
}
