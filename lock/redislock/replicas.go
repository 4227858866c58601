package redislock

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/beatlock/beat/lock"
)

// ErrNotReplicated marks a claim that the master granted but that fewer
// replicas than WithMinReplicas asks for acknowledged in time. It is an
// error, not an outcome: the claim is held on the master, so the same
// process asking again for the same tick with the same session (see
// lock.ClaimRequest.Session) gets the same lease back, and waits for the
// replicas again.
var ErrNotReplicated = lock.ErrNotReplicated

// WithMinReplicas makes a claim whose outcome is lock.Claimed wait, with
// Redis's WAIT, until n replicas have acknowledged it, for at most timeout
// (and never past the call's context deadline); if fewer did, Claim returns
// an error wrapping ErrNotReplicated instead of the lease. No run then
// starts on a claim that only the master holds: one that a failover to a
// replica would forget, or that a master cut off from its replicas by a
// partition granted while a promoted replica grants the same tick.
//
// WAIT counts the writes of the connection it is sent on, so a claim then
// runs on a connection of its own taken from the pool: on a *redis.Client
// (which includes a Sentinel failover client: its pool dials the current
// master) through Conn, on a *redis.ClusterClient through the Conn of the
// master of the claim's slot. Other clients are a configuration error.
// With n = 0, the default, a claim stays one command on the shared pool.
func WithMinReplicas(n int, timeout time.Duration) Option {
	return func(b *Backend) { b.minReplicas, b.waitTimeout = n, timeout }
}

// checkReplicas checks the WithMinReplicas settings against the client.
func (b *Backend) checkReplicas() error {
	switch {
	case b.minReplicas == 0:
		return nil
	case b.minReplicas < 0:
		return fmt.Errorf("%w: min replicas %d: must not be negative", ErrConfig, b.minReplicas)
	case b.waitTimeout < time.Millisecond:
		// WAIT counts in milliseconds, and WAIT n 0 blocks forever.
		return fmt.Errorf("%w: min replicas %d with a WAIT timeout of %v: it must be at least 1ms", ErrConfig, b.minReplicas, b.waitTimeout)
	}
	switch b.client.(type) {
	case *redis.Client, *redis.ClusterClient:
		return nil
	}
	return fmt.Errorf("%w: min replicas needs a connection of its own for each claim, which a %T does not give; use a *redis.Client or *redis.ClusterClient", ErrConfig, b.client)
}

// claimReplicated claims on a connection of its own, and waits there for
// the replicas when a claim is granted.
func (b *Backend) claimReplicated(ctx context.Context, reqs []lock.ClaimRequest) ([]lock.ClaimResult, error) {
	conn, err := b.dedicatedConn(ctx, b.stateKey(reqs[0].Task))
	if err != nil {
		return nil, fmt.Errorf("redislock: %s: %w", claimWhat(reqs), err)
	}
	defer conn.Close()
	results, err := b.claim(ctx, conn, reqs)
	if err != nil {
		b.reloadIfMoved(ctx, err)
		return nil, err
	}
	for _, res := range results {
		if res.Outcome == lock.Claimed {
			if err := b.waitReplicas(ctx, conn, reqs); err != nil {
				return nil, err
			}
			break
		}
	}
	return results, nil
}

// dedicatedConn returns a connection of its own to the server that holds
// key, for a claim and its WAIT. The caller closes it, which returns it to
// the pool.
func (b *Backend) dedicatedConn(ctx context.Context, key string) (*redis.Conn, error) {
	switch c := b.client.(type) {
	case *redis.Client:
		return c.Conn(), nil
	case *redis.ClusterClient:
		node, err := c.MasterForKey(ctx, key)
		if err != nil {
			return nil, err
		}
		return node.Conn(), nil
	}
	return nil, b.checkReplicas() // not reached: New refuses other clients
}

// reloadIfMoved tells a cluster client to reload its slot map when err
// says the claim's slot moved: a node's own connection does not follow
// redirections, so the claim failed, and its retry goes to the slot's new
// master.
func (b *Backend) reloadIfMoved(ctx context.Context, err error) {
	c, ok := b.client.(*redis.ClusterClient)
	if !ok {
		return
	}
	_, moved := redis.IsMovedError(err)
	_, ask := redis.IsAskError(err)
	if moved || ask {
		c.ReloadState(ctx)
	}
}

// waitReplicas sends WAIT on conn, the connection that made the claim, and
// reports an error unless b.minReplicas replicas acknowledged it.
func (b *Backend) waitReplicas(ctx context.Context, conn *redis.Conn, reqs []lock.ClaimRequest) error {
	timeout := b.waitTimeout
	if deadline, ok := ctx.Deadline(); ok {
		// Leave time for the answer, so that a slow replica is reported as
		// such and the connection survives: Redis ends a WAIT at its
		// timeout or up to a cron tick (100ms at the default hz) later.
		left := time.Until(deadline)
		left -= min(left/2, 300*time.Millisecond)
		timeout = max(min(timeout, left), time.Millisecond)
	}
	n, err := conn.Wait(ctx, b.minReplicas, timeout).Result()
	if err != nil {
		return fmt.Errorf("redislock: %s: WAIT for %d replicas: %w", claimWhat(reqs), b.minReplicas, err)
	}
	if n < int64(b.minReplicas) {
		return fmt.Errorf("redislock: %s: %w: %d of %d replicas acknowledged it within %v",
			claimWhat(reqs), ErrNotReplicated, n, b.minReplicas, timeout)
	}
	return nil
}
