package locktest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/beatlock/beat/lock"
)

// inspector returns the store's lock.Inspector, or skips the test.
func (c checker) inspector() lock.Inspector {
	c.t.Helper()
	in, ok := c.s.(lock.Inspector)
	if !ok {
		c.t.Skipf("locktest: %T does not implement lock.Inspector", c.s)
	}
	return in
}

// tasks returns the store's task records and its clock.
func (c checker) tasks() ([]lock.TaskRecord, time.Time) {
	c.t.Helper()
	recs, now, err := c.inspector().Tasks(bg())
	if err != nil {
		c.t.Fatalf("Tasks: %v", err)
	}
	if now.IsZero() {
		c.t.Fatal("Tasks returned no store clock")
	}
	if !slices.IsSortedFunc(recs, func(a, b lock.TaskRecord) int { return strings.Compare(a.Task, b.Task) }) {
		c.t.Fatalf("Tasks = %v; want them sorted by name", names(recs))
	}
	// The suite writes only records the store can read.
	for _, r := range recs {
		if r.Err != nil {
			c.t.Fatalf("Tasks lists %q with Err %v; want every record readable", r.Task, r.Err)
		}
	}
	return recs, now
}

// age is how long before the store's clock, as Tasks reads it, tick lies.
func (c checker) age(tick time.Time) time.Duration {
	c.t.Helper()
	_, now := c.tasks()
	return now.Sub(tick)
}

// task returns the record of one task, or nil when Tasks does not list it.
func (c checker) task(name string) *lock.TaskRecord {
	c.t.Helper()
	recs, _ := c.tasks()
	for i := range recs {
		if recs[i].Task == name {
			return &recs[i]
		}
	}
	return nil
}

// holder asserts who Tasks says holds the lock of the task's last claim
// ("": free), with a time left in (0, most] when held.
func (c checker) holder(task, owner string, most time.Duration) {
	c.t.Helper()
	r := c.task(task)
	if r == nil {
		c.t.Fatalf("Tasks does not list %q", task)
	}
	if r.Holder != owner || (owner == "") != (r.LockLeft == 0) || r.LockLeft < 0 || r.LockLeft > most {
		c.t.Fatalf("%q: Holder, LockLeft = %q, %v; want %q and a time left in (0, %v] (0 when free)", task, r.Holder, r.LockLeft, owner, most)
	}
}

func (c checker) releaseRun(l lock.Lease, run *lock.RunRecord, want bool) {
	c.t.Helper()
	got, err := c.s.ReleaseLease(bg(), l, run)
	if err != nil || got != want {
		c.t.Fatalf("ReleaseLease(%+v, %+v) = %v, %v; want %v, nil", l, run, got, err, want)
	}
}

func (c checker) forceRelease(task string, hold time.Duration, want bool) {
	c.t.Helper()
	got, err := c.inspector().ForceRelease(bg(), task, hold)
	if err != nil || got != want {
		c.t.Fatalf("ForceRelease(%q, %v) = %v, %v; want %v, nil", task, hold, got, err, want)
	}
}

// forget calls Forget and checks its error: nil, or one wrapping want.
func (c checker) forget(task string, minAge time.Duration, want error) {
	c.t.Helper()
	err := c.inspector().Forget(bg(), task, minAge)
	if want == nil && err != nil || want != nil && !errors.Is(err, want) {
		c.t.Fatalf("Forget(%q, %v) = %v; want %v", task, minAge, err, want)
	}
	// Each refusal is one of them, never both.
	if errors.Is(err, lock.ErrHeld) && errors.Is(err, lock.ErrRecent) {
		c.t.Fatalf("Forget(%q, %v) = %v; want ErrHeld or ErrRecent, not both", task, minAge, err)
	}
}

// unchanged asserts that the task's record is still before (a refused
// call deleted or changed nothing); LockLeft may have run down.
func (c checker) unchanged(task string, before *lock.TaskRecord) {
	c.t.Helper()
	after := c.task(task)
	if before == nil || after == nil {
		c.t.Fatalf("record of %q = %+v, before %+v; want it kept", task, after, before)
	}
	same := after.LastClaimed.Equal(before.LastClaimed) && after.Token == before.Token &&
		after.LastSkipped.Equal(before.LastSkipped) && after.Holder == before.Holder &&
		after.LockLeft <= before.LockLeft && (after.LastRun == nil) == (before.LastRun == nil)
	if a, b := after.LastRun, before.LastRun; same && a != nil {
		same = a.Tick.Equal(b.Tick) && a.Token == b.Token && a.Owner == b.Owner && a.Result == b.Result &&
			a.Duration == b.Duration && a.Error == b.Error && a.Ended.Equal(b.Ended)
	}
	if !same {
		c.t.Fatalf("record of %q = %+v; want it unchanged: %+v", task, *after, *before)
	}
}

// lastRun returns the task's last recorded run, failing when there is none.
func (c checker) lastRun(task string) lock.RunRecord {
	c.t.Helper()
	r := c.task(task)
	if r == nil || r.LastRun == nil {
		c.t.Fatalf("Tasks has no run of %q: %+v", task, r)
	}
	return *r.LastRun
}

// run is the record of a run of the lease's tick n that ended with result.
func (c checker) run(l lock.Lease, n int, result string) *lock.RunRecord {
	return &lock.RunRecord{Tick: c.tick(n), Token: l.Token, Owner: l.Owner, Result: result, Duration: 1500 * time.Millisecond}
}

func names(recs []lock.TaskRecord) []string {
	var n []string
	for _, r := range recs {
		n = append(n, r.Task)
	}
	return n
}

// runRecord checks the run that ReleaseLease records, read back through
// lock.Inspector.Tasks.
func (s *suite) runRecord(t *testing.T) {
	rows := []struct {
		name string
		run  func(c checker)
	}{
		{"the run is recorded with the release", func(c checker) {
			res := c.claimOK(c.req("t", 1, "a", lock.Forbid))
			_, before, _ := c.s.Epoch(bg())
			run := &lock.RunRecord{
				Tick: c.tick(1), Token: res.Lease.Token, Owner: "a", Result: lock.RunFailed,
				Duration: 2*time.Minute + 345*time.Millisecond, Error: "exit status 1: ünïcødé\nsecond line",
				Ended: time.Unix(1, 0), // the store's clock wins
			}
			c.releaseRun(res.Lease, run, true)
			c.held("t", "")
			recs, now := c.tasks()
			if len(recs) != 1 {
				c.t.Fatalf("Tasks = %+v; want t alone", recs)
			}
			r := recs[0]
			if r.Task != "t" || !r.LastClaimed.Equal(c.tick(1)) || r.Token != res.Lease.Token || !r.LastSkipped.IsZero() || r.Holder != "" || r.LockLeft != 0 {
				c.t.Errorf("record = %+v; want t claimed at %v with token %d, free", r, c.tick(1), res.Lease.Token)
			}
			got := r.LastRun
			if got == nil {
				c.t.Fatal("LastRun = nil; want the run")
			}
			if got.Ended.Before(before.Truncate(time.Millisecond)) || got.Ended.After(now) {
				c.t.Errorf("Ended = %v; want the store's clock when it recorded the run, in [%v, %v]", got.Ended, before, now)
			}
			if !got.Tick.Equal(run.Tick) || got.Token != run.Token || got.Owner != run.Owner || got.Result != run.Result ||
				got.Duration != run.Duration || got.Error != run.Error {
				c.t.Errorf("LastRun = %+v; want %+v", *got, *run)
			}
		}},
		{"each result reads back", func(c checker) {
			for n, result := range []string{lock.RunSucceeded, lock.RunFailed, lock.RunLost, lock.RunTimeout, lock.RunCancelled} {
				res := c.claimOK(c.req("t", n+1, "a", lock.Forbid))
				c.releaseRun(res.Lease, c.run(res.Lease, n+1, result), true)
				if got := c.lastRun("t"); got.Result != result || got.Token != res.Lease.Token || !got.Tick.Equal(c.tick(n+1)) {
					c.t.Errorf("LastRun = %+v; want %s at tick %d", got, result, n+1)
				}
			}
		}},
		{"token and owner default to the lease's", func(c checker) {
			res := c.claimOK(c.req("t", 1, "a", lock.Allow))
			c.releaseRun(res.Lease, &lock.RunRecord{Tick: c.tick(1), Result: lock.RunSucceeded}, true)
			if got := c.lastRun("t"); got.Token != res.Lease.Token || got.Owner != "a" {
				c.t.Errorf("LastRun = %+v; want token %d, owner a", got, res.Lease.Token)
			}
		}},
		{"the run is recorded when the lock was released or replaced", func(c checker) {
			// Released before (ReleaseAll at shutdown came first).
			res := c.claimOK(c.req("released", 1, "a", lock.Forbid))
			c.releaseAll("a", 1)
			c.releaseRun(res.Lease, c.run(res.Lease, 1, lock.RunCancelled), false)
			if got := c.lastRun("released"); got.Result != lock.RunCancelled || got.Token != res.Lease.Token {
				c.t.Errorf("LastRun = %+v; want the cancelled run", got)
			}
			// Replaced by a later tick's run, still going.
			old := c.claimOK(c.req("replaced", 1, "a", lock.Replace))
			cur := c.claimOK(c.req("replaced", 2, "b", lock.Replace))
			c.releaseRun(old.Lease, c.run(old.Lease, 1, lock.RunLost), false)
			c.held("replaced", "b")
			if got := c.lastRun("replaced"); got.Result != lock.RunLost || got.Token != old.Lease.Token || got.Owner != "a" {
				c.t.Errorf("LastRun = %+v; want the lost run of a", got)
			}
			c.holder("replaced", "b", long)
			c.releaseRun(cur.Lease, c.run(cur.Lease, 2, lock.RunSucceeded), true)
			if got := c.lastRun("replaced"); got.Result != lock.RunSucceeded || got.Token != cur.Lease.Token {
				c.t.Errorf("LastRun = %+v; want the run of b", got)
			}
			// A lease the store has no record of (its records were lost).
			ghost := lock.Lease{Task: "ghost", Key: "ghost", Owner: "a", Token: 7}
			c.releaseRun(ghost, &lock.RunRecord{Tick: c.tick(1), Result: lock.RunSucceeded}, false)
			if r := c.task("ghost"); r == nil || r.LastRun == nil || r.LastRun.Token != 7 || !r.LastClaimed.IsZero() || r.Token != 0 {
				c.t.Errorf("ghost = %+v; want only its run", r)
			}
		}},
		{"a late record with a lower token does not overwrite a newer one", func(c checker) {
			r1 := c.claimOK(c.req("t", 1, "a", lock.Allow))
			r2 := c.claimOK(c.req("t", 2, "b", lock.Allow))
			c.releaseRun(r2.Lease, c.run(r2.Lease, 2, lock.RunSucceeded), true)
			c.releaseRun(r1.Lease, c.run(r1.Lease, 1, lock.RunTimeout), true) // released all the same
			c.held(r1.Lease.Key, "")
			if got := c.lastRun("t"); got.Token != r2.Lease.Token || got.Result != lock.RunSucceeded || got.Owner != "b" {
				c.t.Errorf("LastRun = %+v; want the newer run (token %d) kept", got, r2.Lease.Token)
			}
			// The same token again (a retried release) replaces it.
			c.releaseRun(r2.Lease, c.run(r2.Lease, 2, lock.RunFailed), false)
			if got := c.lastRun("t"); got.Token != r2.Lease.Token || got.Result != lock.RunFailed {
				c.t.Errorf("LastRun = %+v; want the retried record", got)
			}
		}},
		{"the error is cut at MaxRunError on a UTF-8 boundary", func(c checker) {
			a := func(n int) string { return strings.Repeat("a", n) }
			limit := lock.MaxRunError
			cases := []struct{ err, want string }{
				{"", ""},
				{a(limit), a(limit)},
				{a(limit + 1), a(limit)},
				{a(limit-1) + "é" + "tail", a(limit - 1)},     // 2 bytes across the limit
				{a(limit-2) + "日" + "tail", a(limit - 2)},     // 3 bytes
				{a(limit-1) + "日" + "tail", a(limit - 1)},     // 3 bytes, 1 in
				{a(limit-3) + "🔒" + "tail", a(limit - 3)},     // 4 bytes
				{a(limit-4) + "🔒" + "tail", a(limit-4) + "🔒"}, // fits exactly
				{strings.Repeat("日", 200), strings.Repeat("日", limit/3)},
			}
			for i, tc := range cases {
				task := fmt.Sprint("t", i)
				res := c.claimOK(c.req(task, 1, "a", lock.Forbid))
				run := c.run(res.Lease, 1, lock.RunFailed)
				run.Error = tc.err
				c.releaseRun(res.Lease, run, true)
				got := c.lastRun(task).Error
				if got != tc.want || !utf8.ValidString(got) || len(got) > limit {
					c.t.Errorf("case %d: Error kept as %d bytes %q...; want %d bytes", i, len(got), got[max(0, len(got)-8):], len(tc.want))
				}
			}
		}},
		{"an invalid run is refused: nothing released or recorded", func(c checker) {
			res := c.claimOK(c.req("t", 1, "a", lock.Forbid))
			l := res.Lease
			bad := []struct {
				name string
				run  lock.RunRecord
			}{
				{"empty result", lock.RunRecord{Tick: c.tick(1), Token: l.Token, Owner: "a"}},
				{"unknown result", lock.RunRecord{Tick: c.tick(1), Token: l.Token, Owner: "a", Result: "ok"}},
				{"result in other case", lock.RunRecord{Tick: c.tick(1), Token: l.Token, Owner: "a", Result: "Succeeded"}},
				{"another lease's token", lock.RunRecord{Tick: c.tick(1), Token: l.Token - 1, Owner: "a", Result: lock.RunSucceeded}},
				{"another owner", lock.RunRecord{Tick: c.tick(1), Token: l.Token, Owner: "b", Result: lock.RunSucceeded}},
				{"negative duration", lock.RunRecord{Tick: c.tick(1), Token: l.Token, Owner: "a", Result: lock.RunSucceeded, Duration: -time.Second}},
			}
			for _, b := range bad {
				ok, err := c.s.ReleaseLease(bg(), l, &b.run)
				if err == nil || ok {
					c.t.Errorf("%s: ReleaseLease = %v, %v; want false and an error", b.name, ok, err)
				}
			}
			// The lease's task is where the run goes: it must be a task name.
			noTask := l
			noTask.Task = ""
			if ok, err := c.s.ReleaseLease(bg(), noTask, c.run(l, 1, lock.RunSucceeded)); !errors.Is(err, lock.ErrInvalidKey) || ok {
				c.t.Errorf("ReleaseLease of a lease without a task = %v, %v; want ErrInvalidKey", ok, err)
			}
			c.held("t", "a")
			c.renewLease(l, long, true)
			if r := c.task("t"); r == nil || r.LastRun != nil {
				c.t.Errorf("record = %+v; want no run", r)
			}
			c.releaseRun(l, c.run(l, 1, lock.RunSucceeded), true)
		}},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) { r.run(s.checker(t)) })
	}
}

// inspector checks lock.Inspector's rows that need no passing of time.
func (s *suite) inspector(t *testing.T) {
	rows := []struct {
		name string
		run  func(c checker)
	}{
		{"an empty store lists nothing", func(c checker) {
			c.acquire("plain", "a", long, true) // a Backend lock is no task
			if recs, _ := c.tasks(); len(recs) != 0 {
				c.t.Errorf("Tasks = %+v; want none", recs)
			}
		}},
		{"tasks lists claims, busy skips and runs, sorted", func(c checker) {
			_, before, _ := c.s.Epoch(bg())
			c.claimOK(c.req("b-claimed", 1, "a", lock.Forbid))
			held := c.claimOK(c.req("b-claimed", 2, "a", lock.Replace))
			c.claimOutcome(c.req("b-claimed", 3, "b", lock.Forbid), lock.Busy)
			c.claimOK(c.req("a-allow", 1, "a", lock.Allow))
			last := c.claimOK(c.req("a-allow", 2, "b", lock.Allow))
			c.acquire("c-busy", "operator", long, true)
			c.claimOutcome(c.req("c-busy", 1, "a", lock.Forbid), lock.Busy)
			ghost := lock.Lease{Task: "d-run", Key: "d-run", Owner: "a", Token: 3}
			c.releaseRun(ghost, &lock.RunRecord{Tick: c.tick(1), Result: lock.RunSucceeded}, false)
			// Outcomes that record nothing list nothing.
			late := c.req("e-too-late", 1, "a", lock.Forbid)
			late.NotAfter = c.tick(2)
			c.claimOutcome(late, lock.TooLate)
			c.claimOutcome(lock.ClaimRequest{Task: "f-ahead", Tick: before.Add(time.Hour), Owner: "a", TTL: long, MaxSkew: maxSkew}, lock.ClockAhead)

			recs, now := c.tasks()
			if got, want := names(recs), []string{"a-allow", "b-claimed", "c-busy", "d-run"}; !slices.Equal(got, want) {
				c.t.Fatalf("Tasks = %q; want %q", got, want)
			}
			if now.Before(before.Truncate(time.Millisecond)) {
				c.t.Errorf("Tasks' clock %v is before the store's clock %v read earlier", now, before)
			}
			want := []lock.TaskRecord{
				{Task: "a-allow", LastClaimed: c.tick(2), Token: last.Lease.Token, Holder: "b"},
				{Task: "b-claimed", LastClaimed: c.tick(2), Token: held.Lease.Token, LastSkipped: c.tick(3), Holder: "a"},
				{Task: "c-busy", LastSkipped: c.tick(1)}, // the operator's lock is no claim's
				{Task: "d-run"},
			}
			for i, w := range want {
				r := recs[i]
				if !r.LastClaimed.Equal(w.LastClaimed) || r.Token != w.Token || !r.LastSkipped.Equal(w.LastSkipped) || r.Holder != w.Holder {
					c.t.Errorf("record = %+v; want %+v", r, w)
				}
				if (r.Holder != "") != (r.LockLeft > 0) || r.LockLeft > long {
					c.t.Errorf("%s: LockLeft = %v with holder %q", r.Task, r.LockLeft, r.Holder)
				}
				if (r.LastRun != nil) != (r.Task == "d-run") {
					c.t.Errorf("%s: LastRun = %+v", r.Task, r.LastRun)
				}
			}
		}},
		{"the holder is the last claim's, while its lock lives", func(c checker) {
			first := c.claimOK(c.req("t", 1, "a", lock.Forbid))
			c.holder("t", "a", long)
			c.releaseLease(first.Lease, true)
			c.holder("t", "", 0)
			// The key locked again by other means is not the claim's lock.
			c.acquire("t", "a", long, true)
			c.holder("t", "", 0)
			c.release("t", "a", true)
			c.claimOK(c.req("t", 2, "b", lock.Replace))
			c.holder("t", "b", long)
			c.claimOK(c.req("t", 3, "c", lock.Replace))
			c.holder("t", "c", long)
			c.releaseAll("c", 1)
			c.holder("t", "", 0)
			// Under Allow each tick has a lock: the last tick's counts.
			r1 := c.claimOK(c.req("allow", 1, "a", lock.Allow))
			r2 := c.claimOK(c.req("allow", 2, "b", lock.Allow))
			c.holder("allow", "b", long)
			c.releaseLease(r2.Lease, true)
			c.holder("allow", "", 0)
			c.held(r1.Lease.Key, "a")
		}},
		{"tasks lists arbitrary names", func(c checker) {
			var want []string
			for _, name := range oddStrings {
				c.claimOK(lock.ClaimRequest{Task: name, Tick: c.tick(1), Owner: name, TTL: long})
				want = append(want, name)
			}
			slices.Sort(want)
			recs, _ := c.tasks()
			if got := names(recs); !slices.Equal(got, want) {
				c.t.Fatalf("Tasks = %q; want %q", got, want)
			}
			for _, r := range recs {
				if r.Holder != r.Task {
					c.t.Errorf("%q: Holder = %q", r.Task, r.Holder)
				}
			}
		}},
		{"force-release revokes another owner's lock", func(c checker) {
			for _, p := range []lock.Policy{lock.Forbid, lock.Allow, lock.Replace} {
				task := "t-" + p.String()
				res := c.claimOK(c.req(task, 1, "a", p))
				c.acquire("other", "a", long, true)
				c.forceRelease(task, long, true)
				// The lock passes to RevokedOwner, still the claim's lock.
				c.held(res.Lease.Key, lock.RevokedOwner)
				c.holder(task, lock.RevokedOwner, long)
				if r := c.task(task); !r.LastClaimed.Equal(c.tick(1)) || r.Token != res.Lease.Token {
					c.t.Errorf("record after force-release = %+v; want the claim (tick 1, token %d) kept", r, res.Lease.Token)
				}
				// Its old holder can neither renew nor free it.
				c.renewLease(res.Lease, long, false)
				c.releaseLease(res.Lease, false)
				c.held(res.Lease.Key, lock.RevokedOwner)
				// The tick stays claimed.
				c.claimOutcome(c.req(task, 1, "b", p), lock.AlreadyClaimed)
				// The old owner's ReleaseAll counts only what it still holds,
				// and leaves the revoked lock be.
				c.releaseAll("a", 1)
				c.releaseAll("a", 0)
				c.held(res.Lease.Key, lock.RevokedOwner)
				c.holder(task, lock.RevokedOwner, long)
				// The revoked lock is still the last claim's: Forget refuses.
				c.forget(task, 0, lock.ErrHeld)
				switch p {
				case lock.Forbid:
					// Busy, as while the revoked run held it, for the old
					// owner too; Replace takes it at once.
					c.claimOutcome(c.req(task, 2, "b", lock.Forbid), lock.Busy)
					c.claimOutcome(c.req(task, 3, "a", lock.Forbid), lock.Busy)
					c.holder(task, lock.RevokedOwner, long)
					next := c.claimOK(c.req(task, 4, "b", lock.Replace))
					if next.Lease.Token <= res.Lease.Token {
						c.t.Errorf("token %d after %d", next.Lease.Token, res.Lease.Token)
					}
					c.held(task, "b")
					c.holder(task, "b", long)
				case lock.Replace:
					next := c.claimOK(c.req(task, 2, "b", lock.Replace))
					if next.Lease.Token <= res.Lease.Token {
						c.t.Errorf("token %d after %d", next.Lease.Token, res.Lease.Token)
					}
					c.held(task, "b")
					c.holder(task, "b", long)
					c.renewLease(next.Lease, long, true)
				case lock.Allow:
					// Each tick locks a key of its own.
					next := c.claimOK(c.req(task, 2, "b", lock.Allow))
					c.held(res.Lease.Key, lock.RevokedOwner)
					c.held(next.Lease.Key, "b")
					c.holder(task, "b", long)
				}
				c.renewLease(res.Lease, long, false)
			}
		}},
		{"force-release of a revoked lock revokes it again, for the new hold", func(c checker) {
			res := c.claimOK(c.req("t", 1, "a", lock.Forbid))
			c.forceRelease("t", long, true)
			c.holder("t", lock.RevokedOwner, long)
			// Still the last claim's live lock: true, and its hold is the
			// new one, shorter or longer.
			c.forceRelease("t", s.h.TTL, true)
			c.holder("t", lock.RevokedOwner, s.h.TTL)
			c.held("t", lock.RevokedOwner)
			if r := c.task("t"); r.Token != res.Lease.Token {
				c.t.Errorf("token %d after a second force-release; want the claim's %d", r.Token, res.Lease.Token)
			}
			c.forceRelease("t", long, true)
			if r := c.task("t"); r.LockLeft <= s.h.TTL {
				c.t.Errorf("LockLeft = %v after a force-release for %v; want more than %v", r.LockLeft, long, s.h.TTL)
			}
			c.renewLease(res.Lease, long, false)
			c.claimOutcome(c.req("t", 2, "b", lock.Forbid), lock.Busy)
		}},
		{"force-release refuses a hold below MinTTL and changes nothing", func(c checker) {
			in := c.inspector()
			res := c.claimOK(c.req("t", 1, "a", lock.Forbid))
			for _, hold := range []time.Duration{0, lock.MinTTL - 1, -time.Second} {
				for _, task := range []string{"t", "unknown"} {
					if ok, err := in.ForceRelease(bg(), task, hold); !errors.Is(err, lock.ErrInvalidTTL) || ok {
						c.t.Errorf("ForceRelease(%q, %v) = %v, %v; want false, ErrInvalidTTL", task, hold, ok, err)
					}
				}
			}
			if ok, err := in.ForceRelease(bg(), "", 0); !errors.Is(err, lock.ErrInvalidKey) || !errors.Is(err, lock.ErrInvalidTTL) || ok {
				c.t.Errorf("ForceRelease(\"\", 0) = %v, %v; want false, ErrInvalidKey and ErrInvalidTTL", ok, err)
			}
			c.held("t", "a")
			c.holder("t", "a", long)
			c.renewLease(res.Lease, long, true)
			// MinTTL itself is a hold.
			c.forceRelease("t", lock.MinTTL, true)
			c.renewLease(res.Lease, long, false)
		}},
		{"force-release of a free or unknown task is false", func(c checker) {
			c.forceRelease("unknown", long, false)
			res := c.claimOK(c.req("released", 1, "a", lock.Forbid))
			c.releaseLease(res.Lease, true)
			c.forceRelease("released", long, false)
			c.held("released", "")
			// A lock the last claim did not set is not the task's to revoke.
			c.acquire("released", "operator", long, true)
			c.forceRelease("released", long, false)
			c.held("released", "operator")
			c.acquire("busy", "operator", long, true)
			c.claimOutcome(c.req("busy", 1, "a", lock.Forbid), lock.Busy)
			c.forceRelease("busy", long, false)
			c.held("busy", "operator")
		}},
		{"forget refuses while held, then deletes the records", func(c checker) {
			first := c.claimOK(c.req("t", 1, "a", lock.Forbid))
			c.claimOutcome(c.req("t", 2, "a", lock.Forbid), lock.Busy)
			c.claimOK(c.req("other", 1, "a", lock.Forbid))
			before := c.task("t")
			c.forget("t", 0, lock.ErrHeld)
			// ErrHeld wins over ErrRecent.
			c.forget("t", c.age(c.tick(1))+time.Hour, lock.ErrHeld)
			c.unchanged("t", before)
			if after := c.task("t"); after.Holder != "a" {
				c.t.Fatalf("after a refused Forget: %+v; want it held by a", after)
			}
			c.held("t", "a")
			c.claimOutcome(c.req("t", 2, "b", lock.Forbid), lock.Busy)
			c.releaseRun(first.Lease, c.run(first.Lease, 1, lock.RunSucceeded), true)
			c.forget("t", 0, nil)
			if recs, _ := c.tasks(); !slices.Equal(names(recs), []string{"other"}) {
				c.t.Errorf("Tasks after Forget = %q; want [other]", names(recs))
			}
			for _, task := range []string{"t", "unknown"} {
				c.forget(task, 0, nil)
				c.forget(task, long, nil) // no tick: nothing is recent
			}
			if s.h.StepBack != nil {
				// A clock stepped back does not bring the task's tokens
				// down: its fencing counter outlives Forget.
				_, now, _ := c.s.Epoch(bg())
				s.h.StepBack(c.s, now.Sub(c.tick(30)))
			}
			// The task comes back: its ticks are new to the store, and its
			// tokens stay above the earlier ones.
			again := c.claimOK(c.req("t", 1, "b", lock.Forbid))
			if again.Lease.Token <= first.Lease.Token || !again.Previous.IsZero() {
				c.t.Errorf("claim after Forget = %+v; want a token above %d and no previous tick", again, first.Lease.Token)
			}
		}},
		{"forget refuses while the last claimed tick is recent", func(c checker) {
			res := c.claimOK(c.req("t", 1, "a", lock.Forbid))
			c.releaseRun(res.Lease, c.run(res.Lease, 1, lock.RunSucceeded), true)
			c.claimOK(c.req("other", 1, "a", lock.Forbid))
			before := c.task("t")
			age := c.age(c.tick(1))
			c.forget("t", age+time.Minute, lock.ErrRecent)
			c.unchanged("t", before)
			c.claimOutcome(c.req("t", 1, "b", lock.Forbid), lock.AlreadyClaimed)
			// Old enough by the store's clock: exactly minAge is not less.
			c.forget("t", age, nil)
			if recs, _ := c.tasks(); !slices.Equal(names(recs), []string{"other"}) {
				c.t.Errorf("Tasks after Forget = %q; want [other]", names(recs))
			}
			// A tick at the store's clock: recent, unless minAge is 0.
			_, now := c.tasks()
			r := lock.ClaimRequest{Task: "now", Tick: now, Owner: "a", TTL: long, MaxSkew: maxSkew}
			cur := c.claimOK(r)
			c.releaseLease(cur.Lease, true)
			before = c.task("now")
			c.forget("now", time.Hour, lock.ErrRecent)
			c.unchanged("now", before)
			c.forget("now", 0, nil)
			if r := c.task("now"); r != nil {
				c.t.Errorf("record after Forget with minAge 0 = %+v; want none", r)
			}
		}},
		{"forget refuses while the last skipped tick is recent", func(c checker) {
			// Claimed at tick 1, skipped as busy at tick 5: the claim is old
			// enough for minAge, the skipped tick is not.
			res := c.claimOK(c.req("t", 1, "a", lock.Forbid))
			c.claimOutcome(c.req("t", 5, "b", lock.Forbid), lock.Busy)
			c.releaseLease(res.Lease, true)
			before := c.task("t")
			age := c.age(c.tick(5))
			c.forget("t", age+time.Minute, lock.ErrRecent)
			c.unchanged("t", before)
			c.claimOutcome(c.req("t", 5, "b", lock.Forbid), lock.Busy)
			c.forget("t", age, nil)
			if r := c.task("t"); r != nil {
				c.t.Errorf("record after Forget = %+v; want none", r)
			}
			// A skipped tick alone (the lock was an operator's, no claim's).
			c.acquire("skipped", "operator", long, true)
			c.claimOutcome(c.req("skipped", 3, "a", lock.Forbid), lock.Busy)
			before = c.task("skipped")
			age = c.age(c.tick(3))
			c.forget("skipped", age+time.Minute, lock.ErrRecent)
			c.unchanged("skipped", before)
			c.forget("skipped", age, nil)
			if r := c.task("skipped"); r != nil {
				c.t.Errorf("record after Forget = %+v; want none", r)
			}
			c.held("skipped", "operator")
			// A run alone has no tick to be recent.
			ghost := lock.Lease{Task: "ghost", Key: "ghost", Owner: "a", Token: 3}
			c.releaseRun(ghost, &lock.RunRecord{Tick: c.tick(1), Result: lock.RunSucceeded}, false)
			c.forget("ghost", long, nil)
			if r := c.task("ghost"); r != nil {
				c.t.Errorf("record after Forget = %+v; want none", r)
			}
		}},
		{"task names are checked", func(c checker) {
			in := c.inspector()
			for _, name := range []string{"", "x@2026-11-27T12:01:00.000Z"} {
				if ok, err := in.ForceRelease(bg(), name, long); !errors.Is(err, lock.ErrInvalidKey) || ok {
					c.t.Errorf("ForceRelease(%q) = %v, %v; want ErrInvalidKey", name, ok, err)
				}
				if err := in.Forget(bg(), name, 0); !errors.Is(err, lock.ErrInvalidKey) {
					c.t.Errorf("Forget(%q) = %v; want ErrInvalidKey", name, err)
				}
			}
		}},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) { r.run(s.checker(t)) })
	}
}

// inspectorExpiry checks the Inspector's view of locks that expire.
func (s *suite) inspectorExpiry(t *testing.T) {
	t.Parallel()
	ttl := s.h.TTL
	rows := []struct {
		name string
		run  func(c checker)
	}{
		{"an expired lock has no holder, and is not held", func(c checker) {
			for _, p := range []lock.Policy{lock.Forbid, lock.Allow} {
				r := c.req("t-"+p.String(), 1, "a", p)
				r.TTL = ttl
				c.claimOK(r)
				c.holder(r.Task, "a", ttl)
			}
			c.wait(ttl * 6 / 5)
			for _, task := range []string{"t-Forbid", "t-Allow"} {
				c.holder(task, "", 0)
				c.forceRelease(task, ttl, false)
				c.forget(task, 0, nil)
			}
			if recs, _ := c.tasks(); len(recs) != 0 {
				c.t.Errorf("Tasks = %q after Forget; want none", names(recs))
			}
		}},
		{"a revoked lock keeps the task busy for its hold, then frees it", func(c checker) {
			step := ttl * 3 / 5
			policies := []lock.Policy{lock.Forbid, lock.Allow, lock.Replace}
			leases := make(map[lock.Policy]lock.Lease)
			for _, p := range policies {
				task := "t-" + p.String()
				leases[p] = c.claimOK(c.req(task, 1, "a", p)).Lease // a lease of its own lasts long
				c.forceRelease(task, ttl, true)
				c.holder(task, lock.RevokedOwner, ttl)
			}
			c.wait(step)
			// Within the hold: revoked, the old lease dead, Forbid busy.
			c.holder("t-Forbid", lock.RevokedOwner, ttl-step)
			c.held("t-Forbid", lock.RevokedOwner)
			c.claimOutcome(c.req("t-Forbid", 2, "b", lock.Forbid), lock.Busy)
			c.forget("t-Forbid", 0, lock.ErrHeld)
			c.wait(step)
			// The hold has run out: the lock is free, not the old holder's
			// again, and the next tick is claimed.
			for _, p := range policies {
				task := "t-" + p.String()
				c.holder(task, "", 0)
				c.held(leases[p].Key, "")
				c.renewLease(leases[p], long, false)
				c.forceRelease(task, ttl, false)
			}
			c.claimOutcome(c.req("t-Forbid", 2, "b", lock.Forbid), lock.Busy) // decided
			next := c.claimOK(c.req("t-Forbid", 3, "b", lock.Forbid))
			c.holder("t-Forbid", "b", long)
			c.renewLease(next.Lease, long, true)
			c.releaseAll("a", 0)
		}},
		{"a forgotten task's late run is recorded", func(c checker) {
			res := c.claimOK(c.req("t", 1, "a", lock.Forbid))
			c.forceRelease("t", ttl, true)
			c.forget("t", 0, lock.ErrHeld)
			c.wait(ttl * 6 / 5)
			c.forget("t", 0, nil)
			c.releaseRun(res.Lease, c.run(res.Lease, 1, lock.RunLost), false)
			if r := c.task("t"); r == nil || r.LastRun == nil || !r.LastClaimed.IsZero() {
				c.t.Errorf("record = %+v; want the run alone", r)
			}
		}},
		{"forget refuses a recent tick until it is old enough", func(c checker) {
			_, now := c.tasks()
			res := c.claimOK(lock.ClaimRequest{Task: "t", Tick: now, Owner: "a", TTL: ttl, MaxSkew: maxSkew})
			c.releaseLease(res.Lease, true)
			c.forget("t", ttl, lock.ErrRecent)
			c.wait(ttl * 3 / 5)
			c.forget("t", ttl, lock.ErrRecent)
			c.wait(ttl * 3 / 5)
			c.forget("t", ttl, nil)
			if r := c.task("t"); r != nil {
				c.t.Errorf("record after Forget = %+v; want none", r)
			}
		}},
		{"a run recorded after its lock expired", func(c checker) {
			r := c.req("t", 1, "a", lock.Forbid)
			r.TTL = ttl
			res := c.claimOK(r)
			c.wait(ttl * 6 / 5)
			c.releaseRun(res.Lease, c.run(res.Lease, 1, lock.RunLost), false)
			if got := c.lastRun("t"); got.Result != lock.RunLost {
				c.t.Errorf("LastRun = %+v; want lost", got)
			}
		}},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			t.Parallel()
			r.run(s.checker(t))
		})
	}
}
