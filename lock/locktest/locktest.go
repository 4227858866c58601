// Package locktest is the conformance suite every lock.Store runs, in the way
// testing/slogtest checks slog handlers: one set of tests, the same for all
// backends, so that they cannot drift apart.
//
// A backend's own test file calls Run with a Harness that knows how to make a
// fresh store and how to let time pass for it.
package locktest

import (
	"context"
	"testing"
	"time"

	"github.com/beatlock/beat/lock"
)

// Harness tells the suite how to drive one backend.
type Harness struct {
	// New returns an empty store that no other test uses, whose epoch (see
	// lock.Claimer) lies at least two hours before its clock, so that the
	// suite has past ticks to claim; and a function that lets d pass as
	// that store's clock sees it: it moves a fake clock, fast-forwards
	// miniredis, or sleeps for a real server. New registers its own cleanup
	// with t.Cleanup.
	New func(t *testing.T) (s lock.Store, advance func(d time.Duration))
	// TTL is the lock lifetime the expiry tests use. On a controllable clock
	// any value works; against a real server it bounds how long the suite
	// sleeps, and must be long enough (say 1s) that a few round trips fit in
	// a fifth of it on a loaded machine.
	TTL time.Duration
	// Unreachable, when set, returns a store whose connection to its server
	// is broken, to check that failures come back as errors.
	Unreachable func(t *testing.T) lock.Store
	// StepBack, when set, sets the clock of a store New made back by d, as
	// a store's clock stepped back by an operator or NTP would be.
	StepBack func(s lock.Store, d time.Duration)
}

// Run runs the whole suite against h. The rows of lock.Inspector, and those
// that read back the runs ReleaseLease records, run for stores that
// implement lock.Inspector and are skipped, with a message, for others.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.New == nil || h.TTL < 10*time.Millisecond {
		t.Fatal("locktest: Harness needs New and a TTL of at least 10ms")
	}
	s := &suite{h: h}
	t.Run("Contract", s.contract)
	t.Run("Expiry", s.expiry)
	t.Run("ReleaseAll", s.releaseAll)
	t.Run("InvalidArguments", s.invalidArguments)
	t.Run("ArbitraryKeysAndOwners", s.arbitraryKeys)
	t.Run("CancelledContext", s.cancelledContext)
	if h.Unreachable != nil {
		t.Run("Unreachable", s.unreachable)
	}
	t.Run("Contention", s.contention)
	t.Run("Claim", s.claim)
	t.Run("ClaimBatchOfOne", s.claimBatchOfOne)
	t.Run("ClaimBatch", s.claimBatch)
	t.Run("ClaimExpiry", s.claimExpiry)
	t.Run("ClaimExpiryBatchOfOne", s.claimExpiryBatchOfOne)
	t.Run("FutureRecord", s.futureRecord)
	t.Run("ClaimContention", s.claimContention)
	t.Run("ClaimBatchContention", s.claimBatchContention)
	t.Run("RunRecord", s.runRecord)
	t.Run("Inspector", s.inspector)
	t.Run("InspectorExpiry", s.inspectorExpiry)
}

type suite struct{ h Harness }

// long is a TTL that no test outlives, for locks that must not expire.
const long = time.Hour

func bg() context.Context { return context.Background() }

// checker wraps a store with assertions that stop the test on an error.
type checker struct {
	t    *testing.T
	s    lock.Store
	wait func(time.Duration) // lets time pass for s
	base time.Time           // the first whole minute after the store's epoch
	// batch makes claim and its kin claim, and renewLease renew, through
	// batches of one.
	batch bool
}

func (c checker) acquire(key, owner string, ttl time.Duration, want bool) {
	c.t.Helper()
	got, err := c.s.TryAcquire(bg(), key, owner, ttl)
	if err != nil || got != want {
		c.t.Fatalf("TryAcquire(%q, %q, %v) = %v, %v; want %v, nil", key, owner, ttl, got, err, want)
	}
}

func (c checker) release(key, owner string, want bool) {
	c.t.Helper()
	got, err := c.s.Release(bg(), key, owner)
	if err != nil || got != want {
		c.t.Fatalf("Release(%q, %q) = %v, %v; want %v, nil", key, owner, got, err, want)
	}
}

func (c checker) renew(key, owner string, ttl time.Duration, want bool) {
	c.t.Helper()
	got, err := c.s.Renew(bg(), key, owner, ttl)
	if err != nil || got != want {
		c.t.Fatalf("Renew(%q, %q, %v) = %v, %v; want %v, nil", key, owner, ttl, got, err, want)
	}
}

// held asserts the lock state of key: owned by owner, or free when owner is "".
func (c checker) held(key, owner string) {
	c.t.Helper()
	locked, err := c.s.IsLocked(bg(), key)
	if err != nil || locked != (owner != "") {
		c.t.Fatalf("IsLocked(%q) = %v, %v; want %v, nil", key, locked, err, owner != "")
	}
	got, ok, err := c.s.Owner(bg(), key)
	if err != nil || got != owner || ok != (owner != "") {
		c.t.Fatalf("Owner(%q) = %q, %v, %v; want %q, %v, nil", key, got, ok, err, owner, owner != "")
	}
}

func (c checker) releaseAll(owner string, want uint64) {
	c.t.Helper()
	got, err := c.s.ReleaseAll(bg(), owner)
	if err != nil || got != want {
		c.t.Fatalf("ReleaseAll(%q) = %v, %v; want %v, nil", owner, got, err, want)
	}
}

func (s *suite) checker(t *testing.T) checker {
	st, advance := s.h.New(t)
	return newChecker(t, st, advance)
}

func newChecker(t *testing.T, st lock.Store, advance func(time.Duration)) checker {
	t.Helper()
	epoch, now, err := st.Epoch(bg())
	if err != nil {
		t.Fatalf("Epoch: %v", err)
	}
	if now.Sub(epoch) < 2*time.Hour {
		t.Fatalf("locktest: the store's epoch %v is less than 2h before its clock %v; Harness.New must set it back", epoch, now)
	}
	return checker{t: t, s: st, wait: advance, base: epoch.Truncate(time.Minute).Add(time.Minute)}
}
