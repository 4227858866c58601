package main

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bsm "github.com/bsm/redislock"
	"github.com/go-redsync/redsync/v4"
	"github.com/go-redsync/redsync/v4/redis/goredis/v9"
	"github.com/redis/go-redis/v9"

	"github.com/beatlock/beat/lock"
	"github.com/beatlock/beat/lock/redislock"
)

// The lock pairs measured: take a lock, then free it, on one key per caller.
const (
	pairAcquire = "beat TryAcquire+Release"
	pairClaim   = "beat Claim+ReleaseLease"
	pairBSM     = "bsm/redislock Obtain+Release"
	pairRedsync = "redsync Lock+Unlock"
	pairBench   = "redis-benchmark EVAL SET NX PX"
)

var pairImpls = []string{pairAcquire, pairClaim, pairBSM, pairRedsync, pairBench}

// measurePair runs p.Conc callers, each taking and freeing a lock of its own
// in a loop, for p.Duration; Metrics["pairs_per_s"].
func measurePair(ctx context.Context, p Params) (Result, error) {
	if err := flush(ctx, p.Redis); err != nil {
		return Result{}, err
	}
	hook := &counter{}
	// One connection per caller at least, as redis-benchmark has: the pool
	// is not what is measured.
	c := newClient(p.Redis, max(p.Conc, 20), hook)
	defer c.Close()
	if err := warm(ctx, c); err != nil {
		return Result{}, err
	}
	pair, err := pairFunc(ctx, p.Impl, c)
	if err != nil {
		return Result{}, err
	}
	// Each caller's pair and its count, kept from the warm-up on, so that
	// claims go on to later ticks.
	nexts := make([]func(int) error, p.Conc)
	counts := make([]int, p.Conc)
	for w := range nexts {
		nexts[w] = pair(w)
	}
	run := func(d time.Duration) (int64, time.Duration, error) {
		var n atomic.Int64
		var firstErr error
		var once sync.Once
		stop := make(chan struct{})
		var wg sync.WaitGroup
		start := time.Now()
		for w := range p.Conc {
			wg.Go(func() {
				for ; ; counts[w]++ {
					select {
					case <-stop:
						return
					default:
					}
					if err := nexts[w](counts[w]); err != nil {
						once.Do(func() { firstErr = err })
						return
					}
					n.Add(1)
				}
			})
		}
		time.Sleep(d)
		close(stop)
		wg.Wait()
		return n.Load(), time.Since(start), firstErr
	}
	// Warm-up: scripts loaded, connections open, the runtime warm.
	if _, _, err := run(p.Lead); err != nil {
		return Result{}, err
	}
	hook.reset()
	n, took, err := run(p.Duration)
	if err != nil {
		return Result{}, err
	}
	return Result{Metrics: map[string]float64{
		"pairs_per_s":    float64(n) / took.Seconds(),
		"trips_per_pair": float64(hook.trips.Load()) / float64(n),
	}}, nil
}

// pairFunc returns, for caller w, the function that takes and frees its
// lock once (i counts the caller's pairs).
func pairFunc(ctx context.Context, impl string, c *redis.Client) (func(w int) func(i int) error, error) {
	const ttl = time.Minute
	switch impl {
	case pairAcquire:
		s := redislock.New(c, redislock.WithKeyPrefix("{pair}:"))
		return func(w int) func(int) error {
			key := "k" + strconv.Itoa(w)
			return func(int) error {
				if ok, err := s.TryAcquire(ctx, key, "bench", ttl); err != nil || !ok {
					return fmt.Errorf("TryAcquire = %v, %v", ok, err)
				}
				if ok, err := s.Release(ctx, key, "bench"); err != nil || !ok {
					return fmt.Errorf("Release = %v, %v", ok, err)
				}
				return nil
			}
		}, nil
	case pairClaim:
		s := redislock.New(c, redislock.WithKeyPrefix("{pair}:"))
		if err := backdate(ctx, c, "{pair}:"); err != nil {
			return nil, err
		}
		epoch, _, err := s.Epoch(ctx)
		if err != nil {
			return nil, err
		}
		return func(w int) func(int) error {
			task := "t" + strconv.Itoa(w)
			return func(i int) error {
				// Successive ticks of the caller's task, a millisecond apart,
				// all in the past (the epoch is three hours back).
				res, err := s.Claim(ctx, lock.ClaimRequest{Task: task, Tick: epoch.Add(time.Duration(i+1) * time.Millisecond),
					Owner: "bench", TTL: ttl, Session: "s1", MaxSkew: 2 * time.Second})
				if err != nil || res.Outcome != lock.Claimed {
					return fmt.Errorf("Claim = %v, %v", res.Outcome, err)
				}
				if ok, err := s.ReleaseLease(ctx, res.Lease, nil); err != nil || !ok {
					return fmt.Errorf("ReleaseLease = %v, %v", ok, err)
				}
				return nil
			}
		}, nil
	case pairBSM:
		l := bsm.New(c)
		return func(w int) func(int) error {
			key := "{pair}:bsm:k" + strconv.Itoa(w)
			return func(int) error {
				lk, err := l.Obtain(ctx, key, ttl, nil)
				if err != nil {
					return fmt.Errorf("Obtain: %w", err)
				}
				return lk.Release(ctx)
			}
		}, nil
	case pairRedsync:
		rs := redsync.New(goredis.NewPool(c))
		return func(w int) func(int) error {
			// One mutex per caller, locked and unlocked again and again;
			// one try, as for a cron job (gocron-redis-lock's usage).
			m := rs.NewMutex("{pair}:redsync:k"+strconv.Itoa(w), redsync.WithTries(1), redsync.WithExpiry(ttl))
			return func(int) error {
				if err := m.TryLockContext(ctx); err != nil {
					return fmt.Errorf("TryLock: %w", err)
				}
				if ok, err := m.UnlockContext(ctx); err != nil || !ok {
					return fmt.Errorf("Unlock = %v, %v", ok, err)
				}
				return nil
			}
		}, nil
	}
	return nil, fmt.Errorf("unknown lock pair %q", impl)
}

// benchScript is the one-key Lua script redis-benchmark runs as the
// reference: the least a Lua lock acquisition can do.
const benchScript = "return redis.call('SET', KEYS[1], 'v', 'NX', 'PX', 60000)"

// redisBenchmark runs redis-benchmark with clients connections for n
// requests of benchScript and returns requests per second.
func redisBenchmark(ctx context.Context, addr string, clients, n int) (float64, string, error) {
	host, port, _ := strings.Cut(addr, ":")
	args := []string{"-h", host, "-p", port, "-n", strconv.Itoa(n), "-c", strconv.Itoa(clients), "--csv",
		"EVAL", benchScript, "1", "{pair}:rb:key"}
	cmd := exec.CommandContext(ctx, "redis-benchmark", args...)
	out, err := cmd.Output()
	line := "redis-benchmark " + shellJoin(args)
	if err != nil {
		return 0, line, fmt.Errorf("redis-benchmark: %v", err)
	}
	// --csv: a header line, then "test","rps",...
	for l := range strings.Lines(string(out)) {
		f := strings.Split(strings.TrimSpace(l), "\",\"")
		if len(f) < 2 || !strings.HasPrefix(f[0], "\"EVAL") {
			continue
		}
		rps, err := strconv.ParseFloat(f[1], 64)
		if err == nil && rps > 0 {
			return rps, line, nil
		}
	}
	return 0, line, errors.New("redis-benchmark: no rate in its output: " + string(out))
}

// shellJoin quotes args for a shell, for printing.
func shellJoin(args []string) string {
	var b strings.Builder
	for i, a := range args {
		if i > 0 {
			b.WriteByte(' ')
		}
		if strings.ContainsAny(a, " '\"(){}$*") {
			b.WriteString("\"" + strings.ReplaceAll(a, "\"", "\\\"") + "\"")
		} else {
			b.WriteString(a)
		}
	}
	return b.String()
}
