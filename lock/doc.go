// Package lock defines the contract between the beat scheduler and the store
// that keeps replicas from running the same tick twice.
//
// A [Backend] holds named, owned, expiring locks. Every backend satisfies the
// same table, checked by the shared suite in package lock/locktest:
//
//	call                                            result
//	TryAcquire, key free or expired                 true; owner set, expires ttl from now
//	TryAcquire, held by the same owner              true; expiry reset to ttl from now (atomically)
//	TryAcquire, held by another owner, live         false
//	Release by the owner, live                      true; key freed
//	Release by a non-owner, missing or expired      false; nothing changes
//	Renew by the owner, live                        true; expiry reset to ttl from now
//	Renew by a non-owner, missing or expired        false; an expired lock is never revived
//	IsLocked                                        true iff a live (unexpired) lock exists
//	Owner                                           (owner, true) iff live; ("", false) otherwise
//	ReleaseAll(owner)                               frees every live lock of owner; returns how
//	                                                many; other owners' locks are untouched
//	empty key / empty owner / ttl < 1ms             an error wrapping ErrInvalidKey /
//	                                                ErrInvalidOwner / ErrInvalidTTL
//	store unreachable, ctx done                     a non-nil error; never a false "acquired"
//
// Keys and owners are arbitrary UTF-8 strings (spaces, ':', '*', braces,
// newlines, non-ASCII). Every operation is atomic in the store, and expiry is
// judged by the store's clock, never the caller's. ReleaseAll costs
// O(locks held by that owner), never O(keyspace).
//
// A [Claimer] adds the scheduler's tick claim on top: one atomic step that
// deduplicates on (task, scheduled tick), applies the concurrency [Policy],
// takes the task's lock and hands out a fencing token. It judges ticks by
// the store's clock (a tick ahead of it is NotYet, or ClockAhead beyond the
// request's MaxSkew) and by the store's epoch, the instant from which the
// store holds every claim record: a tick before it is StoreLost, so a store
// that lost its records never hands out a tick a second time.
package lock
