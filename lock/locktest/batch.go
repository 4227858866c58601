package locktest

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beatlock/beat/lock"
)

// claimBatch checks what is particular to lock.BatchClaimer; the claim rows
// also run through batches of one (claimBatchOfOne).
func (s *suite) claimBatch(t *testing.T) {
	rows := []struct {
		name string
		run  func(c checker)
	}{
		{"each claim of a batch answers as it would alone", func(c checker) {
			_, now, err := c.s.Epoch(bg())
			if err != nil {
				c.t.Fatalf("Epoch: %v", err)
			}
			c.claimOK(c.req("taken", 1, "b", lock.Allow))
			c.claimOK(c.req("held", 0, "b", lock.Forbid))
			late := c.req("late", 1, "a", lock.Forbid)
			late.NotAfter = c.tick(2)
			soon := c.req("soon", 0, "a", lock.Forbid)
			soon.Tick = now.Add(time.Second)
			ahead := c.req("ahead", 0, "a", lock.Forbid)
			ahead.Tick = now.Add(time.Hour)
			old := c.req("old", -2, "a", lock.Forbid) // before the epoch
			reqs := []lock.ClaimRequest{
				c.req("free-forbid", 1, "a", lock.Forbid), c.req("taken", 1, "a", lock.Allow),
				c.req("held", 1, "a", lock.Forbid), late, soon, ahead, old,
				c.req("free-allow", 1, "a", lock.Allow), c.req("free-replace", 1, "a", lock.Replace),
			}
			want := []lock.Outcome{lock.Claimed, lock.AlreadyClaimed, lock.Busy, lock.TooLate, lock.NotYet,
				lock.ClockAhead, lock.StoreLost, lock.Claimed, lock.Claimed}
			res, err := c.claimBatch(reqs...)
			if err != nil {
				c.t.Fatalf("ClaimBatch: %v", err)
			}
			for i, r := range res {
				req := reqs[i]
				if r.Outcome != want[i] {
					c.t.Errorf("claim %d (%s): %v; want %v", i, req.Task, r.Outcome, want[i])
				}
				if r.StoreTime.IsZero() || r.Epoch.IsZero() {
					c.t.Errorf("claim %d (%s): no store time or epoch: %+v", i, req.Task, r)
				}
				if r.Outcome != lock.Claimed {
					if r.Lease != (lock.Lease{}) {
						c.t.Errorf("claim %d (%s): outcome %v came with a lease %+v", i, req.Task, r.Outcome, r.Lease)
					}
					continue
				}
				l := r.Lease
				if l.Task != req.Task || l.Owner != "a" || l.Key != lock.LeaseKey(req.Task, req.Tick, req.Policy) || l.Token == 0 {
					c.t.Errorf("claim %d (%s): lease %+v", i, req.Task, l)
				}
			}
			if t := res[1].Previous; !t.Equal(c.tick(1)) {
				c.t.Errorf("taken: Previous = %v; want %v", t, c.tick(1))
			}
			c.held("free-forbid", "a")
			c.held("held", "b")
			c.held("late", "")
			// Nothing recorded for the ticks not decided: each is claimed alone later.
			c.claimOK(c.req("late", 1, "a", lock.Forbid))
			c.claimOK(c.req("ahead", 1, "a", lock.Forbid))
			c.claimOutcome(c.req("held", 1, "b", lock.Forbid), lock.Busy) // skipped stays skipped
		}},
		{"an invalid batch claims nothing", func(c checker) {
			valid := c.req("t1", 1, "a", lock.Forbid)
			bad := []struct {
				name string
				req  lock.ClaimRequest
			}{
				{"empty owner", c.req("t2", 1, "", lock.Forbid)},
				{"another owner", c.req("t2", 1, "b", lock.Forbid)},
				{"the same task twice", c.req("t1", 2, "a", lock.Allow)},
				{"another ttl", func() lock.ClaimRequest { r := c.req("t2", 1, "a", lock.Forbid); r.TTL = time.Minute; return r }()},
				{"another session", func() lock.ClaimRequest { r := c.req("t2", 1, "a", lock.Forbid); r.Session = "s2"; return r }()},
				{"a task with '@'", c.req("t@2", 1, "a", lock.Forbid)},
			}
			for _, b := range bad {
				if res, err := c.claimBatch(valid, b.req); err == nil {
					c.t.Errorf("%s: ClaimBatch = %+v, nil; want an error", b.name, res)
				}
			}
			c.held("t1", "")
			if res := c.claimOK(valid); !res.Previous.IsZero() {
				c.t.Errorf("t1 was recorded by a batch that failed: Previous = %v", res.Previous)
			}
		}},
		{"an empty batch answers nothing", func(c checker) {
			res, err := c.claimBatch()
			if err != nil || len(res) != 0 {
				c.t.Fatalf("ClaimBatch() = %v, %v; want no results, nil", res, err)
			}
		}},
		{"a batch sent again by its session gets its leases back", func(c checker) {
			reqs := []lock.ClaimRequest{c.req("t1", 1, "a", lock.Forbid), c.req("t2", 1, "a", lock.Allow)}
			for i := range reqs {
				reqs[i].Session = "process-1"
			}
			first, err := c.claimBatch(reqs...)
			if err != nil {
				c.t.Fatalf("ClaimBatch: %v", err)
			}
			again, err := c.claimBatch(reqs...)
			if err != nil {
				c.t.Fatalf("ClaimBatch again: %v", err)
			}
			for i := range reqs {
				if first[i].Outcome != lock.Claimed || again[i].Outcome != lock.Claimed || again[i].Lease != first[i].Lease {
					c.t.Errorf("claim %d: first %v %+v, again %v %+v; want the same lease twice", i, first[i].Outcome, first[i].Lease, again[i].Outcome, again[i].Lease)
				}
			}
			for i := range reqs {
				reqs[i].Session = "process-2"
			}
			other, err := c.claimBatch(reqs...)
			if err != nil {
				c.t.Fatalf("ClaimBatch by another session: %v", err)
			}
			for i, r := range other {
				if r.Outcome != lock.AlreadyClaimed {
					c.t.Errorf("claim %d by another session: %v; want already-claimed", i, r.Outcome)
				}
			}
		}},
		{"a large batch claims every tick, and release-all frees them", func(c checker) {
			const n = 600
			reqs := make([]lock.ClaimRequest, n)
			for i := range reqs {
				reqs[i] = c.req(fmt.Sprintf("task-%d", i), 1, "a", lock.Policy(i%3))
			}
			res, err := c.claimBatch(reqs...)
			if err != nil {
				c.t.Fatalf("ClaimBatch: %v", err)
			}
			for i, r := range res {
				if r.Outcome != lock.Claimed || r.Lease.Token == 0 || r.Lease.Task != reqs[i].Task {
					c.t.Fatalf("claim %d: %v, lease %+v", i, r.Outcome, r.Lease)
				}
			}
			c.releaseAll("a", n)
			c.held("task-0", "")
		}},
		{"a batch of releases answers each as ReleaseLease would", func(c checker) {
			l1 := c.claimOK(c.req("t1", 1, "a", lock.Forbid)).Lease
			l2 := c.claimOK(c.req("t2", 1, "a", lock.Allow)).Lease
			l3 := c.claimOK(c.req("t3", 1, "b", lock.Forbid)).Lease
			stale := l2
			stale.Token++
			run := &lock.RunRecord{Tick: c.tick(1), Result: lock.RunSucceeded, Duration: time.Second}
			ends := []lock.LeaseEnd{{Lease: l1, Run: run}, {Lease: stale}, {Lease: l3}, {Lease: l1}}
			got, err := c.releaseBatch(ends...)
			if err != nil {
				c.t.Fatalf("ReleaseBatch: %v", err)
			}
			if want := []bool{true, false, true, false}; fmt.Sprint(got) != fmt.Sprint(want) {
				c.t.Errorf("ReleaseBatch = %v; want %v", got, want)
			}
			c.held("t1", "")
			c.held(l2.Key, "a")
			c.held("t3", "")
			if _, ok := c.s.(lock.Inspector); ok {
				if r := c.lastRun("t1"); r.Token != l1.Token || r.Result != lock.RunSucceeded {
					c.t.Errorf("t1's last run = %+v; want token %d, succeeded", r, l1.Token)
				}
			}
		}},
		{"an invalid batch of releases releases nothing", func(c checker) {
			l1 := c.claimOK(c.req("t1", 1, "a", lock.Forbid)).Lease
			for name, bad := range map[string]lock.LeaseEnd{
				"no token":   {Lease: lock.Lease{Task: "t2", Key: "t2", Owner: "a"}},
				"bad result": {Lease: l1, Run: &lock.RunRecord{Result: "exploded"}},
			} {
				if got, err := c.releaseBatch(lock.LeaseEnd{Lease: l1}, bad); err == nil {
					c.t.Errorf("%s: ReleaseBatch = %v, nil; want an error", name, got)
				}
			}
			c.held("t1", "a")
			if got, err := c.releaseBatch(); err != nil || len(got) != 0 {
				c.t.Errorf("ReleaseBatch() = %v, %v; want nothing", got, err)
			}
		}},
		{"a batch of renewals answers each as RenewLease would", func(c checker) {
			short := func(r lock.ClaimRequest) lock.ClaimRequest { r.TTL = s.h.TTL; return r }
			live := c.claimOK(short(c.req("live", 1, "a", lock.Forbid))).Lease
			allow := c.claimOK(short(c.req("allow", 1, "a", lock.Allow))).Lease
			released := c.claimOK(c.req("released", 1, "a", lock.Forbid)).Lease
			c.releaseLease(released, true)
			replaced := c.claimOK(c.req("replaced", 1, "a", lock.Replace)).Lease
			c.claimOK(short(c.req("replaced", 2, "a", lock.Replace)))
			// Locked again by TryAcquire, by the lease's owner and by another.
			mine := c.claimOK(c.req("mine", 1, "a", lock.Forbid)).Lease
			c.releaseLease(mine, true)
			c.acquire("mine", "a", s.h.TTL, true)
			theirs := c.claimOK(c.req("theirs", 1, "a", lock.Forbid)).Lease
			c.releaseLease(theirs, true)
			c.acquire("theirs", "b", s.h.TTL, true)
			leases := []lock.Lease{live, released, replaced, mine, theirs, allow, live}
			got, err := c.renewBatch(long, leases...)
			if err != nil {
				c.t.Fatalf("RenewBatch: %v", err)
			}
			// A renewal does not end the lease: named twice, it is renewed twice.
			if want := []bool{true, false, false, false, false, true, true}; fmt.Sprint(got) != fmt.Sprint(want) {
				c.t.Errorf("RenewBatch = %v; want %v", got, want)
			}
			c.held("live", "a")
			c.held(allow.Key, "a")
			c.held("released", "")
			c.held("replaced", "a")
			c.held("mine", "a")
			c.held("theirs", "b")
			if _, ok := c.s.(lock.Inspector); !ok {
				return
			}
			// The live leases' locks now expire ttl from now; the lock
			// that replaced a lease keeps its own expiry.
			for _, task := range []string{"live", "allow"} {
				c.holder(task, "a", long)
				if left := c.task(task).LockLeft; left < long-time.Minute {
					c.t.Errorf("%s: %v left after a renewal for %v; want about %v", task, left, long, long)
				}
			}
			c.holder("replaced", "a", s.h.TTL)
		}},
		{"an invalid batch of renewals renews nothing", func(c checker) {
			r := c.req("t1", 1, "a", lock.Forbid)
			r.TTL = s.h.TTL
			l1 := c.claimOK(r).Lease
			for name, bad := range map[string]struct {
				leases []lock.Lease
				ttl    time.Duration
			}{
				"no token":    {[]lock.Lease{l1, {Task: "t2", Key: "t2", Owner: "a"}}, long},
				"no owner":    {[]lock.Lease{l1, {Task: "t2", Key: "t2", Token: 1}}, long},
				"a zero ttl":  {[]lock.Lease{l1, l1}, 0},
				"a short ttl": {[]lock.Lease{l1, l1}, time.Millisecond - 1},
			} {
				got, err := c.renewBatch(bad.ttl, bad.leases...)
				if err == nil {
					c.t.Errorf("%s: RenewBatch = %v, nil; want an error", name, got)
				} else if !strings.Contains(err.Error(), "renewal 0 of the batch") && !strings.Contains(err.Error(), "renewal 1 of the batch") {
					c.t.Errorf("%s: RenewBatch: %v; want the error to name the lease", name, err)
				}
			}
			if _, err := c.renewBatch(long, l1, lock.Lease{Task: "t2", Key: "t2", Owner: "a"}); err == nil ||
				!strings.Contains(err.Error(), "renewal 1 of the batch") {
				c.t.Errorf("RenewBatch with a lease without token at 1: %v; want an error naming renewal 1", err)
			}
			c.held("t1", "a")
			if _, ok := c.s.(lock.Inspector); ok {
				c.holder("t1", "a", s.h.TTL) // not renewed for long
			}
			if got, err := c.renewBatch(long); err != nil || len(got) != 0 {
				c.t.Errorf("RenewBatch() = %v, %v; want nothing", got, err)
			}
		}},
		{"a large batch of renewals renews every lease", func(c checker) {
			const n = 300
			var leases []lock.Lease
			for _, owner := range []string{"a", "b"} {
				reqs := make([]lock.ClaimRequest, n/2)
				for i := range reqs {
					reqs[i] = c.req(fmt.Sprintf("%s-%d", owner, i), 1, owner, lock.Policy(i%3))
				}
				res, err := c.claimBatch(reqs...)
				if err != nil {
					c.t.Fatalf("ClaimBatch: %v", err)
				}
				for i, r := range res {
					if r.Outcome != lock.Claimed {
						c.t.Fatalf("claim %d by %s: %v", i, owner, r.Outcome)
					}
					leases = append(leases, r.Lease)
				}
			}
			got, err := c.renewBatch(long, leases...)
			if err != nil {
				c.t.Fatalf("RenewBatch: %v", err)
			}
			for i, ok := range got {
				if !ok {
					c.t.Fatalf("renewal %d (%+v): not renewed", i, leases[i])
				}
			}
			// Every third lease ended: the batch renews the others alone.
			var ends []lock.LeaseEnd
			for i := 0; i < n; i += 3 {
				ends = append(ends, lock.LeaseEnd{Lease: leases[i]})
			}
			if _, err := c.releaseBatch(ends...); err != nil {
				c.t.Fatalf("ReleaseBatch: %v", err)
			}
			if got, err = c.renewBatch(long, leases...); err != nil {
				c.t.Fatalf("RenewBatch again: %v", err)
			}
			for i, ok := range got {
				if ok != (i%3 != 0) {
					c.t.Fatalf("renewal %d (%+v) after every third lease was released: %v", i, leases[i], ok)
				}
			}
			c.releaseAll("a", n/2-n/6)
			c.releaseAll("b", n/2-n/6)
		}},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) { r.run(s.checker(t)) })
	}
}

// renewBatch renews leases in one batch; the store must be a
// BatchRenewer.
func (c checker) renewBatch(ttl time.Duration, leases ...lock.Lease) ([]bool, error) {
	c.t.Helper()
	b, ok := c.s.(lock.BatchRenewer)
	if !ok {
		c.t.Fatalf("%T is not a lock.BatchRenewer; every store renews in batches", c.s)
	}
	got, err := b.RenewBatch(bg(), leases, ttl)
	if err == nil && len(got) != len(leases) {
		c.t.Fatalf("RenewBatch of %d leases answered %d results", len(leases), len(got))
	}
	return got, err
}

// releaseBatch releases ends in one batch; the store must be a
// BatchReleaser.
func (c checker) releaseBatch(ends ...lock.LeaseEnd) ([]bool, error) {
	c.t.Helper()
	b, ok := c.s.(lock.BatchReleaser)
	if !ok {
		c.t.Fatalf("%T is not a lock.BatchReleaser; every store releases in batches", c.s)
	}
	got, err := b.ReleaseBatch(bg(), ends)
	if err == nil && len(got) != len(ends) {
		c.t.Fatalf("ReleaseBatch of %d leases answered %d results", len(ends), len(got))
	}
	return got, err
}

// claimBatchContention has 6 replicas claim the same ticks of 20 tasks at
// once, each tick in a batch of every task, in an order of its own: each
// tick must be claimed exactly once.
func (s *suite) claimBatchContention(t *testing.T) {
	const replicas, tasks, ticks = 6, 20, 10
	st, _ := s.h.New(t)
	c := newChecker(t, st, nil)
	b, ok := st.(lock.BatchClaimer)
	if !ok {
		t.Fatalf("%T is not a lock.BatchClaimer; every store claims in batches", st)
	}
	var mu sync.Mutex
	winners := make(map[string]int)
	var wg sync.WaitGroup
	for r := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 7))
			owner := fmt.Sprintf("replica-%d", r)
			for n := range ticks {
				reqs := make([]lock.ClaimRequest, tasks)
				for i, k := range rng.Perm(tasks) {
					reqs[i] = c.req(fmt.Sprintf("t%d", k), n, owner, lock.Allow)
				}
				res, err := b.ClaimBatch(bg(), reqs)
				if err != nil {
					t.Errorf("%s: ClaimBatch: %v", owner, err)
					return
				}
				mu.Lock()
				for i, r := range res {
					if r.Outcome == lock.Claimed {
						winners[fmt.Sprintf("%s@%d", reqs[i].Task, n)]++
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(winners) != tasks*ticks {
		t.Errorf("%d of %d ticks claimed; want all", len(winners), tasks*ticks)
	}
	for tick, n := range winners {
		if n > 1 {
			t.Errorf("%s claimed %d times", tick, n)
		}
	}
}
