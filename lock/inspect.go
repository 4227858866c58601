package lock

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// Run results, as RunRecord.Result holds them.
const (
	RunSucceeded = "succeeded"
	RunFailed    = "failed"
	RunLost      = "lost"      // the lease could not be renewed; the run was cancelled
	RunTimeout   = "timeout"   // the run outlived its task's timeout
	RunCancelled = "cancelled" // the replica shut down before the run returned
)

// MaxRunError is how much of a run's error a store keeps.
const MaxRunError = 512

// RunRecord is how a run ended. ReleaseLease records it with the release of
// the run's lease, for `beat status`.
type RunRecord struct {
	Tick     time.Time // the run's tick
	Token    uint64    // its fencing token
	Owner    string    // the lease's owner, "<instance id>/<session>"
	Result   string    // one of the Run* results
	Duration time.Duration
	// Error is the run's error, cut to MaxRunError bytes; "" when it
	// succeeded.
	Error string
	// Ended is the store's clock when it recorded the end; the store sets
	// it, whatever the caller passes.
	Ended time.Time
}

// TaskRecord is what a store holds about one task.
type TaskRecord struct {
	Task string
	// LastClaimed is the last claimed tick and Token its fencing token;
	// zero when no tick of the task was claimed.
	LastClaimed time.Time
	Token       uint64
	// LastSkipped is the last tick skipped as Busy; zero when none.
	LastSkipped time.Time
	// Holder is the owner of the live lock of the last claim, and LockLeft
	// the time left on it; "" and 0 when that lock is free.
	Holder   string
	LockLeft time.Duration
	// LastRun is how the last recorded run ended; nil before any did.
	LastRun *RunRecord
	// Err is set, and the fields above but Task are not, when the store's
	// record of the task cannot be read (written by hand, or by another
	// program); the other records are listed all the same.
	Err error
}

var (
	// ErrHeld is returned by Inspector.Forget while the task's lock is live.
	ErrHeld = errors.New("lock: the task's lock is held")
	// ErrRecent is returned by Inspector.Forget while the task's last
	// decided tick is recent.
	ErrRecent = errors.New("lock: the task's last tick is recent")
)

// RevokedOwner holds a lock that Inspector.ForceRelease revoked, until it
// expires.
const RevokedOwner = "(revoked)"

// Inspector reads and repairs a store's records, for operators.
//
// Tasks returns the record of every task the store holds (a claim, a
// skipped tick or a run), sorted by name, and the store's clock.
//
// ForceRelease revokes the live lock of the task's last claim, whoever
// holds it, and reports whether there was one: the lock passes to
// RevokedOwner for hold, so that the holder's next renewal fails (its run
// is cancelled with ErrLost) while a Forbid claim of the task is still
// Busy, as it would be while that run holds the lock: given a hold of a
// lock ttl, the revoked run has stopped trusting its lease before another
// can start. The claim record stays: the tick stays claimed.
//
// Forget deletes the task's records (claimed and skipped ticks, last run).
// It deletes nothing, and returns ErrHeld while the lock of its last claim
// is live, or ErrRecent while its last claimed or skipped tick lies less
// than minAge before the store's clock: a replica still running an older
// schedule could claim that tick again, late, once its record is gone. The
// fencing counter stays, so that the tokens of a task that comes back
// under the same name stay above every earlier one.
//
// Argument and store errors are as for Backend.
type Inspector interface {
	Tasks(ctx context.Context) ([]TaskRecord, time.Time, error)
	ForceRelease(ctx context.Context, task string, hold time.Duration) (bool, error)
	Forget(ctx context.Context, task string, minAge time.Duration) error
}

// CheckRun checks the run a lease's release records, and returns the record
// to keep (nil for none): the lease's token and owner, the error cut to
// MaxRunError bytes on a UTF-8 boundary. Backends share it, so that all of
// them refuse the same records.
func CheckRun(l Lease, run *RunRecord) (*RunRecord, error) {
	if run == nil {
		return nil, nil
	}
	var errs []error
	switch run.Result {
	case RunSucceeded, RunFailed, RunLost, RunTimeout, RunCancelled:
	default:
		errs = append(errs, fmt.Errorf("result %q is not one of %q, %q, %q, %q, %q", run.Result,
			RunSucceeded, RunFailed, RunLost, RunTimeout, RunCancelled))
	}
	if run.Token != 0 && run.Token != l.Token {
		errs = append(errs, fmt.Errorf("token %d is not the lease's %d", run.Token, l.Token))
	}
	if run.Owner != "" && run.Owner != l.Owner {
		errs = append(errs, fmt.Errorf("owner %q is not the lease's %q", run.Owner, l.Owner))
	}
	if run.Duration < 0 {
		errs = append(errs, fmt.Errorf("duration %v is negative", run.Duration))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("invalid run record: %w", err)
	}
	if err := CheckTask(l.Task); err != nil {
		return nil, fmt.Errorf("the lease's task, under which the run is recorded: %w", err)
	}
	return &RunRecord{Tick: run.Tick, Token: l.Token, Owner: l.Owner, Result: run.Result,
		Duration: run.Duration, Error: cutError(run.Error)}, nil
}

// cutError cuts s to MaxRunError bytes, on a UTF-8 boundary.
func cutError(s string) string {
	if len(s) <= MaxRunError {
		return s
	}
	n := MaxRunError
	for i := 0; i < utf8.UTFMax-1 && !utf8.RuneStart(s[n]); i++ {
		n--
	}
	if !utf8.RuneStart(s[n]) {
		n = MaxRunError // not UTF-8 here: no boundary to keep
	}
	return s[:n]
}
