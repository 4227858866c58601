package lock

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Backend is a store of named locks, each held by one owner until it is
// released or its time to live runs out.
//
// TryAcquire takes key for owner for ttl. It returns true when the key was
// free or expired, and also when owner already holds it, in which case the
// expiry is reset to ttl from now. It returns false when another owner holds a
// live lock on key.
//
// Release frees key if owner holds a live lock on it and reports whether it
// did; otherwise it changes nothing and returns false.
//
// Renew resets the expiry of owner's live lock on key to ttl from now and
// returns true; it returns false, and changes nothing, when the lock is
// missing, expired or held by another owner. An expired lock is never revived.
//
// IsLocked reports whether a live lock exists on key. Owner returns the holder
// of a live lock on key and true, or "" and false.
//
// ReleaseAll frees every live lock held by owner and returns how many it
// freed; locks of other owners are untouched.
//
// An empty key, an empty owner or a ttl shorter than [MinTTL] gives an error
// wrapping [ErrInvalidKey], [ErrInvalidOwner] or [ErrInvalidTTL]. When the
// store cannot answer (unreachable, closed, ctx done, a malformed reply) the
// call returns a non-nil error, and a boolean result is false: an error never
// comes with a claim of success.
//
// Implementations are safe for concurrent use.
type Backend interface {
	TryAcquire(ctx context.Context, key, owner string, ttl time.Duration) (bool, error)
	Release(ctx context.Context, key, owner string) (bool, error)
	Renew(ctx context.Context, key, owner string, ttl time.Duration) (bool, error)
	IsLocked(ctx context.Context, key string) (bool, error)
	Owner(ctx context.Context, key string) (owner string, ok bool, err error)
	ReleaseAll(ctx context.Context, owner string) (uint64, error)
}

// MinTTL is the shortest time to live a lock may be given: stores count
// expiry in milliseconds.
const MinTTL = time.Millisecond

var (
	// ErrInvalidKey: the lock key is empty.
	ErrInvalidKey = errors.New("lock: key must not be empty")
	// ErrInvalidOwner: the owner is empty.
	ErrInvalidOwner = errors.New("lock: owner must not be empty")
	// ErrInvalidTTL: the time to live is shorter than MinTTL.
	ErrInvalidTTL = errors.New("lock: ttl must be at least 1ms")
	// ErrLost is the cause given to a run's context when its lock could not
	// be renewed, or its lease ran out on the local clock before a renewal
	// came through: another replica may now hold the task.
	ErrLost = errors.New("lock: lease lost")
	// ErrRefused marks a store error that says the store refuses this
	// client as configured (credentials, permissions, TLS), rather than
	// that it could not be reached: retrying does not help until the
	// configuration is fixed.
	ErrRefused = errors.New("lock: the store refuses this client")
	// ErrNotReplicated marks a claim that the store granted but could not
	// confirm on as many replicas as asked (Redis's min_replicas): it is no
	// claim, and its tick is not run unless a retry confirms it.
	ErrNotReplicated = errors.New("lock: the claim is not on enough replicas")
)

// CheckKey returns ErrInvalidKey when key is empty. Backends share these
// checks so that all of them refuse the same input with the same error.
func CheckKey(key string) error {
	if key == "" {
		return ErrInvalidKey
	}
	return nil
}

// CheckOwner returns ErrInvalidOwner when owner is empty.
func CheckOwner(owner string) error {
	if owner == "" {
		return ErrInvalidOwner
	}
	return nil
}

// CheckHold checks the arguments of TryAcquire and Renew.
func CheckHold(key, owner string, ttl time.Duration) error {
	return errors.Join(CheckKey(key), CheckOwner(owner), CheckTTL(ttl))
}

// CheckRelease checks the arguments of Release.
func CheckRelease(key, owner string) error { return errors.Join(CheckKey(key), CheckOwner(owner)) }

// CheckRevoke checks the arguments of Inspector.ForceRelease.
func CheckRevoke(task string, hold time.Duration) error {
	return errors.Join(CheckTask(task), CheckTTL(hold))
}

// CheckTTL returns an error wrapping ErrInvalidTTL when ttl < MinTTL.
func CheckTTL(ttl time.Duration) error {
	if ttl < MinTTL {
		return fmt.Errorf("%w (got %v)", ErrInvalidTTL, ttl)
	}
	return nil
}
