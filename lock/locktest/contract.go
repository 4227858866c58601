package locktest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beatlock/beat/lock"
)

// contract checks each row of the table in the lock package's doc that needs
// no passing of time.
func (s *suite) contract(t *testing.T) {
	rows := []struct {
		name string
		run  func(c checker)
	}{
		{"acquire free key", func(c checker) {
			c.held("k", "")
			c.acquire("k", "a", long, true)
			c.held("k", "a")
		}},
		{"acquire held by same owner", func(c checker) {
			c.acquire("k", "a", long, true)
			c.acquire("k", "a", long, true)
			c.held("k", "a")
		}},
		{"acquire held by another owner", func(c checker) {
			c.acquire("k", "a", long, true)
			c.acquire("k", "b", long, false)
			c.held("k", "a")
		}},
		{"release by owner", func(c checker) {
			c.acquire("k", "a", long, true)
			c.release("k", "a", true)
			c.held("k", "")
			c.acquire("k", "b", long, true)
		}},
		{"release by non-owner", func(c checker) {
			c.acquire("k", "a", long, true)
			c.release("k", "b", false)
			c.held("k", "a")
		}},
		{"release missing", func(c checker) {
			c.release("k", "a", false)
			c.held("k", "")
		}},
		{"release twice", func(c checker) {
			c.acquire("k", "a", long, true)
			c.release("k", "a", true)
			c.release("k", "a", false)
		}},
		{"renew by owner", func(c checker) {
			c.acquire("k", "a", long, true)
			c.renew("k", "a", long, true)
			c.held("k", "a")
		}},
		{"renew by non-owner", func(c checker) {
			c.acquire("k", "a", long, true)
			c.renew("k", "b", long, false)
			c.held("k", "a")
		}},
		{"renew missing does not create", func(c checker) {
			c.renew("k", "a", long, false)
			c.held("k", "")
		}},
		{"keys are independent", func(c checker) {
			c.acquire("k1", "a", long, true)
			c.acquire("k2", "b", long, true)
			c.release("k1", "a", true)
			c.held("k1", "")
			c.held("k2", "b")
		}},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) { r.run(s.checker(t)) })
	}
}

// expiry checks the rows that depend on time passing, on the store's clock.
func (s *suite) expiry(t *testing.T) {
	t.Parallel() // waits for the real clock on some backends
	ttl := s.h.TTL
	// Steps of 3/5 TTL: two of them pass a TTL, one does not, and the
	// margins (1/5 TTL) absorb round trips on a real server.
	step := ttl * 3 / 5
	rows := []struct {
		name string
		run  func(c checker)
	}{
		{"lock expires", func(c checker) {
			c.acquire("k", "a", ttl, true)
			c.wait(step)
			c.held("k", "a")
			c.wait(step)
			c.held("k", "")
		}},
		{"expired lock can be taken by another owner", func(c checker) {
			c.acquire("k", "a", ttl, true)
			c.wait(2 * step)
			c.acquire("k", "b", long, true)
			c.held("k", "b")
			c.release("k", "a", false)
			c.renew("k", "a", long, false)
			c.held("k", "b")
		}},
		{"re-acquire by same owner resets expiry", func(c checker) {
			c.acquire("k", "a", ttl, true)
			c.wait(step)
			c.acquire("k", "a", ttl, true)
			c.wait(step)
			c.held("k", "a") // 6/5 TTL after the first acquire
			c.wait(step)
			c.held("k", "")
		}},
		{"renew resets expiry", func(c checker) {
			c.acquire("k", "a", ttl, true)
			c.wait(step)
			c.renew("k", "a", ttl, true)
			c.wait(step)
			c.held("k", "a")
			c.wait(step)
			c.held("k", "")
		}},
		{"renew can shorten", func(c checker) {
			c.acquire("k", "a", long, true)
			c.renew("k", "a", ttl, true)
			c.wait(2 * step)
			c.held("k", "")
		}},
		{"renew never revives an expired lock", func(c checker) {
			c.acquire("k", "a", ttl, true)
			c.wait(2 * step)
			c.renew("k", "a", long, false)
			c.held("k", "")
		}},
		{"release of an expired lock is false", func(c checker) {
			c.acquire("k", "a", ttl, true)
			c.wait(2 * step)
			c.release("k", "a", false)
			c.held("k", "")
		}},
		{"acquire after expiry starts a fresh ttl", func(c checker) {
			c.acquire("k", "a", ttl, true)
			c.wait(2 * step)
			c.acquire("k", "a", ttl, true)
			c.wait(step)
			c.held("k", "a")
		}},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			t.Parallel() // each row sleeps on a real server; they share nothing
			r.run(s.checker(t))
		})
	}
}

func (s *suite) releaseAll(t *testing.T) {
	t.Parallel()
	t.Run("frees only the owner's live locks", func(t *testing.T) {
		c := s.checker(t)
		c.acquire("expired", "a", s.h.TTL, true)
		c.wait(s.h.TTL * 6 / 5)
		for _, k := range []string{"a1", "a2", "a3"} {
			c.acquire(k, "a", long, true)
		}
		c.acquire("b1", "b", long, true)
		c.acquire("b2", "b", long, true)
		c.acquire("released", "a", long, true)
		c.release("released", "a", true)
		c.releaseAll("a", 3)
		for _, k := range []string{"a1", "a2", "a3", "expired", "released"} {
			c.held(k, "")
		}
		c.held("b1", "b")
		c.held("b2", "b")
		c.releaseAll("a", 0)
		c.releaseAll("nobody", 0)
	})
	t.Run("key re-acquired by another owner after expiry", func(t *testing.T) {
		c := s.checker(t)
		c.acquire("k", "a", s.h.TTL, true)
		c.wait(s.h.TTL * 6 / 5)
		c.acquire("k", "b", long, true)
		c.releaseAll("a", 0)
		c.held("k", "b")
		c.releaseAll("b", 1)
		c.held("k", "")
	})
	t.Run("owner can lock again afterwards", func(t *testing.T) {
		c := s.checker(t)
		c.acquire("k", "a", long, true)
		c.releaseAll("a", 1)
		c.acquire("k", "a", long, true)
		c.held("k", "a")
		c.releaseAll("a", 1)
	})
}

func (s *suite) invalidArguments(t *testing.T) {
	c := s.checker(t)
	st, ctx := c.s, bg()
	calls := []struct {
		name string
		want error
		call func() (bool, error)
	}{
		{"TryAcquire empty key", lock.ErrInvalidKey, func() (bool, error) { return st.TryAcquire(ctx, "", "o", time.Second) }},
		{"TryAcquire empty owner", lock.ErrInvalidOwner, func() (bool, error) { return st.TryAcquire(ctx, "k", "", time.Second) }},
		{"TryAcquire zero ttl", lock.ErrInvalidTTL, func() (bool, error) { return st.TryAcquire(ctx, "k", "o", 0) }},
		{"TryAcquire negative ttl", lock.ErrInvalidTTL, func() (bool, error) { return st.TryAcquire(ctx, "k", "o", -time.Second) }},
		{"TryAcquire sub-millisecond ttl", lock.ErrInvalidTTL, func() (bool, error) { return st.TryAcquire(ctx, "k", "o", time.Millisecond-1) }},
		{"Release empty key", lock.ErrInvalidKey, func() (bool, error) { return st.Release(ctx, "", "o") }},
		{"Release empty owner", lock.ErrInvalidOwner, func() (bool, error) { return st.Release(ctx, "k", "") }},
		{"Renew empty key", lock.ErrInvalidKey, func() (bool, error) { return st.Renew(ctx, "", "o", time.Second) }},
		{"Renew empty owner", lock.ErrInvalidOwner, func() (bool, error) { return st.Renew(ctx, "k", "", time.Second) }},
		{"Renew zero ttl", lock.ErrInvalidTTL, func() (bool, error) { return st.Renew(ctx, "k", "o", 0) }},
		{"IsLocked empty key", lock.ErrInvalidKey, func() (bool, error) { return st.IsLocked(ctx, "") }},
		{"Owner empty key", lock.ErrInvalidKey, func() (bool, error) { _, ok, err := st.Owner(ctx, ""); return ok, err }},
		{"ReleaseAll empty owner", lock.ErrInvalidOwner, func() (bool, error) { n, err := st.ReleaseAll(ctx, ""); return n > 0, err }},
		{"Claim empty task", lock.ErrInvalidKey, func() (bool, error) {
			r, err := st.Claim(ctx, lock.ClaimRequest{Tick: time.Unix(60, 0), Owner: "o", TTL: time.Second})
			return r.Outcome == lock.Claimed, err
		}},
		{"Claim empty owner", lock.ErrInvalidOwner, func() (bool, error) {
			r, err := st.Claim(ctx, lock.ClaimRequest{Task: "t", Tick: time.Unix(60, 0), TTL: time.Second})
			return r.Outcome == lock.Claimed, err
		}},
		{"Claim zero ttl", lock.ErrInvalidTTL, func() (bool, error) {
			r, err := st.Claim(ctx, lock.ClaimRequest{Task: "t", Tick: time.Unix(60, 0), Owner: "o"})
			return r.Outcome == lock.Claimed, err
		}},
		{"RenewLease zero ttl", lock.ErrInvalidTTL, func() (bool, error) {
			return st.RenewLease(ctx, lock.Lease{Task: "t", Key: "t", Owner: "o", Token: 1}, 0)
		}},
		{"ReleaseLease empty owner", lock.ErrInvalidOwner, func() (bool, error) {
			return st.ReleaseLease(ctx, lock.Lease{Task: "t", Key: "t", Token: 1}, nil)
		}},
		{"RenewLease empty key", lock.ErrInvalidKey, func() (bool, error) {
			return st.RenewLease(ctx, lock.Lease{Task: "t", Owner: "o", Token: 1}, time.Second)
		}},
		{"RenewBatch zero ttl", lock.ErrInvalidTTL, func() (bool, error) {
			r, err := lock.RenewBatch(ctx, st, []lock.Lease{{Task: "t", Key: "t", Owner: "o", Token: 1}}, 0)
			return len(r) > 0, err
		}},
		{"RenewBatch empty owner", lock.ErrInvalidOwner, func() (bool, error) {
			r, err := lock.RenewBatch(ctx, st, []lock.Lease{{Task: "t", Key: "t", Owner: "o", Token: 1}, {Task: "t", Key: "t", Token: 1}}, time.Second)
			return len(r) > 0, err
		}},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.call()
			if !errors.Is(err, c.want) || got {
				t.Fatalf("got %v, %v; want false and an error wrapping %v", got, err, c.want)
			}
		})
	}
	// Nothing above may have left a lock behind.
	c.held("k", "")
}

// oddStrings are keys and owners that break naive key building, quoting or
// hash-slot handling.
var oddStrings = []string{
	"with space",
	"a:b:c",
	"glob*?[x]",
	"{brace}",
	"}{",
	"{",
	"line\nbreak",
	"tab\there",
	"ünïcødé 日本語 🔒",
	"quote\"and'apostrophe",
	"back\\slash",
	"%s %d",
	"nul\x00byte",
	strings.Repeat("long", 256),
}

func (s *suite) arbitraryKeys(t *testing.T) {
	for i, str := range oddStrings {
		t.Run(fmt.Sprintf("%d", i), func(t *testing.T) {
			c := s.checker(t)
			key, owner := str, str
			other := "other " + str
			c.acquire(key, owner, long, true)
			c.held(key, owner)
			c.acquire(key, other, long, false)
			c.renew(key, owner, long, true)
			c.release(key, other, false)
			c.release(key, owner, true)
			c.held(key, "")
			c.acquire(key, owner, long, true)
			c.acquire(key+"2", owner, long, true)
			c.acquire("plain", other, long, true)
			c.releaseAll(owner, 2)
			c.held(key, "")
			c.held("plain", other)

			res := c.claimOK(lock.ClaimRequest{Task: str, Tick: c.tick(1), Owner: owner, TTL: long})
			c.held(str, owner)
			c.claimOutcome(lock.ClaimRequest{Task: str, Tick: c.tick(2), Owner: other, TTL: long}, lock.Busy)
			c.releaseLease(res.Lease, true)
		})
	}
}

func (s *suite) cancelledContext(t *testing.T) {
	c := s.checker(t)
	c.acquire("held", "a", long, true)
	ctx, cancel := context.WithCancel(bg())
	cancel()
	checkFailures(t, c.s, ctx)
	// A cancelled call must not have changed anything.
	c.held("held", "a")
	c.held("k", "")
}

func (s *suite) unreachable(t *testing.T) {
	checkFailures(t, s.h.Unreachable(t), bg())
}

// checkFailures asserts that every call on st with ctx fails with an error
// and never reports success.
func checkFailures(t *testing.T, st lock.Store, ctx context.Context) {
	t.Helper()
	lease := lock.Lease{Task: "held", Key: "held", Owner: "a", Token: 1}
	calls := map[string]func() (bool, error){
		"TryAcquire": func() (bool, error) { return st.TryAcquire(ctx, "k", "a", long) },
		"Release":    func() (bool, error) { return st.Release(ctx, "held", "a") },
		"Renew":      func() (bool, error) { return st.Renew(ctx, "held", "a", long) },
		"IsLocked":   func() (bool, error) { return st.IsLocked(ctx, "held") },
		"Owner": func() (bool, error) {
			o, ok, err := st.Owner(ctx, "held")
			return ok || o != "", err
		},
		"ReleaseAll": func() (bool, error) { n, err := st.ReleaseAll(ctx, "a"); return n > 0, err },
		"Claim": func() (bool, error) {
			r, err := st.Claim(ctx, lock.ClaimRequest{Task: "t", Tick: time.Unix(60, 0), Owner: "a", TTL: long})
			return r.Outcome != 0, err
		},
		"RenewLease": func() (bool, error) { return st.RenewLease(ctx, lease, long) },
		"RenewBatch": func() (bool, error) {
			r, err := lock.RenewBatch(ctx, st, []lock.Lease{lease, {Task: "t", Key: "t", Owner: "a", Token: 2}}, long)
			return len(r) > 0, err
		},
		"ReleaseLease": func() (bool, error) { return st.ReleaseLease(ctx, lease, nil) },
		"ReleaseLease with a run": func() (bool, error) {
			return st.ReleaseLease(ctx, lease, &lock.RunRecord{Tick: time.Unix(60, 0), Result: lock.RunSucceeded})
		},
	}
	if in, ok := st.(lock.Inspector); ok {
		calls["Tasks"] = func() (bool, error) { recs, _, err := in.Tasks(ctx); return len(recs) > 0, err }
		calls["ForceRelease"] = func() (bool, error) { return in.ForceRelease(ctx, "held", long) }
		calls["Forget"] = func() (bool, error) { return false, in.Forget(ctx, "held", 0) }
		calls["Forget with a minimum age"] = func() (bool, error) { return false, in.Forget(ctx, "held", long) }
	}
	for name, call := range calls {
		got, err := call()
		if err == nil || got {
			t.Errorf("%s = %v, %v; want false/empty and an error", name, got, err)
		}
	}
}

// contention has 8 goroutines take turns on one key, 200 times each. Inside
// the critical section each one checks that no one else is in it.
func (s *suite) contention(t *testing.T) {
	const workers, rounds = 8, 200
	if testing.Short() {
		t.Skip("contention takes a few seconds against a real server; skipped in -short")
	}
	st, _ := s.h.New(t)
	var inside atomic.Int32
	var count atomic.Int64
	var overlaps atomic.Int64
	ctx, cancel := context.WithTimeout(bg(), 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := fmt.Sprintf("worker-%d", w)
			for range rounds {
				for {
					ok, err := st.TryAcquire(ctx, "contended", owner, long)
					if err != nil {
						errs <- fmt.Errorf("%s: TryAcquire: %w", owner, err)
						return
					}
					if ok {
						break
					}
					// Back off a little, so that losers spinning on a slow
					// store (miniredis runs Lua in Go) don't starve the holder.
					time.Sleep(50 * time.Microsecond)
				}
				if !inside.CompareAndSwap(0, 1) {
					overlaps.Add(1)
				}
				count.Add(1)
				inside.Store(0)
				ok, err := st.Release(ctx, "contended", owner)
				if err != nil || !ok {
					errs <- fmt.Errorf("%s: Release = %v, %v; want true", owner, ok, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := overlaps.Load(); n != 0 {
		t.Errorf("%d times two holders were inside the critical section at once", n)
	}
	if n := count.Load(); n != workers*rounds {
		t.Errorf("critical section entered %d times; want %d", n, workers*rounds)
	}
}
