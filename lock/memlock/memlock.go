// Package memlock is a lock.Store kept in the memory of one process: for a
// single replica, for tests, and as the reference the Redis backend is held to.
package memlock

import (
	"container/heap"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/beatlock/beat/lock"
)

var (
	_ lock.Store         = (*Backend)(nil)
	_ lock.Inspector     = (*Backend)(nil)
	_ lock.BatchClaimer  = (*Backend)(nil)
	_ lock.BatchReleaser = (*Backend)(nil)
	_ lock.BatchRenewer  = (*Backend)(nil)
)

// Backend is an in-process lock store, safe for concurrent use. Expiry is
// judged by its clock, which by default is the system's monotonic clock.
type Backend struct {
	now func() time.Time

	mu     sync.Mutex
	locks  map[string]*entry
	owners map[string]map[string]struct{} // owner -> keys, so ReleaseAll is O(locks of owner)
	expiry expiryHeap                     // live entries by expiry, so expired ones are dropped even if nobody asks for them
	tasks  map[string]*taskState
	// epoch is when the backend was made: it holds no claim from before,
	// so a restarted process does not run again a tick its predecessor ran.
	epoch time.Time
}

type entry struct {
	key     string
	owner   string
	token   uint64 // fencing token of the claim that set it; 0 for TryAcquire
	expires time.Time
	index   int // position in the expiry heap
}

// taskState is a task's claim record; ticks are Unix milliseconds, 0 for none.
type taskState struct {
	last  int64 // the last claimed tick
	busy  int64 // the last tick skipped as busy
	fence uint64
	// Of the last claim, for a retry by the same process (ClaimRequest.Session).
	prev    int64 // the tick decided before it
	session string
	key     string // the lease key the last claim locked (see lock.LeaseKey)
	rival   int64  // the last claimed tick another session was refused
	run     *lock.RunRecord
}

// listed reports whether the task has a record to show: a claim, a skipped
// tick or a run. A state holds only its fence once forgotten.
func (st *taskState) listed() bool {
	return st.last != 0 || st.busy != 0 || st.run != nil
}

// lastLock returns the live lock of the task's last claim, or nil: the
// lock on the claim's key that still carries the claim's token.
func (b *Backend) lastLock(st *taskState) *entry {
	if st == nil || st.last == 0 {
		return nil
	}
	if e := b.locks[st.key]; e != nil && e.token == st.fence {
		return e
	}
	return nil
}

// Option configures a Backend.
type Option func(*Backend)

// WithClock makes the backend read time from now, for tests that move time by
// hand. now must be safe for concurrent use.
func WithClock(now func() time.Time) Option {
	return func(b *Backend) { b.now = now }
}

// New returns an empty Backend.
func New(opts ...Option) *Backend {
	b := &Backend{
		now:    time.Now,
		locks:  make(map[string]*entry),
		owners: make(map[string]map[string]struct{}),
		tasks:  make(map[string]*taskState),
	}
	for _, o := range opts {
		o(b)
	}
	b.epoch = b.now()
	return b
}

// begin checks ctx, takes the mutex and drops expired entries. The caller
// must call b.mu.Unlock.
func (b *Backend) begin(ctx context.Context) (time.Time, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, fmt.Errorf("memlock: %w", err)
	}
	b.mu.Lock()
	now := b.now()
	b.sweep(now)
	return now, nil
}

func (b *Backend) TryAcquire(ctx context.Context, key, owner string, ttl time.Duration) (bool, error) {
	if err := lock.CheckHold(key, owner, ttl); err != nil {
		return false, err
	}
	now, err := b.begin(ctx)
	if err != nil {
		return false, err
	}
	defer b.mu.Unlock()
	e := b.locks[key]
	if e != nil && e.owner != owner {
		return false, nil
	}
	var token uint64
	if e != nil {
		token = e.token
	}
	b.set(key, owner, token, now.Add(ttl))
	return true, nil
}

func (b *Backend) Release(ctx context.Context, key, owner string) (bool, error) {
	if err := lock.CheckRelease(key, owner); err != nil {
		return false, err
	}
	if _, err := b.begin(ctx); err != nil {
		return false, err
	}
	defer b.mu.Unlock()
	e := b.locks[key]
	if e == nil || e.owner != owner {
		return false, nil
	}
	b.remove(key, e)
	return true, nil
}

func (b *Backend) Renew(ctx context.Context, key, owner string, ttl time.Duration) (bool, error) {
	if err := lock.CheckHold(key, owner, ttl); err != nil {
		return false, err
	}
	now, err := b.begin(ctx)
	if err != nil {
		return false, err
	}
	defer b.mu.Unlock()
	e := b.locks[key]
	if e == nil || e.owner != owner {
		return false, nil
	}
	b.set(key, owner, e.token, now.Add(ttl))
	return true, nil
}

func (b *Backend) IsLocked(ctx context.Context, key string) (bool, error) {
	_, ok, err := b.Owner(ctx, key)
	return ok, err
}

func (b *Backend) Owner(ctx context.Context, key string) (string, bool, error) {
	if err := lock.CheckKey(key); err != nil {
		return "", false, err
	}
	if _, err := b.begin(ctx); err != nil {
		return "", false, err
	}
	defer b.mu.Unlock()
	if e := b.locks[key]; e != nil {
		return e.owner, true, nil
	}
	return "", false, nil
}

func (b *Backend) ReleaseAll(ctx context.Context, owner string) (uint64, error) {
	if err := lock.CheckOwner(owner); err != nil {
		return 0, err
	}
	if _, err := b.begin(ctx); err != nil {
		return 0, err
	}
	defer b.mu.Unlock()
	var n uint64
	for key := range b.owners[owner] {
		b.remove(key, b.locks[key])
		n++
	}
	return n, nil
}

func (b *Backend) Epoch(ctx context.Context) (time.Time, time.Time, error) {
	now, err := b.begin(ctx)
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	defer b.mu.Unlock()
	return b.epoch, now, nil
}

func (b *Backend) Claim(ctx context.Context, req lock.ClaimRequest) (lock.ClaimResult, error) {
	if err := lock.CheckClaim(req); err != nil {
		return lock.ClaimResult{}, err
	}
	now, err := b.begin(ctx)
	if err != nil {
		return lock.ClaimResult{}, err
	}
	defer b.mu.Unlock()
	return b.claim(req, now), nil
}

// ClaimBatch claims every request under one hold of the store's mutex, at
// one reading of its clock.
func (b *Backend) ClaimBatch(ctx context.Context, reqs []lock.ClaimRequest) ([]lock.ClaimResult, error) {
	if err := lock.CheckBatch(reqs); err != nil {
		return nil, err
	}
	now, err := b.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	results := make([]lock.ClaimResult, len(reqs))
	for i, req := range reqs {
		results[i] = b.claim(req, now)
	}
	return results, nil
}

// claim decides req at now; b.mu is held.
func (b *Backend) claim(req lock.ClaimRequest, now time.Time) lock.ClaimResult {
	res := lock.ClaimResult{StoreTime: now, Epoch: b.epoch}
	tick := req.Tick.UnixMilli()
	nowMS := now.UnixMilli()
	horizon := now.Add(req.MaxSkew).UnixMilli()
	switch {
	case tick > horizon:
		res.Outcome = lock.ClockAhead
		return res
	case tick > nowMS:
		res.Outcome = lock.NotYet
		return res
	case tick < b.epoch.UnixMilli():
		res.Outcome = lock.StoreLost
		return res
	}

	st := b.tasks[req.Task]
	if st == nil {
		st = &taskState{}
		b.tasks[req.Task] = st
	}
	// A record written while the clock read differently (see lock.Claimer).
	last, busy, future := lock.TrustRecord(st.last, st.prev, st.busy, horizon)
	if future != 0 {
		res.FutureRecord = msTime(future)
	}
	decided := max(last, busy)
	res.Previous = msTime(decided)
	key := lock.LeaseKey(req.Task, req.Tick, req.Policy)
	if last != 0 && tick <= last {
		if e := b.locks[key]; tick == st.last && req.Session != "" && req.Session == st.session &&
			e != nil && e.owner == req.Owner && e.token == st.fence {
			// The same process asks again: its first answer was lost.
			b.set(key, req.Owner, st.fence, now.Add(req.TTL))
			res.Outcome, res.Previous = lock.Claimed, msTime(st.prev)
			res.Lease = lock.Lease{Task: req.Task, Key: key, Owner: req.Owner, Token: st.fence}
			return res
		}
		if tick < last && tick > st.prev && last == st.last {
			res.Outcome = lock.TooLate // passed over: claims only move forward
			return res
		}
		if req.Session != st.session {
			st.rival = st.last // a peer lost the race: the winner's next claim says so
		}
		res.Outcome = lock.AlreadyClaimed
		return res
	}
	if busy != 0 && tick <= busy {
		res.Outcome = lock.Busy
		return res
	}
	if !req.NotAfter.IsZero() && !now.Before(req.NotAfter) {
		res.Outcome = lock.TooLate
		return res
	}
	// A memory store never loses its records while it lives, so no claim is
	// Guarded.
	if req.Policy == lock.Forbid && b.locks[key] != nil {
		st.busy = tick
		res.Outcome = lock.Busy
		return res
	}
	if old := b.locks[key]; old != nil {
		b.remove(key, old) // Replace: the old holder's lease no longer matches
	}
	// The token also follows the clock, so that it keeps rising even if this
	// record is lost and rebuilt from nothing.
	res.Contested = st.last != 0 && (st.session != req.Session || st.rival == st.last)
	st.fence = max(st.fence+1, uint64(max(now.UnixMicro(), 0)))
	st.last, st.prev, st.busy = tick, decided, 0 // busy is older: decided by it
	st.session, st.key = req.Session, key
	b.set(key, req.Owner, st.fence, now.Add(req.TTL))
	res.Outcome = lock.Claimed
	res.Lease = lock.Lease{Task: req.Task, Key: key, Owner: req.Owner, Token: st.fence}
	return res
}

// msTime is the inverse of time.Time.UnixMilli, in UTC; 0 is the zero time.
func msTime(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

func (b *Backend) RenewLease(ctx context.Context, l lock.Lease, ttl time.Duration) (bool, error) {
	if err := lock.CheckLease(l, ttl); err != nil {
		return false, err
	}
	renewed, err := b.RenewBatch(ctx, []lock.Lease{l}, ttl)
	if err != nil {
		return false, err
	}
	return renewed[0], nil
}

// RenewBatch renews every lease under one hold of the store's mutex, at one
// reading of its clock.
func (b *Backend) RenewBatch(ctx context.Context, leases []lock.Lease, ttl time.Duration) ([]bool, error) {
	if err := lock.CheckRenewals(leases, ttl); err != nil {
		return nil, err
	}
	now, err := b.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	renewed := make([]bool, len(leases))
	for i, l := range leases {
		if e := b.locks[l.Key]; e != nil && e.owner == l.Owner && e.token == l.Token {
			b.set(l.Key, l.Owner, l.Token, now.Add(ttl))
			renewed[i] = true
		}
	}
	return renewed, nil
}

func (b *Backend) ReleaseLease(ctx context.Context, l lock.Lease, run *lock.RunRecord) (bool, error) {
	released, err := b.ReleaseBatch(ctx, []lock.LeaseEnd{{Lease: l, Run: run}})
	if err != nil {
		return false, fmt.Errorf("memlock: release-lease: %w", err)
	}
	return released[0], nil
}

// ReleaseBatch releases every lease under one hold of the store's mutex.
func (b *Backend) ReleaseBatch(ctx context.Context, ends []lock.LeaseEnd) ([]bool, error) {
	runs, err := lock.CheckEnds(ends)
	if err != nil {
		return nil, err
	}
	for _, rec := range runs {
		if rec != nil {
			// At the millisecond precision of every store.
			if !rec.Tick.IsZero() {
				rec.Tick = msTime(rec.Tick.UnixMilli())
			}
			rec.Duration = rec.Duration.Truncate(time.Millisecond)
		}
	}
	now, err := b.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	released := make([]bool, len(ends))
	for i, end := range ends {
		l := end.Lease
		if runs[i] != nil {
			b.record(l.Task, runs[i], now)
		}
		if e := b.locks[l.Key]; e != nil && e.owner == l.Owner && e.token == l.Token {
			b.remove(l.Key, e)
			released[i] = true
		}
	}
	return released, nil
}

// set stores key's entry or updates it in place; callers hold b.mu.
func (b *Backend) set(key, owner string, token uint64, expires time.Time) {
	if e := b.locks[key]; e != nil && e.owner == owner {
		e.token, e.expires = token, expires
		heap.Fix(&b.expiry, e.index)
		return
	} else if e != nil {
		b.remove(key, e)
	}
	e := &entry{key: key, owner: owner, token: token, expires: expires}
	b.locks[key] = e
	heap.Push(&b.expiry, e)
	keys := b.owners[owner]
	if keys == nil {
		keys = make(map[string]struct{})
		b.owners[owner] = keys
	}
	keys[key] = struct{}{}
}

func (b *Backend) remove(key string, e *entry) {
	delete(b.locks, key)
	heap.Remove(&b.expiry, e.index)
	b.unindex(e.owner, key)
}

func (b *Backend) unindex(owner, key string) {
	keys := b.owners[owner]
	delete(keys, key)
	if len(keys) == 0 {
		delete(b.owners, owner)
	}
}

// sweep drops every entry whose expiry has come.
func (b *Backend) sweep(now time.Time) {
	for len(b.expiry) > 0 && !b.expiry[0].expires.After(now) {
		b.remove(b.expiry[0].key, b.expiry[0])
	}
}

// expiryHeap orders entries by expiry; each entry knows its index, so a
// renewal or release fixes the heap in place and it never holds stale items.
type expiryHeap []*entry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expires.Before(h[j].expires) }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *expiryHeap) Push(x any) {
	e := x.(*entry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}
