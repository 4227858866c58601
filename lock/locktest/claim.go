package locktest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/beatlock/beat/lock"
)

func (c checker) claim(req lock.ClaimRequest) lock.ClaimResult {
	c.t.Helper()
	res, err := c.s.Claim(bg(), req)
	if err != nil {
		c.t.Fatalf("Claim(%+v): %v", req, err)
	}
	return res
}

func (c checker) claimOutcome(req lock.ClaimRequest, want lock.Outcome) lock.ClaimResult {
	c.t.Helper()
	res := c.claim(req)
	if res.Outcome != want {
		c.t.Fatalf("Claim(%s @ %v by %q, %v) = %v; want %v", req.Task, req.Tick.UTC(), req.Owner, req.Policy, res.Outcome, want)
	}
	if want != lock.Claimed && res.Lease != (lock.Lease{}) {
		c.t.Fatalf("Claim outcome %v came with a lease %+v", res.Outcome, res.Lease)
	}
	return res
}

// claimOK claims and checks the lease it returns.
func (c checker) claimOK(req lock.ClaimRequest) lock.ClaimResult {
	c.t.Helper()
	res := c.claimOutcome(req, lock.Claimed)
	l := res.Lease
	if l.Task != req.Task || l.Owner != req.Owner || l.Key != lock.LeaseKey(req.Task, req.Tick, req.Policy) || l.Token == 0 {
		c.t.Fatalf("Claim(%+v) lease = %+v", req, l)
	}
	return res
}

func (c checker) renewLease(l lock.Lease, ttl time.Duration, want bool) {
	c.t.Helper()
	got, err := c.s.RenewLease(bg(), l, ttl)
	if err != nil || got != want {
		c.t.Fatalf("RenewLease(%+v) = %v, %v; want %v, nil", l, got, err, want)
	}
}

func (c checker) releaseLease(l lock.Lease, want bool) {
	c.t.Helper()
	got, err := c.s.ReleaseLease(bg(), l)
	if err != nil || got != want {
		c.t.Fatalf("ReleaseLease(%+v) = %v, %v; want %v, nil", l, got, err, want)
	}
}

// tick returns the n-th tick of a task that runs every minute.
func tick(n int) time.Time { return time.Date(2026, 11, 27, 12, n, 0, 0, time.UTC) }

func req(task string, n int, owner string, p lock.Policy) lock.ClaimRequest {
	return lock.ClaimRequest{Task: task, Tick: tick(n), Owner: owner, TTL: long, Policy: p}
}

func (s *suite) claim(t *testing.T) {
	rows := []struct {
		name string
		run  func(c checker)
	}{
		{"first claim locks the task", func(c checker) {
			res := c.claimOK(req("t", 1, "a", lock.Forbid))
			if !res.Previous.IsZero() {
				c.t.Errorf("Previous = %v on a task never claimed; want zero", res.Previous)
			}
			c.held("t", "a")
		}},
		{"a tick is claimed once", func(c checker) {
			first := c.claimOK(req("t", 1, "a", lock.Allow))
			for _, owner := range []string{"a", "b"} {
				res := c.claimOutcome(req("t", 1, owner, lock.Allow), lock.AlreadyClaimed)
				if !res.Previous.Equal(tick(1)) {
					c.t.Errorf("Previous = %v; want %v", res.Previous, tick(1))
				}
			}
			c.releaseLease(first.Lease, true)
			c.claimOutcome(req("t", 1, "b", lock.Forbid), lock.AlreadyClaimed)
		}},
		{"an older tick is already claimed", func(c checker) {
			c.claimOK(req("t", 5, "a", lock.Allow))
			c.claimOutcome(req("t", 4, "b", lock.Allow), lock.AlreadyClaimed)
			c.claimOutcome(req("t", 4, "b", lock.Replace), lock.AlreadyClaimed)
		}},
		{"ticks compare at millisecond precision", func(c checker) {
			c.claimOK(lock.ClaimRequest{Task: "t", Tick: tick(1).Add(400 * time.Microsecond), Owner: "a", TTL: long, Policy: lock.Allow})
			c.claimOutcome(lock.ClaimRequest{Task: "t", Tick: tick(1).Add(900 * time.Microsecond), Owner: "b", TTL: long, Policy: lock.Allow}, lock.AlreadyClaimed)
		}},
		{"tasks are independent", func(c checker) {
			c.claimOK(req("t1", 1, "a", lock.Forbid))
			c.claimOK(req("t2", 1, "b", lock.Forbid))
			c.held("t1", "a")
			c.held("t2", "b")
		}},
		{"forbid: busy while held, even by the same owner", func(c checker) {
			first := c.claimOK(req("t", 1, "a", lock.Forbid))
			c.claimOutcome(req("t", 2, "a", lock.Forbid), lock.Busy)
			c.claimOutcome(req("t", 2, "b", lock.Forbid), lock.Busy)
			c.held("t", "a")
			c.releaseLease(first.Lease, true)
			c.held("t", "")
			// Busy recorded nothing: tick 2 is still free.
			next := c.claimOK(req("t", 2, "b", lock.Forbid))
			if next.Lease.Token <= first.Lease.Token {
				c.t.Errorf("token %d after %d; want it to rise", next.Lease.Token, first.Lease.Token)
			}
			if !next.Previous.Equal(tick(1)) {
				c.t.Errorf("Previous = %v; want %v", next.Previous, tick(1))
			}
		}},
		{"forbid: a TryAcquire holder makes the task busy", func(c checker) {
			c.acquire("t", "operator", long, true)
			c.claimOutcome(req("t", 1, "a", lock.Forbid), lock.Busy)
		}},
		{"replace takes the lock from the holder", func(c checker) {
			old := c.claimOK(req("t", 1, "a", lock.Replace))
			cur := c.claimOK(req("t", 2, "b", lock.Replace))
			c.held("t", "b")
			c.renewLease(old.Lease, long, false)
			c.releaseLease(old.Lease, false)
			c.held("t", "b")
			c.renewLease(cur.Lease, long, true)
			c.releaseAll("a", 0)
			c.held("t", "b")
		}},
		{"replace by the same owner invalidates the older lease", func(c checker) {
			old := c.claimOK(req("t", 1, "a", lock.Replace))
			cur := c.claimOK(req("t", 2, "a", lock.Replace))
			c.renewLease(old.Lease, long, false)
			c.releaseLease(old.Lease, false)
			c.held("t", "a")
			c.releaseLease(cur.Lease, true)
			c.held("t", "")
		}},
		{"allow: overlapping runs hold a lock each", func(c checker) {
			r1 := c.claimOK(req("t", 1, "a", lock.Allow))
			r2 := c.claimOK(req("t", 2, "b", lock.Allow))
			r3 := c.claimOK(req("t", 3, "a", lock.Allow))
			c.held(r1.Lease.Key, "a")
			c.held(r2.Lease.Key, "b")
			c.renewLease(r1.Lease, long, true)
			c.releaseLease(r2.Lease, true)
			c.held(r2.Lease.Key, "")
			c.held(r3.Lease.Key, "a")
			c.releaseAll("a", 2)
		}},
		{"tokens rise in tick order across owners and policies", func(c checker) {
			var last uint64
			policies := []lock.Policy{lock.Forbid, lock.Allow, lock.Replace}
			for n := 1; n <= 9; n++ {
				res := c.claimOK(req("t", n, fmt.Sprintf("owner-%d", n%3), policies[n%3]))
				if res.Lease.Token <= last {
					c.t.Fatalf("tick %d: token %d after %d", n, res.Lease.Token, last)
				}
				last = res.Lease.Token
				c.releaseLease(res.Lease, true)
			}
		}},
		{"lease calls check the token", func(c checker) {
			res := c.claimOK(req("t", 1, "a", lock.Forbid))
			stale := res.Lease
			stale.Token--
			c.renewLease(stale, long, false)
			c.releaseLease(stale, false)
			c.held("t", "a")
			other := res.Lease
			other.Owner = "b"
			c.renewLease(other, long, false)
			c.releaseLease(other, false)
			c.held("t", "a")
		}},
		{"a retry by the same session gets its lease back", func(c checker) {
			c.claimOK(req("t", 1, "a", lock.Forbid))
			r := req("t", 2, "a", lock.Allow)
			r.Session = "process-1"
			// A second claim (a retry, its first answer lost) while the first
			// lock lives: the same lease, the same previous tick.
			first := c.claimOK(r)
			again := c.claimOK(r)
			if again.Lease != first.Lease || !again.Previous.Equal(tick(1)) {
				c.t.Errorf("retry = %+v; want lease %+v and previous %v", again, first.Lease, tick(1))
			}
			// Another session of the same owner (a restarted process) or
			// another owner: the tick is taken.
			other := r
			other.Session = "process-2"
			c.claimOutcome(other, lock.AlreadyClaimed)
			other = r
			other.Owner = "b"
			c.claimOutcome(other, lock.AlreadyClaimed)
			// Once released, the tick is not handed out again.
			c.releaseLease(first.Lease, true)
			c.claimOutcome(r, lock.AlreadyClaimed)
		}},
		{"a retry without a session is already claimed", func(c checker) {
			c.claimOK(req("t", 1, "a", lock.Forbid))
			c.claimOutcome(req("t", 1, "a", lock.Forbid), lock.AlreadyClaimed)
		}},
		{"a released lease is not revived by locking the key again", func(c checker) {
			for _, p := range []lock.Policy{lock.Forbid, lock.Allow} {
				res := c.claimOK(req("t-"+p.String(), 1, "a", p))
				c.releaseLease(res.Lease, true)
				c.acquire(res.Lease.Key, "a", long, true) // same owner, by TryAcquire
				c.renewLease(res.Lease, long, false)
				c.releaseLease(res.Lease, false)
				c.held(res.Lease.Key, "a")
			}
		}},
		{"a stale token is refused under allow too", func(c checker) {
			res := c.claimOK(req("t", 1, "a", lock.Allow))
			stale := res.Lease
			stale.Token--
			c.renewLease(stale, long, false)
			c.releaseLease(stale, false)
			c.held(res.Lease.Key, "a")
		}},
		{"release-all frees claimed locks", func(c checker) {
			c.claimOK(req("t1", 1, "a", lock.Forbid))
			c.claimOK(req("t2", 1, "a", lock.Allow))
			c.claimOK(req("t3", 1, "b", lock.Forbid))
			c.releaseAll("a", 2)
			c.held("t1", "")
			c.held("t3", "b")
			// The tick records stay.
			c.claimOutcome(req("t1", 1, "b", lock.Forbid), lock.AlreadyClaimed)
		}},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) { r.run(s.checker(t)) })
	}
}

func (s *suite) claimExpiry(t *testing.T) {
	t.Parallel()
	ttl := s.h.TTL
	claim := func(n int, owner string, p lock.Policy) lock.ClaimRequest {
		return lock.ClaimRequest{Task: "t", Tick: tick(n), Owner: owner, TTL: ttl, Policy: p}
	}
	rows := []struct {
		name string
		run  func(c checker)
	}{
		{"forbid: an expired lease frees the task", func(c checker) {
			old := c.claimOK(claim(1, "a", lock.Forbid))
			c.claimOutcome(claim(2, "b", lock.Forbid), lock.Busy)
			c.wait(ttl * 6 / 5)
			c.claimOK(claim(2, "b", lock.Forbid))
			c.renewLease(old.Lease, long, false)
			c.releaseLease(old.Lease, false)
			c.held("t", "b")
		}},
		{"a retry after the lease expired is already claimed", func(c checker) {
			r := claim(1, "a", lock.Forbid)
			r.Session = "process-1"
			c.claimOK(r)
			c.wait(ttl * 6 / 5)
			c.claimOutcome(r, lock.AlreadyClaimed)
		}},
		{"renewed lease outlives its first ttl", func(c checker) {
			res := c.claimOK(claim(1, "a", lock.Forbid))
			c.wait(ttl * 3 / 5)
			c.renewLease(res.Lease, ttl, true)
			c.wait(ttl * 3 / 5)
			c.held("t", "a")
			c.claimOutcome(claim(2, "b", lock.Forbid), lock.Busy)
			c.wait(ttl * 3 / 5)
			c.held("t", "")
		}},
		{"expired lease is never revived", func(c checker) {
			res := c.claimOK(claim(1, "a", lock.Forbid))
			c.wait(ttl * 6 / 5)
			c.renewLease(res.Lease, long, false)
			c.held("t", "")
			// Nor when its owner locks the key again.
			c.acquire("t", "a", ttl, true)
			c.renewLease(res.Lease, long, false)
			c.release("t", "a", true)
			// Not even once the same owner claims again.
			next := c.claimOK(claim(2, "a", lock.Forbid))
			c.renewLease(res.Lease, long, false)
			c.renewLease(next.Lease, long, true)
		}},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			t.Parallel()
			r.run(s.checker(t))
		})
	}
}

// claimContention has 8 replicas claim the same 50 ticks at once: each tick
// must be claimed exactly once, with tokens rising in tick order.
func (s *suite) claimContention(t *testing.T) {
	const replicas, ticks = 8, 50
	for _, p := range []lock.Policy{lock.Forbid, lock.Allow, lock.Replace} {
		t.Run(p.String(), func(t *testing.T) {
			st, _ := s.h.New(t)
			var mu sync.Mutex
			winners := make(map[int][]lock.Lease)
			var wg sync.WaitGroup
			for r := range replicas {
				wg.Add(1)
				go func() {
					defer wg.Done()
					owner := fmt.Sprintf("replica-%d", r)
					for n := range ticks {
						res, err := st.Claim(bg(), req("t", n, owner, p))
						if err != nil {
							t.Errorf("%s: Claim: %v", owner, err)
							return
						}
						if res.Outcome != lock.Claimed {
							continue
						}
						mu.Lock()
						winners[n] = append(winners[n], res.Lease)
						mu.Unlock()
						if p == lock.Forbid {
							// Free the task so the next tick can be claimed.
							if ok, err := st.ReleaseLease(bg(), res.Lease); err != nil || !ok {
								t.Errorf("%s: ReleaseLease = %v, %v", owner, ok, err)
							}
						}
					}
				}()
			}
			wg.Wait()
			var last uint64
			for n := range ticks {
				w := winners[n]
				if len(w) > 1 {
					t.Errorf("tick %d claimed %d times: %+v", n, len(w), w)
				}
				if len(w) == 1 {
					if w[0].Token <= last {
						t.Errorf("tick %d: token %d after %d", n, w[0].Token, last)
					}
					last = w[0].Token
				}
			}
			// Under Forbid a replica may find the task busy and lose a tick to
			// a slower peer's release; under Allow and Replace every tick is
			// taken by someone.
			if p != lock.Forbid && len(winners) != ticks {
				t.Errorf("%d of %d ticks claimed; want all", len(winners), ticks)
			}
		})
	}
}
