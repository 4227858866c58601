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
	// MaxSkew is how far ahead of the store's clock a tick may be and still
	// be waited for (NotYet); a tick further ahead is refused (ClockAhead).
	// Also how far ahead of the store's clock a claim record may lie and
	// still be trusted. Not negative.
	MaxSkew time.Duration
	// NotAfter, when set, closes the tick's window: once the store's clock
	// has reached it (the tick's starting deadline, or its next tick), the
	// tick is TooLate.
	NotAfter time.Time
	// KnownEpoch is the store's epoch as the caller last saw it; zero when
	// it has seen none. A caller that saw an earlier epoch than the store's
	// tells the store that runs from before the new epoch may still be
	// going (see ClaimResult.Guarded).
	KnownEpoch time.Time
}

// Outcome is what became of a claim.
type Outcome uint8

const (
	// Claimed: this caller runs the tick; the result carries its lease.
	Claimed Outcome = iota + 1
	// AlreadyClaimed: this tick, or a later one, was claimed before.
	AlreadyClaimed
	// Busy: the policy is Forbid and an earlier run still held the lock
	// when this tick was first asked for. The tick stays skipped: later
	// claims of it are Busy too, even once the lock is free.
	Busy
	// NotYet: the tick is ahead of the store's clock, by no more than
	// MaxSkew. Ask again once the store's clock has reached it
	// (ClaimResult.StoreTime says how far it has to go).
	NotYet
	// ClockAhead: the tick is further ahead of the store's clock than
	// MaxSkew: the caller's clock is wrong. Nothing is recorded, so a wrong
	// clock cannot block the replicas whose clocks are right.
	ClockAhead
	// StoreLost: the tick is older than the store's epoch, the instant from
	// which it holds every claim record. The store is new or lost its
	// records (a restart without persistence): it cannot tell whether the
	// tick was claimed before, so it refuses it rather than risk a second
	// run.
	StoreLost
	// TooLate: the store's clock has reached req.NotAfter, or a later tick
	// was claimed while this one was never decided (it was passed over);
	// nothing is recorded.
	TooLate
)

func (o Outcome) String() string {
	switch o {
	case Claimed:
		return "claimed"
	case AlreadyClaimed:
		return "already-claimed"
	case Busy:
		return "busy"
	case NotYet:
		return "not-yet"
	case ClockAhead:
		return "clock-ahead"
	case StoreLost:
		return "store-lost"
	case TooLate:
		return "too-late"
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
	// Previous is the task's last decided tick before this call, claimed or
	// skipped as Busy; zero when the store has no record of the task.
	Previous time.Time
	// StoreTime is the store's clock when it answered.
	StoreTime time.Time
	// Epoch is the store's epoch (see Claimer.Epoch) when it answered; it
	// changes only when the store loses its records.
	Epoch time.Time
	// FutureRecord, when set, is a claim record that lay further ahead of
	// the store's clock than MaxSkew, and was disregarded (see Claimer).
	FutureRecord time.Time
	// Guarded is set with Busy when the store began a new epoch less than a
	// ttl ago after losing its records: a run claimed before may still hold
	// a lock the store no longer knows of.
	Guarded bool
	// Contested is set with Claimed when another session claimed the
	// task's tick before this one, or asked for that tick and was refused
	// (AlreadyClaimed): the caller has peers racing for the same ticks. A
	// replica that wins every race learns so from it.
	Contested bool
}

// Claimer claims scheduled ticks. Every method is one atomic step in the
// store, judged by the store's clock.
//
// Epoch returns the store's epoch, the instant from which it holds the
// record of every claim, and the store's clock. A store without an epoch
// (new, or one that lost its records) takes the current time as its epoch;
// both Epoch and Claim do that, so a store that restarts empty gets a new
// epoch at its first call. A store that can tell that it restarted, or
// failed over, since its epoch began (Redis: another run_id) may have lost
// the last records before it; Claim then begins a new epoch too.
//
// Claim judges req.Tick, in this order, against the store's clock (now) and
// the task's record:
//   - tick > now + req.MaxSkew: ClockAhead; tick > now: NotYet (both record
//     nothing, so a tick is never claimed before the store's clock reaches
//     it, and every claim record lies at or before the store's clock);
//   - tick before the epoch: StoreLost;
//   - the same owner and session asking again for the tick it holds: its
//     lease back (see below);
//   - tick between the decided tick before the last claimed one and that
//     one: TooLate (passed over, never claimed); tick not later than the
//     last claimed tick: AlreadyClaimed;
//   - tick not later than the last tick skipped as Busy: Busy;
//   - now at or after req.NotAfter: TooLate, recording nothing;
//   - under Forbid, the task's lock held (even by req.Owner itself), or the
//     epoch begun after a loss less than req.TTL ago (Guarded): Busy, and
//     the tick is recorded as skipped;
//   - otherwise Claimed: under Replace the lock is taken from whoever holds
//     it, under Allow every tick locks a key of its own; the tick is
//     recorded, the lock set to req.Owner for req.TTL and a fencing token
//     issued.
//
// A record further ahead of the store's clock than req.MaxSkew cannot have
// been written under these rules (the store's clock stepped back, or a
// backup was restored, or an older beat wrote it): Claim disregards it, falls
// back to the decided tick recorded before it, and reports it in
// ClaimResult.FutureRecord, so that a wrong clock never stops the replicas
// whose clocks are right.
//
// The one exception to "a tick is claimed once" is a retry by the same owner
// and session (see ClaimRequest.Session): it gets the same lease back, with
// its expiry reset to req.TTL from now.
//
// RenewLease resets the expiry of the lease's lock to ttl from now and
// returns true only while that lock is live and still the one this lease's
// claim set (same owner and token): a lock replaced, released or expired is
// never revived, not even when its owner locks the key again by other
// means. ReleaseLease frees the lock under the same condition and reports
// whether it did; the record of the claimed tick stays. When run is not
// nil, the same atomic step records it as the task's last run (see
// Inspector), whether or not the lock was still the lease's (the run ended
// all the same), unless a run with a higher token is recorded already.
//
// Errors are as for Backend: invalid arguments wrap ErrInvalidKey (empty
// task), ErrInvalidOwner or ErrInvalidTTL; a store failure is an error and
// never an outcome.
type Claimer interface {
	Epoch(ctx context.Context) (epoch, now time.Time, err error)
	Claim(ctx context.Context, req ClaimRequest) (ClaimResult, error)
	RenewLease(ctx context.Context, l Lease, ttl time.Duration) (bool, error)
	ReleaseLease(ctx context.Context, l Lease, run *RunRecord) (bool, error)
}

// BatchClaimer is a Claimer that claims many ticks in one call: the claims
// of ticks that come due together then cost about one round trip, not one
// each.
//
// ClaimBatch answers reqs[i] in results[i] as Claim would have, had the
// requests been claimed one after another in their order; each claim is
// atomic on its own, judged by the store's clock when the store reaches it.
// The requests share one Owner, Session, TTL, MaxSkew and KnownEpoch (they
// are one replica's) and name distinct tasks; otherwise, or when one of them
// is invalid, the whole batch fails with an error naming the request, and
// nothing is claimed. A store failure is one error for the whole batch,
// with no results: any of its claims may have been recorded, as when an
// answer to Claim is lost, and a retry of a tick by the same owner and
// session gets its lease back.
type BatchClaimer interface {
	ClaimBatch(ctx context.Context, reqs []ClaimRequest) ([]ClaimResult, error)
}

// ClaimBatch claims reqs through c's ClaimBatch when it has one, and
// otherwise one request after another through Claim, stopping at the first
// error (the store wrappers use it to pass batches on unchanged).
func ClaimBatch(ctx context.Context, c Claimer, reqs []ClaimRequest) ([]ClaimResult, error) {
	if b, ok := c.(BatchClaimer); ok {
		return b.ClaimBatch(ctx, reqs)
	}
	if err := CheckBatch(reqs); err != nil {
		return nil, err
	}
	results := make([]ClaimResult, len(reqs))
	for i, req := range reqs {
		res, err := c.Claim(ctx, req)
		if err != nil {
			return nil, err
		}
		results[i] = res
	}
	return results, nil
}

// CheckBatch checks the requests of a batch (see BatchClaimer).
func CheckBatch(reqs []ClaimRequest) error {
	tasks := make(map[string]struct{}, len(reqs))
	for i, req := range reqs {
		if err := CheckClaim(req); err != nil {
			return fmt.Errorf("lock: claim %d of the batch: %w", i, err)
		}
		first := reqs[0]
		if req.Owner != first.Owner || req.Session != first.Session || req.TTL != first.TTL ||
			req.MaxSkew != first.MaxSkew || !req.KnownEpoch.Equal(first.KnownEpoch) {
			return fmt.Errorf("lock: claim %d of the batch: its owner, session, ttl, max skew or known epoch differs from the first claim's; a batch is one replica's", i)
		}
		if _, dup := tasks[req.Task]; dup {
			return fmt.Errorf("lock: claim %d of the batch: task %q appears twice; claim its ticks in separate batches", i, req.Task)
		}
		tasks[req.Task] = struct{}{}
	}
	return nil
}

// BatchRenewer is a Claimer that renews many leases in one call: the runs
// of a burst renew together, every renew interval, and their renewals then
// cost about one round trip, not one each.
//
// RenewBatch answers leases[i] in renewed[i] as RenewLease(ctx, leases[i],
// ttl) would have; each renewal is atomic on its own, and a lease named
// twice is renewed twice. When one of the leases (or ttl) is invalid the
// whole batch fails with an error naming it, and nothing is renewed. A
// store failure is one error for the whole batch, with no results: any of
// them may have been renewed.
type BatchRenewer interface {
	RenewBatch(ctx context.Context, leases []Lease, ttl time.Duration) ([]bool, error)
}

// CheckRenewals checks the leases and ttl of a RenewBatch.
func CheckRenewals(leases []Lease, ttl time.Duration) error {
	for i, l := range leases {
		if err := CheckLease(l, ttl); err != nil {
			return fmt.Errorf("lock: renewal %d of the batch (%q): %w", i, l.Key, err)
		}
	}
	return nil
}

// RenewBatch renews leases through c's RenewBatch when it has one, and
// otherwise one after another through RenewLease, stopping at the first
// error.
func RenewBatch(ctx context.Context, c Claimer, leases []Lease, ttl time.Duration) ([]bool, error) {
	if b, ok := c.(BatchRenewer); ok {
		return b.RenewBatch(ctx, leases, ttl)
	}
	if err := CheckRenewals(leases, ttl); err != nil {
		return nil, err
	}
	renewed := make([]bool, len(leases))
	for i, l := range leases {
		ok, err := c.RenewLease(ctx, l, ttl)
		if err != nil {
			return nil, err
		}
		renewed[i] = ok
	}
	return renewed, nil
}

// LeaseEnd is a lease to release and, when Run is not nil, how its run
// ended (see Claimer.ReleaseLease).
type LeaseEnd struct {
	Lease Lease
	Run   *RunRecord
}

// BatchReleaser is a Claimer that releases many leases in one call: the
// runs of a burst end together, and their releases then cost about one
// round trip, not one each.
//
// ReleaseBatch answers ends[i] in released[i] as ReleaseLease would have,
// had the leases been released one after another in their order; each
// release (with its run record) is atomic on its own. When one of them is
// invalid the whole batch fails with an error naming it, and nothing is
// released. A store failure is one error for the whole batch, with no
// results: any of them may have been released, and a lease released
// already answers false when asked again.
type BatchReleaser interface {
	ReleaseBatch(ctx context.Context, ends []LeaseEnd) ([]bool, error)
}

// CheckEnds checks the leases and run records of a ReleaseBatch, and
// returns the run records as a store records them (see CheckRun).
func CheckEnds(ends []LeaseEnd) ([]*RunRecord, error) {
	runs := make([]*RunRecord, len(ends))
	for i, e := range ends {
		err := CheckLease(e.Lease, -1)
		if err == nil {
			runs[i], err = CheckRun(e.Lease, e.Run)
		}
		if err != nil {
			return nil, fmt.Errorf("lock: release %d of the batch (%q): %w", i, e.Lease.Key, err)
		}
	}
	return runs, nil
}

// ReleaseBatch releases ends through c's ReleaseBatch when it has one, and
// otherwise one after another through ReleaseLease, stopping at the first
// error.
func ReleaseBatch(ctx context.Context, c Claimer, ends []LeaseEnd) ([]bool, error) {
	if b, ok := c.(BatchReleaser); ok {
		return b.ReleaseBatch(ctx, ends)
	}
	if _, err := CheckEnds(ends); err != nil {
		return nil, err
	}
	released := make([]bool, len(ends))
	for i, e := range ends {
		ok, err := c.ReleaseLease(ctx, e.Lease, e.Run)
		if err != nil {
			return nil, err
		}
		released[i] = ok
	}
	return released, nil
}

// Store is what the scheduler needs of a lock store.
type Store interface {
	Backend
	Claimer
}

// LeaseKey is the Backend key that a claim under policy p locks: the task
// name itself, so that IsLocked(task) and Owner(task) show who runs it, or
// under Allow "task@tick" (tick in RFC 3339, UTC, millisecond precision).
// Task names may not hold '@' (see CheckTask), so the two never meet.
func LeaseKey(task string, tick time.Time, p Policy) string {
	if p == Allow {
		return task + "@" + tick.UTC().Format("2006-01-02T15:04:05.000Z")
	}
	return task
}

// CheckTask checks a task name: not empty, and without '@', which separates
// the name from the tick in an Allow lease's key.
func CheckTask(name string) error {
	if err := CheckKey(name); err != nil {
		return err
	}
	if strings.Contains(name, "@") {
		return fmt.Errorf("%w: task name %q contains '@', which beat keeps for the per-tick locks of concurrency_policy Allow; use another character", ErrInvalidKey, name)
	}
	return nil
}

// CheckClaim checks a claim request's arguments.
func CheckClaim(req ClaimRequest) error {
	var skew, window error
	if req.MaxSkew < 0 {
		skew = fmt.Errorf("lock: max clock skew %v is negative", req.MaxSkew)
	}
	if !req.NotAfter.IsZero() && !req.NotAfter.After(req.Tick) {
		window = fmt.Errorf("lock: NotAfter %v is not after the tick %v", req.NotAfter, req.Tick)
	}
	return errors.Join(CheckTask(req.Task), CheckOwner(req.Owner), CheckTTL(req.TTL), checkPolicy(req.Policy), skew, window)
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

// TrustRecord is how a store reads a task's claim record against its clock:
// last and prev (the last claimed tick and the one decided before it) and
// busy (the last tick skipped as Busy), in Unix ms, 0 for none; horizon is
// the store's clock plus MaxSkew, in Unix ms. It returns the last claimed
// and skipped ticks to judge by, with what lies past the horizon
// disregarded (see Claimer: a claimed tick past it falls back to prev), and
// the disregarded claim (ClaimResult.FutureRecord), 0 when none.
func TrustRecord(last, prev, busy, horizon int64) (trustedLast, trustedBusy, future int64) {
	if last > horizon {
		future, last = last, prev
		if last > horizon {
			last = 0
		}
	}
	if busy > horizon {
		busy = 0
	}
	return last, busy, future
}
