package lock

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Policy says what a claim does while an earlier run of the same task still
// holds the task's lock. The names are those of Kubernetes CronJob.
type Policy uint8

const (
	// Forbid skips the tick while the previous run holds the lock, even when
	// that run is on the claiming replica: a claim is not re-entrant.
	Forbid Policy = iota
	// Allow lets runs overlap; each tick gets a lock of its own.
	Allow
	// Replace takes the lock from the previous run, whose next renewal then
	// fails, so that its context is cancelled with ErrLost.
	Replace
)

var policyNames = [...]string{Forbid: "Forbid", Allow: "Allow", Replace: "Replace"}

func (p Policy) String() string {
	if int(p) < len(policyNames) {
		return policyNames[p]
	}
	return fmt.Sprintf("Policy(%d)", uint8(p))
}

// ParsePolicy reads a policy name, ignoring case; "" is Forbid.
func ParsePolicy(s string) (Policy, error) {
	if s == "" {
		return Forbid, nil
	}
	for p, name := range policyNames {
		if strings.EqualFold(s, name) {
			return Policy(p), nil
		}
	}
	return 0, fmt.Errorf("unknown concurrency policy %q: use Forbid, Allow or Replace", s)
}

// ClaimRequest asks for one tick of one task.
type ClaimRequest struct {
	Task   string    // the task's unique name
	Tick   time.Time // the tick's nominal instant; compared at millisecond precision
	Owner  string    // the claiming instance
	TTL    time.Duration
	Policy Policy
	// Session identifies the claiming process, so that it can ask again when
	// an answer is lost (a timeout, a dropped connection): a claim of the
	// same tick by the same owner and session, while the lock it took is
	// still live, returns that claim's lease again instead of AlreadyClaimed.
	// A restarted process has a new session, so it never inherits a tick its
	// predecessor claimed. Empty means no such retry.
	Session string
}

// Outcome is what became of a claim.
type Outcome uint8

const (
	// Claimed: this caller runs the tick; the result carries its lease.
	Claimed Outcome = iota + 1
	// AlreadyClaimed: this tick, or a later one, was claimed before.
	AlreadyClaimed
	// Busy: the policy is Forbid and an earlier run still holds the lock.
	Busy
)

func (o Outcome) String() string {
	switch o {
	case Claimed:
		return "claimed"
	case AlreadyClaimed:
		return "already-claimed"
	case Busy:
		return "busy"
	}
	return fmt.Sprintf("Outcome(%d)", uint8(o))
}

// Lease is the lock a claimed run holds.
type Lease struct {
	Task  string
	Key   string // the lock's key in the Backend's key space (see LeaseKey)
	Owner string
	// Token is the fencing token: strictly greater than every token issued
	// before for the same task by the same store.
	Token uint64
}

// ClaimResult is the answer to a claim.
type ClaimResult struct {
	Outcome Outcome
	Lease   Lease // set when Outcome is Claimed
	// Previous is the task's last claimed tick before this call; zero when
	// the store has no record of the task.
	Previous time.Time
}

// Claimer claims scheduled ticks. Every method is one atomic step in the
// store.
//
// Claim succeeds only when req.Tick is later than the task's last claimed
// tick and the policy allows: under Forbid the task's lock must be free (a
// holder that is req.Owner itself still makes the tick Busy), under Replace
// the lock is taken from whoever holds it, under Allow every tick locks a key
// of its own. On success it records the tick, sets the lock to req.Owner for
// req.TTL and issues a fencing token. AlreadyClaimed and Busy change nothing.
// The one exception to "a tick is claimed once" is a retry by the same owner
// and session (see ClaimRequest.Session): it gets the same lease back, with
// its expiry reset to req.TTL from now.
//
// RenewLease resets the expiry of the lease's lock to ttl from now and
// returns true only while that lock is live and still the one this lease's
// claim set (same owner and token): a lock replaced, released or expired is
// never revived, not even when its owner locks the key again by other
// means. ReleaseLease frees the lock under the same condition and reports
// whether it did; the record of the claimed tick stays.
//
// Errors are as for Backend: invalid arguments wrap ErrInvalidKey (empty
// task), ErrInvalidOwner or ErrInvalidTTL; a store failure is an error and
// never an outcome.
type Claimer interface {
	Claim(ctx context.Context, req ClaimRequest) (ClaimResult, error)
	RenewLease(ctx context.Context, l Lease, ttl time.Duration) (bool, error)
	ReleaseLease(ctx context.Context, l Lease) (bool, error)
}

// Store is what the scheduler needs of a lock store.
type Store interface {
	Backend
	Claimer
}

// LeaseKey is the Backend key that a claim under policy p locks: the task
// name itself, so that IsLocked(task) and Owner(task) show who runs it, or
// under Allow "task@tick" (tick in RFC 3339, UTC, millisecond precision).
func LeaseKey(task string, tick time.Time, p Policy) string {
	if p == Allow {
		return task + "@" + tick.UTC().Format("2006-01-02T15:04:05.000Z")
	}
	return task
}

// CheckClaim checks a claim request's arguments.
func CheckClaim(req ClaimRequest) error {
	return errors.Join(CheckKey(req.Task), CheckOwner(req.Owner), CheckTTL(req.TTL), checkPolicy(req.Policy))
}

// CheckLease checks a lease's arguments; ttl < 0 skips the ttl check, for
// calls that take none.
func CheckLease(l Lease, ttl time.Duration) error {
	errs := []error{CheckKey(l.Key), CheckOwner(l.Owner)}
	if ttl >= 0 {
		errs = append(errs, CheckTTL(ttl))
	}
	if l.Token == 0 {
		errs = append(errs, errors.New("lock: lease has no token"))
	}
	return errors.Join(errs...)
}

// CheckRenewal checks that a lease renewed every renewInterval stays
// trusted: a run stops trusting its lease at 9/10 of the ttl (local clocks
// and the store's may drift, and the run needs time to stop), so the
// renewal must come before that. Both the schedule's validation and the
// scheduler apply it.
func CheckRenewal(ttl, renewInterval time.Duration) error {
	switch {
	case ttl < 10*MinTTL:
		return fmt.Errorf("lock ttl %v: use at least 10ms (seconds, in practice)", ttl)
	case renewInterval <= 0:
		return fmt.Errorf("renew interval %v: must be above 0 (default ttl/3)", renewInterval)
	case renewInterval >= TrustedFor(ttl):
		return fmt.Errorf("renew interval %v must be below 9/10 of the lock ttl %v (default ttl/3)", renewInterval, ttl)
	}
	return nil
}

// TrustedFor is how long after a claim or renewal was sent its holder may
// trust it: 9/10 of the ttl.
func TrustedFor(ttl time.Duration) time.Duration { return ttl - ttl/10 }

func checkPolicy(p Policy) error {
	if int(p) >= len(policyNames) {
		return fmt.Errorf("lock: unknown policy %v", p)
	}
	return nil
}
