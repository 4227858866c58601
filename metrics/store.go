package metrics

import (
	"context"
	"time"

	"github.com/beatlock/beat/lock"
)

// Store returns s measured: every call counts in
// beat_store_operations_total and beat_store_operation_duration_seconds.
func (m *Metrics) Store(s lock.Store) lock.Store {
	for _, op := range storeOps {
		m.storeLatency.WithLabelValues(op)
		for _, r := range []string{"ok", "error"} {
			m.storeOps.WithLabelValues(op, r)
		}
	}
	return &store{s: s, m: m}
}

var storeOps = []string{"try_acquire", "release", "renew", "is_locked", "owner", "release_all",
	"epoch", "claim", "claim_batch", "renew_lease", "renew_batch", "release_lease", "release_batch"}

type store struct {
	s lock.Store
	m *Metrics
}

// done records one call of op that began at start.
func (s *store) done(op string, start time.Time, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	s.m.storeOps.WithLabelValues(op, result).Inc()
	s.m.storeLatency.WithLabelValues(op).Observe(time.Since(start).Seconds())
}

func (s *store) TryAcquire(ctx context.Context, key, owner string, ttl time.Duration) (bool, error) {
	start := time.Now()
	ok, err := s.s.TryAcquire(ctx, key, owner, ttl)
	s.done("try_acquire", start, err)
	return ok, err
}

func (s *store) Release(ctx context.Context, key, owner string) (bool, error) {
	start := time.Now()
	ok, err := s.s.Release(ctx, key, owner)
	s.done("release", start, err)
	return ok, err
}

func (s *store) Renew(ctx context.Context, key, owner string, ttl time.Duration) (bool, error) {
	start := time.Now()
	ok, err := s.s.Renew(ctx, key, owner, ttl)
	s.done("renew", start, err)
	return ok, err
}

func (s *store) IsLocked(ctx context.Context, key string) (bool, error) {
	start := time.Now()
	ok, err := s.s.IsLocked(ctx, key)
	s.done("is_locked", start, err)
	return ok, err
}

func (s *store) Owner(ctx context.Context, key string) (string, bool, error) {
	start := time.Now()
	owner, ok, err := s.s.Owner(ctx, key)
	s.done("owner", start, err)
	return owner, ok, err
}

func (s *store) ReleaseAll(ctx context.Context, owner string) (uint64, error) {
	start := time.Now()
	n, err := s.s.ReleaseAll(ctx, owner)
	s.done("release_all", start, err)
	return n, err
}

func (s *store) Epoch(ctx context.Context) (time.Time, time.Time, error) {
	start := time.Now()
	epoch, now, err := s.s.Epoch(ctx)
	s.done("epoch", start, err)
	return epoch, now, err
}

func (s *store) Claim(ctx context.Context, req lock.ClaimRequest) (lock.ClaimResult, error) {
	start := time.Now()
	res, err := s.s.Claim(ctx, req)
	s.done("claim", start, err)
	return res, err
}

func (s *store) ClaimBatch(ctx context.Context, reqs []lock.ClaimRequest) ([]lock.ClaimResult, error) {
	start := time.Now()
	res, err := lock.ClaimBatch(ctx, s.s, reqs)
	s.done("claim_batch", start, err)
	return res, err
}

func (s *store) ReleaseBatch(ctx context.Context, ends []lock.LeaseEnd) ([]bool, error) {
	start := time.Now()
	released, err := lock.ReleaseBatch(ctx, s.s, ends)
	s.done("release_batch", start, err)
	return released, err
}

func (s *store) RenewBatch(ctx context.Context, leases []lock.Lease, ttl time.Duration) ([]bool, error) {
	start := time.Now()
	renewed, err := lock.RenewBatch(ctx, s.s, leases, ttl)
	s.done("renew_batch", start, err)
	return renewed, err
}

func (s *store) RenewLease(ctx context.Context, l lock.Lease, ttl time.Duration) (bool, error) {
	start := time.Now()
	ok, err := s.s.RenewLease(ctx, l, ttl)
	s.done("renew_lease", start, err)
	return ok, err
}

func (s *store) ReleaseLease(ctx context.Context, l lock.Lease, run *lock.RunRecord) (bool, error) {
	start := time.Now()
	ok, err := s.s.ReleaseLease(ctx, l, run)
	s.done("release_lease", start, err)
	return ok, err
}
