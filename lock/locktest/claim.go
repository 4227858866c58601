package locktest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/beatlock/beat/lock"
)

// tryClaim claims req through Claim, or in batch mode through a batch of
// one, which must answer as Claim does.
func (c checker) tryClaim(req lock.ClaimRequest) (lock.ClaimResult, error) {
	if !c.batch {
		return c.s.Claim(bg(), req)
	}
	res, err := c.claimBatch(req)
	if err != nil {
		return lock.ClaimResult{}, err
	}
	if len(res) != 1 {
		c.t.Fatalf("ClaimBatch of one claim answered %d results", len(res))
	}
	return res[0], nil
}

// claimBatch claims reqs in one batch; the store must be a BatchClaimer.
func (c checker) claimBatch(reqs ...lock.ClaimRequest) ([]lock.ClaimResult, error) {
	c.t.Helper()
	b, ok := c.s.(lock.BatchClaimer)
	if !ok {
		c.t.Fatalf("%T is not a lock.BatchClaimer; every store claims in batches", c.s)
	}
	res, err := b.ClaimBatch(bg(), reqs)
	if err == nil && len(res) != len(reqs) {
		c.t.Fatalf("ClaimBatch of %d claims answered %d results", len(reqs), len(res))
	}
	return res, err
}

func (c checker) claim(req lock.ClaimRequest) lock.ClaimResult {
	c.t.Helper()
	res, err := c.tryClaim(req)
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

// renewLease renews l through RenewLease, or in batch mode through a batch
// of one, which must answer as RenewLease does.
func (c checker) renewLease(l lock.Lease, ttl time.Duration, want bool) {
	c.t.Helper()
	call := "RenewLease"
	var got bool
	var err error
	if c.batch {
		call = "RenewBatch of one"
		var renewed []bool
		if renewed, err = c.renewBatch(ttl, l); err == nil {
			got = renewed[0]
		}
	} else {
		got, err = c.s.RenewLease(bg(), l, ttl)
	}
	if err != nil || got != want {
		c.t.Fatalf("%s(%+v) = %v, %v; want %v, nil", call, l, got, err, want)
	}
}

func (c checker) releaseLease(l lock.Lease, want bool) {
	c.t.Helper()
	got, err := c.s.ReleaseLease(bg(), l, nil)
	if err != nil || got != want {
		c.t.Fatalf("ReleaseLease(%+v) = %v, %v; want %v, nil", l, got, err, want)
	}
}

// tick returns the n-th tick of a task that runs every minute, from the
// first minute after the store's epoch (see Harness.New).
func (c checker) tick(n int) time.Time { return c.base.Add(time.Duration(n) * time.Minute) }

func (c checker) req(task string, n int, owner string, p lock.Policy) lock.ClaimRequest {
	return lock.ClaimRequest{Task: task, Tick: c.tick(n), Owner: owner, TTL: long, Policy: p, MaxSkew: maxSkew}
}

// maxSkew is the MaxSkew of the suite's claims.
const maxSkew = 2 * time.Second

// claim runs the claim rows through Claim, and claimBatchOfOne runs them
// again through batches of one claim.
func (s *suite) claim(t *testing.T)           { s.claimRows(t, false) }
func (s *suite) claimBatchOfOne(t *testing.T) { s.claimRows(t, true) }

func (s *suite) claimRows(t *testing.T, batch bool) {
	rows := []struct {
		name string
		run  func(c checker)
	}{
		{"first claim locks the task", func(c checker) {
			res := c.claimOK(c.req("t", 1, "a", lock.Forbid))
			if !res.Previous.IsZero() {
				c.t.Errorf("Previous = %v on a task never claimed; want zero", res.Previous)
			}
			c.held("t", "a")
		}},
		{"a tick is claimed once", func(c checker) {
			first := c.claimOK(c.req("t", 1, "a", lock.Allow))
			for _, owner := range []string{"a", "b"} {
				res := c.claimOutcome(c.req("t", 1, owner, lock.Allow), lock.AlreadyClaimed)
				if !res.Previous.Equal(c.tick(1)) {
					c.t.Errorf("Previous = %v; want %v", res.Previous, c.tick(1))
				}
			}
			c.releaseLease(first.Lease, true)
			c.claimOutcome(c.req("t", 1, "b", lock.Forbid), lock.AlreadyClaimed)
		}},
		{"an older tick is already claimed, or passed over", func(c checker) {
			c.claimOK(c.req("t", 2, "a", lock.Allow))
			c.claimOK(c.req("t", 5, "a", lock.Allow))
			c.claimOutcome(c.req("t", 2, "b", lock.Allow), lock.AlreadyClaimed)
			c.claimOutcome(c.req("t", 1, "b", lock.Allow), lock.AlreadyClaimed)
			// Never claimed, and never will be: claims only move forward.
			c.claimOutcome(c.req("t", 4, "b", lock.Allow), lock.TooLate)
			c.claimOutcome(c.req("t", 3, "b", lock.Replace), lock.TooLate)
			c.claimOK(c.req("first", 5, "a", lock.Forbid))
			c.claimOutcome(c.req("first", 3, "b", lock.Forbid), lock.TooLate)
		}},
		{"ticks compare at millisecond precision", func(c checker) {
			c.claimOK(lock.ClaimRequest{Task: "t", Tick: c.tick(1).Add(400 * time.Microsecond), Owner: "a", TTL: long, Policy: lock.Allow})
			c.claimOutcome(lock.ClaimRequest{Task: "t", Tick: c.tick(1).Add(900 * time.Microsecond), Owner: "b", TTL: long, Policy: lock.Allow}, lock.AlreadyClaimed)
		}},
		{"tasks are independent", func(c checker) {
			c.claimOK(c.req("t1", 1, "a", lock.Forbid))
			c.claimOK(c.req("t2", 1, "b", lock.Forbid))
			c.held("t1", "a")
			c.held("t2", "b")
		}},
		{"forbid: busy while held, even by the same owner", func(c checker) {
			first := c.claimOK(c.req("t", 1, "a", lock.Forbid))
			c.claimOutcome(c.req("t", 2, "a", lock.Forbid), lock.Busy)
			c.claimOutcome(c.req("t", 2, "b", lock.Forbid), lock.Busy)
			c.held("t", "a")
			c.releaseLease(first.Lease, true)
			c.held("t", "")
			// The tick stays skipped once the lock is free: a replica whose
			// timer fires late does not run it after all.
			if res := c.claimOutcome(c.req("t", 2, "b", lock.Forbid), lock.Busy); !res.Previous.Equal(c.tick(2)) {
				c.t.Errorf("Previous = %v; want the busy tick %v", res.Previous, c.tick(2))
			}
			c.claimOutcome(c.req("t", 1, "b", lock.Forbid), lock.AlreadyClaimed)
			next := c.claimOK(c.req("t", 3, "b", lock.Forbid))
			if next.Lease.Token <= first.Lease.Token {
				c.t.Errorf("token %d after %d; want it to rise", next.Lease.Token, first.Lease.Token)
			}
			// The busy tick counts as decided: nothing between it and 3 was
			// left undecided.
			if !next.Previous.Equal(c.tick(2)) {
				c.t.Errorf("Previous = %v; want %v", next.Previous, c.tick(2))
			}
		}},
		{"forbid: a TryAcquire holder makes the task busy", func(c checker) {
			c.acquire("t", "operator", long, true)
			c.claimOutcome(c.req("t", 1, "a", lock.Forbid), lock.Busy)
		}},
		{"replace takes the lock from the holder", func(c checker) {
			old := c.claimOK(c.req("t", 1, "a", lock.Replace))
			cur := c.claimOK(c.req("t", 2, "b", lock.Replace))
			c.held("t", "b")
			c.renewLease(old.Lease, long, false)
			c.releaseLease(old.Lease, false)
			c.held("t", "b")
			c.renewLease(cur.Lease, long, true)
			c.releaseAll("a", 0)
			c.held("t", "b")
		}},
		{"replace by the same owner invalidates the older lease", func(c checker) {
			old := c.claimOK(c.req("t", 1, "a", lock.Replace))
			cur := c.claimOK(c.req("t", 2, "a", lock.Replace))
			c.renewLease(old.Lease, long, false)
			c.releaseLease(old.Lease, false)
			c.held("t", "a")
			c.releaseLease(cur.Lease, true)
			c.held("t", "")
		}},
		{"allow: overlapping runs hold a lock each", func(c checker) {
			r1 := c.claimOK(c.req("t", 1, "a", lock.Allow))
			r2 := c.claimOK(c.req("t", 2, "b", lock.Allow))
			r3 := c.claimOK(c.req("t", 3, "a", lock.Allow))
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
				res := c.claimOK(c.req("t", n, fmt.Sprintf("owner-%d", n%3), policies[n%3]))
				if res.Lease.Token <= last {
					c.t.Fatalf("tick %d: token %d after %d", n, res.Lease.Token, last)
				}
				last = res.Lease.Token
				c.releaseLease(res.Lease, true)
			}
		}},
		{"lease calls check the token", func(c checker) {
			res := c.claimOK(c.req("t", 1, "a", lock.Forbid))
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
			c.claimOK(c.req("t", 1, "a", lock.Forbid))
			r := c.req("t", 2, "a", lock.Allow)
			r.Session = "process-1"
			// A second claim (a retry, its first answer lost) while the first
			// lock lives: the same lease, the same previous tick.
			first := c.claimOK(r)
			again := c.claimOK(r)
			if again.Lease != first.Lease || !again.Previous.Equal(c.tick(1)) {
				c.t.Errorf("retry = %+v; want lease %+v and previous %v", again, first.Lease, c.tick(1))
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
			c.claimOK(c.req("t", 1, "a", lock.Forbid))
			c.claimOutcome(c.req("t", 1, "a", lock.Forbid), lock.AlreadyClaimed)
		}},
		{"a released lease is not revived by locking the key again", func(c checker) {
			for _, p := range []lock.Policy{lock.Forbid, lock.Allow} {
				res := c.claimOK(c.req("t-"+p.String(), 1, "a", p))
				c.releaseLease(res.Lease, true)
				c.acquire(res.Lease.Key, "a", long, true) // same owner, by TryAcquire
				c.renewLease(res.Lease, long, false)
				c.releaseLease(res.Lease, false)
				c.held(res.Lease.Key, "a")
			}
		}},
		{"a stale token is refused under allow too", func(c checker) {
			res := c.claimOK(c.req("t", 1, "a", lock.Allow))
			stale := res.Lease
			stale.Token--
			c.renewLease(stale, long, false)
			c.releaseLease(stale, false)
			c.held(res.Lease.Key, "a")
		}},
		{"a tick ahead of the store's clock is not yet claimable", func(c checker) {
			_, now, _ := c.s.Epoch(bg())
			r := lock.ClaimRequest{Task: "t", Tick: now.Add(maxSkew / 2), Owner: "a", TTL: long, MaxSkew: maxSkew}
			res := c.claimOutcome(r, lock.NotYet)
			if d := r.Tick.Sub(res.StoreTime); d <= 0 || d > maxSkew {
				c.t.Errorf("NotYet at store time %v for tick %v: want the tick ahead by (0, %v]", res.StoreTime, r.Tick, maxSkew)
			}
			// Nothing recorded: a past tick is still claimable.
			c.claimOK(c.req("t", 1, "a", lock.Forbid))
		}},
		{"a tick beyond the max skew is refused and records nothing", func(c checker) {
			_, now, _ := c.s.Epoch(bg())
			ahead := lock.ClaimRequest{Task: "t", Tick: now.Add(30 * time.Minute), Owner: "fast", TTL: long, MaxSkew: maxSkew}
			c.claimOutcome(ahead, lock.ClockAhead)
			ahead.MaxSkew = 0
			ahead.Tick = now.Add(time.Second)
			c.claimOutcome(ahead, lock.ClockAhead)
			c.held("t", "")
			res := c.claimOK(c.req("t", 1, "a", lock.Forbid))
			if !res.Previous.IsZero() {
				c.t.Errorf("Previous = %v after refused claims; want none", res.Previous)
			}
		}},
		{"ticks before the epoch are refused as store lost", func(c checker) {
			epoch, _, err := c.s.Epoch(bg())
			if err != nil {
				c.t.Fatal(err)
			}
			r := lock.ClaimRequest{Task: "t", Tick: epoch.Add(-time.Millisecond), Owner: "a", TTL: long, MaxSkew: maxSkew}
			res := c.claimOutcome(r, lock.StoreLost)
			if !res.Epoch.Equal(epoch) {
				c.t.Errorf("ClaimResult.Epoch = %v; want the store's epoch %v", res.Epoch, epoch)
			}
			r.Tick = epoch
			if res := c.claimOK(r); !res.Epoch.Equal(epoch) {
				c.t.Errorf("ClaimResult.Epoch = %v; want %v", res.Epoch, epoch)
			}
			if again, _, _ := c.s.Epoch(bg()); !again.Equal(epoch) {
				c.t.Errorf("epoch moved from %v to %v", epoch, again)
			}
		}},
		{"a tick whose window the store's clock has passed is too late", func(c checker) {
			r := c.req("t", 1, "a", lock.Forbid)
			r.NotAfter = c.tick(2)
			c.claimOutcome(r, lock.TooLate)
			c.held("t", "")
			// Nothing recorded: a replica whose window is still open claims it.
			r.NotAfter = time.Time{}
			c.claimOK(r)
			// AlreadyClaimed says more than TooLate, and comes first.
			r.Owner, r.NotAfter = "b", c.tick(2)
			c.claimOutcome(r, lock.AlreadyClaimed)
			bad := c.req("t", 3, "a", lock.Forbid)
			bad.NotAfter = c.tick(3)
			if _, err := c.tryClaim(bad); err == nil {
				c.t.Error("a NotAfter not after the tick was accepted")
			}
		}},
		{"a lost answer's retry gets the lease back even once the window closed", func(c checker) {
			r := c.req("t", 1, "a", lock.Forbid)
			r.Session, r.NotAfter = "process-1", c.tick(2)
			c.claimOutcome(r, lock.TooLate) // the window has closed for a new claim
			r.NotAfter = time.Time{}
			first := c.claimOK(r)
			r.NotAfter = c.tick(2)
			if again := c.claimOK(r); again.Lease != first.Lease {
				c.t.Errorf("retry = %+v; want the lease %+v", again.Lease, first.Lease)
			}
		}},
		{"a task name with '@' is refused", func(c checker) {
			_, err := c.tryClaim(c.req("x@2026-11-27T12:01:00.000Z", 1, "a", lock.Forbid))
			if !errors.Is(err, lock.ErrInvalidKey) {
				c.t.Errorf("err = %v; want ErrInvalidKey", err)
			}
			r := c.req("t", 1, "a", lock.Forbid)
			r.MaxSkew = -time.Second
			if _, err := c.tryClaim(r); err == nil {
				c.t.Error("a negative MaxSkew was accepted")
			}
			c.held("t", "")
		}},
		{"a claim says whether a peer claimed or was refused the task's tick before", func(c checker) {
			r := c.req("t", 1, "a", lock.Allow)
			r.Session = "process-1"
			for n, want := range []bool{false, false} { // a first claim, then its own
				r.Tick = c.tick(n + 1)
				if res := c.claimOK(r); res.Contested != want {
					c.t.Errorf("claim of tick %d by the same session: Contested = %v; want %v", n+1, res.Contested, want)
				}
			}
			r.Tick, r.Owner, r.Session = c.tick(3), "b", "process-2"
			if res := c.claimOK(r); !res.Contested {
				c.t.Error("claim after another session's: Contested = false; want true")
			}
			r.Tick = c.tick(4)
			if res := c.claimOutcome(r, lock.Claimed); res.Contested {
				c.t.Error("claim after the same session's: Contested = true; want false")
			}
			// The winner of every race learns of a peer that lost one.
			peer := r
			peer.Owner, peer.Session = "a", "process-1"
			c.claimOutcome(peer, lock.AlreadyClaimed)
			c.claimOutcome(peer, lock.AlreadyClaimed) // marked once; still marked
			r.Tick = c.tick(5)
			if res := c.claimOutcome(r, lock.Claimed); !res.Contested {
				c.t.Error("claim after a peer was refused the tick before: Contested = false; want true")
			}
			r.Tick = c.tick(6)
			if res := c.claimOutcome(r, lock.Claimed); res.Contested {
				c.t.Error("claim after an uncontested tick: Contested = true; want false")
			}
			// Its own retry refused is no peer.
			r.Tick = c.tick(6)
			r.Owner = "b2" // a retry that does not get the lease back is refused
			c.claimOutcome(r, lock.AlreadyClaimed)
			r.Tick, r.Owner = c.tick(7), "b"
			if res := c.claimOutcome(r, lock.Claimed); res.Contested {
				c.t.Error("claim after its own session was refused: Contested = true; want false")
			}
		}},
		{"release-all frees claimed locks", func(c checker) {
			c.claimOK(c.req("t1", 1, "a", lock.Forbid))
			c.claimOK(c.req("t2", 1, "a", lock.Allow))
			c.claimOK(c.req("t3", 1, "b", lock.Forbid))
			c.releaseAll("a", 2)
			c.held("t1", "")
			c.held("t3", "b")
			// The tick records stay.
			c.claimOutcome(c.req("t1", 1, "b", lock.Forbid), lock.AlreadyClaimed)
		}},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			c := s.checker(t)
			c.batch = batch
			r.run(c)
		})
	}
}

// claimExpiry runs the expiry rows of claims through Claim and RenewLease,
// and claimExpiryBatchOfOne runs them again through batches of one.
func (s *suite) claimExpiry(t *testing.T)           { s.claimExpiryRows(t, false) }
func (s *suite) claimExpiryBatchOfOne(t *testing.T) { s.claimExpiryRows(t, true) }

func (s *suite) claimExpiryRows(t *testing.T, batch bool) {
	t.Parallel()
	ttl := s.h.TTL
	claim := func(c checker, n int, owner string, p lock.Policy) lock.ClaimRequest {
		r := c.req("t", n, owner, p)
		r.TTL = ttl
		return r
	}
	rows := []struct {
		name string
		run  func(c checker)
	}{
		{"forbid: an expired lease frees the task", func(c checker) {
			old := c.claimOK(claim(c, 1, "a", lock.Forbid))
			c.claimOutcome(claim(c, 2, "b", lock.Forbid), lock.Busy)
			c.wait(ttl * 6 / 5)
			c.claimOutcome(claim(c, 2, "b", lock.Forbid), lock.Busy) // decided
			c.claimOK(claim(c, 3, "b", lock.Forbid))
			c.renewLease(old.Lease, long, false)
			c.releaseLease(old.Lease, false)
			c.held("t", "b")
		}},
		{"a retry after the lease expired is already claimed", func(c checker) {
			r := claim(c, 1, "a", lock.Forbid)
			r.Session = "process-1"
			c.claimOK(r)
			c.wait(ttl * 6 / 5)
			c.claimOutcome(r, lock.AlreadyClaimed)
		}},
		{"renewed lease outlives its first ttl", func(c checker) {
			res := c.claimOK(claim(c, 1, "a", lock.Forbid))
			c.wait(ttl * 3 / 5)
			c.renewLease(res.Lease, ttl, true)
			c.wait(ttl * 3 / 5)
			c.held("t", "a")
			c.claimOutcome(claim(c, 2, "b", lock.Forbid), lock.Busy)
			c.wait(ttl * 3 / 5)
			c.held("t", "")
		}},
		{"expired lease is never revived", func(c checker) {
			res := c.claimOK(claim(c, 1, "a", lock.Forbid))
			c.wait(ttl * 6 / 5)
			c.renewLease(res.Lease, long, false)
			c.held("t", "")
			// Nor when its owner locks the key again.
			c.acquire("t", "a", ttl, true)
			c.renewLease(res.Lease, long, false)
			c.release("t", "a", true)
			// Not even once the same owner claims again.
			next := c.claimOK(claim(c, 2, "a", lock.Forbid))
			c.renewLease(res.Lease, long, false)
			c.renewLease(next.Lease, long, true)
		}},
		{"a batch renews its leases past their first ttl, for release-all too", func(c checker) {
			// Two owners, so that a store that indexes locks by owner
			// updates more than one index in the batch.
			var leases []lock.Lease
			for _, owner := range []string{"a", "b"} {
				for _, p := range []lock.Policy{lock.Forbid, lock.Allow} {
					r := c.req("t-"+owner+"-"+p.String(), 1, owner, p)
					r.TTL = ttl
					leases = append(leases, c.claimOK(r).Lease)
				}
			}
			got, err := c.renewBatch(long, leases...)
			if err != nil || fmt.Sprint(got) != "[true true true true]" {
				c.t.Fatalf("RenewBatch = %v, %v; want all renewed", got, err)
			}
			c.wait(ttl * 6 / 5)
			for _, l := range leases {
				c.held(l.Key, l.Owner)
			}
			c.releaseAll("a", 2)
			c.releaseAll("b", 2)
		}},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			t.Parallel()
			c := s.checker(t)
			c.batch = batch
			r.run(c)
		})
	}
}

// futureRecord steps the store's clock back past a claim record: the
// record then lies ahead of the clock, and must not block later claims.
func (s *suite) futureRecord(t *testing.T) {
	if s.h.StepBack == nil {
		t.Skip("the harness cannot step this store's clock back (Harness.StepBack); the backend's own tests cover a record ahead of the clock")
	}
	c := s.checker(t)
	c.claimOK(c.req("t", 10, "a", lock.Allow))
	late := c.claimOK(c.req("t", 40, "b", lock.Allow))
	_, before, _ := c.s.Epoch(bg())
	s.h.StepBack(c.s, before.Sub(c.tick(20)))
	// Tick 40 now lies 20 minutes ahead of the store's clock: disregarded,
	// back to the decided tick before it (10).
	c.claimOutcome(c.req("t", 10, "c", lock.Allow), lock.AlreadyClaimed)
	res := c.claimOK(c.req("t", 15, "c", lock.Allow))
	if !res.FutureRecord.Equal(c.tick(40)) || !res.Previous.Equal(c.tick(10)) {
		c.t.Errorf("FutureRecord, Previous = %v, %v; want %v, %v", res.FutureRecord, res.Previous, c.tick(40), c.tick(10))
	}
	if res.Lease.Token <= late.Lease.Token {
		c.t.Errorf("token %d after %d; want it to rise", res.Lease.Token, late.Lease.Token)
	}
	next := c.claimOK(c.req("t", 16, "c", lock.Allow))
	if !next.FutureRecord.IsZero() || !next.Previous.Equal(c.tick(15)) {
		c.t.Errorf("after recovery: FutureRecord, Previous = %v, %v; want none, %v", next.FutureRecord, next.Previous, c.tick(15))
	}
}

// claimContention has 8 replicas claim the same 50 ticks at once: each tick
// must be claimed exactly once, with tokens rising in tick order.
func (s *suite) claimContention(t *testing.T) {
	const replicas, ticks = 8, 50
	for _, p := range []lock.Policy{lock.Forbid, lock.Allow, lock.Replace} {
		t.Run(p.String(), func(t *testing.T) {
			st, _ := s.h.New(t)
			c := newChecker(t, st, nil)
			var mu sync.Mutex
			winners := make(map[int][]lock.Lease)
			var wg sync.WaitGroup
			for r := range replicas {
				wg.Add(1)
				go func() {
					defer wg.Done()
					owner := fmt.Sprintf("replica-%d", r)
					for n := range ticks {
						res, err := st.Claim(bg(), c.req("t", n, owner, p))
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
							if ok, err := st.ReleaseLease(bg(), res.Lease, nil); err != nil || !ok {
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
