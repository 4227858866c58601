// Package redislock is a lock.Store on Redis (standalone, Sentinel or
// Cluster) through go-redis v9.
//
// A lock is a string key, the prefix followed by "lock:" and the lock's key,
// whose value is the owner and whose PX is its expiry. Every operation is one
// Lua script, so it is atomic and takes one round trip; expiry is judged by
// the server's clock. The one exception is Tasks, an operator's listing: it
// finds the task records with SCAN and reads them a batch at a time.
//
// On Redis Cluster a script may only touch keys of one hash slot. All keys of
// a Backend share the prefix, so a prefix with a hash tag (the default
// "{beat}:") keeps them in one slot whatever the lock keys and owners
// contain: Redis hashes only the first {...} of a key. On any client but a
// single node's *redis.Client (Cluster, Ring) a prefix without a hash tag is
// a configuration error, returned by every call. Scripts use TIME before
// writing, which needs Redis 5 or later.
//
// WithMinReplicas makes a granted claim wait (WAIT) until replicas hold it.
package redislock

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/beatlock/beat/lock"
)

var (
	_ lock.Store         = (*Backend)(nil)
	_ lock.Inspector     = (*Backend)(nil)
	_ lock.BatchClaimer  = (*Backend)(nil)
	_ lock.BatchReleaser = (*Backend)(nil)
	_ lock.BatchRenewer  = (*Backend)(nil)
)

// DefaultKeyPrefix keeps a deployment's keys in one hash slot.
const DefaultKeyPrefix = "{beat}:"

// ErrConfig marks a Backend that cannot work with its client as configured.
var ErrConfig = errors.New("redislock: configuration")

// Backend is a lock.Store on Redis, safe for concurrent use.
type Backend struct {
	client redis.UniversalClient
	prefix string
	err    error // configuration error, returned by every call

	minReplicas int           // replicas a claim waits for (WithMinReplicas)
	waitTimeout time.Duration // how long it waits for them at most
}

// Option configures a Backend.
type Option func(*Backend)

// WithKeyPrefix puts every key of the Backend under prefix. Deployments that
// share one Redis must use different prefixes.
func WithKeyPrefix(prefix string) Option {
	return func(b *Backend) { b.prefix = prefix }
}

// New returns a Backend on client. The client stays the caller's to close.
// Create it with ContextTimeoutEnabled set in its options: without it
// go-redis ignores context deadlines, and a call into a network partition
// waits for the client's own read timeout instead of the caller's deadline.
func New(client redis.UniversalClient, opts ...Option) *Backend {
	b := &Backend{client: client, prefix: DefaultKeyPrefix}
	for _, o := range opts {
		o(b)
	}
	// Any client but a single node's (Cluster, Ring, ...) may spread keys
	// over shards by hash slot; only a hash tag keeps a script's keys together.
	if _, single := client.(*redis.Client); !single && !HasHashTag(b.prefix) {
		b.err = fmt.Errorf("%w: key prefix %q has no hash tag, so on a sharded client (%T) the keys of one lock "+
			"operation could fall in different slots; use a prefix like \"{beat}:\"", ErrConfig, b.prefix, client)
	}
	if b.err == nil {
		b.err = b.checkReplicas()
	}
	return b
}

// HasHashTag reports whether every key that starts with prefix hashes to the
// same Redis Cluster slot, whatever follows it: the prefix holds a '{' and,
// after it, a '}' with something in between.
func HasHashTag(prefix string) bool {
	open := strings.IndexByte(prefix, '{')
	if open < 0 {
		return false
	}
	end := strings.IndexByte(prefix[open+1:], '}')
	return end > 0
}

// Err returns the Backend's configuration error, if any, so that a program
// can refuse to start instead of failing at the first tick.
func (b *Backend) Err() error { return b.err }

func (b *Backend) lockKey(key string) string    { return b.prefix + "lock:" + key }
func (b *Backend) fenceKey(key string) string   { return b.prefix + "fence:" + key }
func (b *Backend) ownerKey(owner string) string { return b.prefix + "owner:" + owner }
func (b *Backend) stateKey(task string) string  { return b.prefix + "state:" + task }
func (b *Backend) epochKey() string             { return b.prefix + "epoch" }
func (b *Backend) epochServerKey() string       { return b.prefix + "epoch:server" }
func (b *Backend) epochGuardKey() string        { return b.prefix + "epoch:guard" }

// keys are the keys of the scripts that touch one lock.
func (b *Backend) keys(key, owner string) []string {
	return []string{b.lockKey(key), b.ownerKey(owner), b.fenceKey(key)}
}

func ms(d time.Duration) int64 { return d.Milliseconds() }

// runInt runs script and reads an integer reply.
func (b *Backend) runInt(ctx context.Context, op, key string, s *redis.Script, keys []string, args ...any) (int64, error) {
	if b.err != nil {
		return 0, b.err
	}
	n, err := s.Run(ctx, b.client, keys, args...).Int64()
	if err != nil {
		return 0, fmt.Errorf("redislock: %s %q: %w", op, key, err)
	}
	return n, nil
}

// runBool runs a script that answers 0 or 1.
func (b *Backend) runBool(ctx context.Context, op, key string, s *redis.Script, keys []string, args ...any) (bool, error) {
	n, err := b.runInt(ctx, op, key, s, keys, args...)
	if err != nil {
		return false, err
	}
	if n != 0 && n != 1 {
		return false, fmt.Errorf("redislock: %s %q: unexpected reply %d from the store", op, key, n)
	}
	return n == 1, nil
}

func (b *Backend) TryAcquire(ctx context.Context, key, owner string, ttl time.Duration) (bool, error) {
	if err := lock.CheckHold(key, owner, ttl); err != nil {
		return false, err
	}
	return b.runBool(ctx, "try-acquire", key, acquireScript, b.keys(key, owner), owner, ms(ttl), key)
}

func (b *Backend) Release(ctx context.Context, key, owner string) (bool, error) {
	if err := lock.CheckRelease(key, owner); err != nil {
		return false, err
	}
	return b.runBool(ctx, "release", key, releaseScript, b.keys(key, owner), owner, key)
}

func (b *Backend) Renew(ctx context.Context, key, owner string, ttl time.Duration) (bool, error) {
	if err := lock.CheckHold(key, owner, ttl); err != nil {
		return false, err
	}
	return b.runBool(ctx, "renew", key, renewScript, b.keys(key, owner), owner, ms(ttl), key)
}

func (b *Backend) IsLocked(ctx context.Context, key string) (bool, error) {
	_, ok, err := b.Owner(ctx, key)
	return ok, err
}

// Owner is a plain GET: a single command is atomic, and Redis never returns
// an expired key.
func (b *Backend) Owner(ctx context.Context, key string) (string, bool, error) {
	if err := lock.CheckKey(key); err != nil {
		return "", false, err
	}
	if b.err != nil {
		return "", false, b.err
	}
	owner, err := b.client.Get(ctx, b.lockKey(key)).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("redislock: owner %q: %w", key, err)
	}
	return owner, true, nil
}

func (b *Backend) ReleaseAll(ctx context.Context, owner string) (uint64, error) {
	if err := lock.CheckOwner(owner); err != nil {
		return 0, err
	}
	n, err := b.runInt(ctx, "release-all", owner, releaseAllScript,
		[]string{b.ownerKey(owner)}, owner, b.lockKey(""), b.fenceKey(""))
	if err == nil && n < 0 {
		err = fmt.Errorf("redislock: release-all %q: unexpected reply %d from the store", owner, n)
	}
	if err != nil {
		return 0, err
	}
	return uint64(n), nil
}

func (b *Backend) Epoch(ctx context.Context) (time.Time, time.Time, error) {
	if b.err != nil {
		return time.Time{}, time.Time{}, b.err
	}
	reply, err := epochScript.Run(ctx, b.client, []string{b.epochKey(), b.epochServerKey()}).Int64Slice()
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("redislock: epoch: %w", err)
	}
	if len(reply) != 2 || reply[0] <= 0 || reply[1] <= 0 {
		return time.Time{}, time.Time{}, fmt.Errorf("redislock: epoch: unexpected reply %v from the store", reply)
	}
	return time.UnixMilli(reply[0]).UTC(), time.UnixMilli(reply[1]).UTC(), nil
}

func (b *Backend) Claim(ctx context.Context, req lock.ClaimRequest) (lock.ClaimResult, error) {
	if err := lock.CheckClaim(req); err != nil {
		return lock.ClaimResult{}, err
	}
	res, err := b.claimBatch(ctx, []lock.ClaimRequest{req})
	if err != nil {
		return lock.ClaimResult{}, err
	}
	return res[0], nil
}

// ClaimBatch claims every request in one script call: one round trip,
// atomic as a whole. With WithMinReplicas the batch waits for the replicas
// once, and fails as a whole (ErrNotReplicated) when they do not confirm it.
func (b *Backend) ClaimBatch(ctx context.Context, reqs []lock.ClaimRequest) ([]lock.ClaimResult, error) {
	if err := lock.CheckBatch(reqs); err != nil {
		return nil, err
	}
	if len(reqs) == 0 {
		return nil, nil
	}
	return b.claimBatch(ctx, reqs)
}

func (b *Backend) claimBatch(ctx context.Context, reqs []lock.ClaimRequest) ([]lock.ClaimResult, error) {
	if b.err != nil {
		return nil, b.err
	}
	if b.minReplicas > 0 {
		return b.claimReplicated(ctx, reqs)
	}
	return b.claim(ctx, b.client, reqs)
}

// claim runs the claim script on s.
func (b *Backend) claim(ctx context.Context, s redis.Scripter, reqs []lock.ClaimRequest) ([]lock.ClaimResult, error) {
	first := reqs[0]
	keys := make([]string, 0, 4+3*len(reqs))
	keys = append(keys, b.epochKey(), b.epochServerKey(), b.epochGuardKey(), b.ownerKey(first.Owner))
	args := make([]any, 0, 5+4*len(reqs))
	args = append(args, first.Owner, ms(first.TTL), first.Session, ms(first.MaxSkew), unixMilli(first.KnownEpoch))
	leaseKeys := make([]string, len(reqs))
	for i, req := range reqs {
		key := lock.LeaseKey(req.Task, req.Tick, req.Policy)
		leaseKeys[i] = key
		keys = append(keys, b.stateKey(req.Task), b.lockKey(key), b.fenceKey(key))
		args = append(args, req.Tick.UnixMilli(), req.Policy.String(), key, unixMilli(req.NotAfter))
	}
	reply, err := claimScript.Run(ctx, s, keys, args...).Slice()
	if err != nil {
		return nil, fmt.Errorf("redislock: %s: %w", claimWhat(reqs), err)
	}
	results, err := parseClaims(reply, len(reqs))
	if err != nil {
		return nil, fmt.Errorf("redislock: %s: unexpected reply from the store: %w", claimWhat(reqs), err)
	}
	for i := range results {
		if results[i].Outcome == lock.Claimed {
			results[i].Lease.Task, results[i].Lease.Key, results[i].Lease.Owner = reqs[i].Task, leaseKeys[i], reqs[i].Owner
		}
	}
	return results, nil
}

// claimWhat names the claims of a batch for an error.
func claimWhat(reqs []lock.ClaimRequest) string {
	if len(reqs) == 1 {
		return fmt.Sprintf("claim %q at %s", reqs[0].Task, reqs[0].Tick.UTC().Format(time.RFC3339Nano))
	}
	return fmt.Sprintf("claim of %d ticks (%q at %s, ...)", len(reqs), reqs[0].Task, reqs[0].Tick.UTC().Format(time.RFC3339Nano))
}

// unixMilli is t in Unix milliseconds, 0 for the zero time.
func unixMilli(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// parseClaims reads the claim script's reply {now, epoch, then for each
// of n claims: outcome, previous, token, future, guarded}.
func parseClaims(reply []any, n int) ([]lock.ClaimResult, error) {
	if len(reply) != 2+5*n {
		return nil, fmt.Errorf("%d fields, want %d", len(reply), 2+5*n)
	}
	now, ok1 := reply[0].(int64)
	epoch, ok2 := reply[1].(int64)
	if !ok1 || !ok2 || now <= 0 || epoch <= 0 {
		return nil, fmt.Errorf("bad clock or epoch %v, %v", reply[0], reply[1])
	}
	results := make([]lock.ClaimResult, n)
	for i := range results {
		res, err := parseClaim(reply[2+5*i : 7+5*i])
		if err != nil {
			return nil, fmt.Errorf("claim %d: %w (%v)", i, err, reply[2+5*i:7+5*i])
		}
		res.StoreTime, res.Epoch = time.UnixMilli(now).UTC(), time.UnixMilli(epoch).UTC()
		results[i] = res
	}
	return results, nil
}

// parseClaim reads one claim's {outcome, previous, token, future, flag}.
func parseClaim(reply []any) (lock.ClaimResult, error) {
	var res lock.ClaimResult
	code, ok := reply[0].(int64)
	if !ok || code < int64(lock.Claimed) || code > int64(lock.TooLate) {
		return res, errors.New("bad outcome")
	}
	res.Outcome = lock.Outcome(code)
	var err error
	if res.Previous, err = msField(reply[1], "previous tick"); err != nil {
		return res, err
	}
	if res.FutureRecord, err = msField(reply[3], "future record"); err != nil {
		return res, err
	}
	flag, ok := reply[4].(int64)
	if !ok || flag < 0 || flag > 2 {
		return res, errors.New("bad flag")
	}
	res.Guarded, res.Contested = flag == 1, flag == 2
	if res.Outcome != lock.Claimed {
		return res, nil
	}
	tok, _ := reply[2].(string)
	token, err := strconv.ParseUint(tok, 10, 64)
	if err != nil || token == 0 {
		return res, fmt.Errorf("token %q: not a positive integer", tok)
	}
	res.Lease.Token = token
	return res, nil
}

// msField reads an optional Unix-millisecond string of a script's reply.
func msField(v any, what string) (time.Time, error) {
	s, ok := v.(string)
	if !ok {
		return time.Time{}, fmt.Errorf("%s: not a string", what)
	}
	if s == "" {
		return time.Time{}, nil
	}
	msec, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: %w", what, err)
	}
	return time.UnixMilli(msec).UTC(), nil
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

// RenewBatch renews every lease in one script call: one round trip, atomic
// as a whole.
func (b *Backend) RenewBatch(ctx context.Context, leases []lock.Lease, ttl time.Duration) ([]bool, error) {
	if err := lock.CheckRenewals(leases, ttl); err != nil {
		return nil, fmt.Errorf("redislock: %w", err)
	}
	if len(leases) == 0 {
		return nil, nil
	}
	if b.err != nil {
		return nil, b.err
	}
	keys := make([]string, 0, 3*len(leases))
	args := make([]any, 0, 1+3*len(leases))
	args = append(args, ms(ttl))
	for _, l := range leases {
		keys = append(keys, b.lockKey(l.Key), b.fenceKey(l.Key), b.ownerKey(l.Owner))
		args = append(args, l.Owner, l.Key, strconv.FormatUint(l.Token, 10))
	}
	what := leasesWhat("renew-lease", "renewal", leases[0].Key, len(leases))
	return b.runBools(ctx, what, renewLeaseScript, len(leases), keys, args)
}

func (b *Backend) ReleaseLease(ctx context.Context, l lock.Lease, run *lock.RunRecord) (bool, error) {
	if err := lock.CheckLease(l, -1); err != nil {
		return false, err
	}
	released, err := b.ReleaseBatch(ctx, []lock.LeaseEnd{{Lease: l, Run: run}})
	if err != nil {
		return false, err
	}
	return released[0], nil
}

// ReleaseBatch releases every lease in one script call: one round trip,
// atomic as a whole.
func (b *Backend) ReleaseBatch(ctx context.Context, ends []lock.LeaseEnd) ([]bool, error) {
	runs, err := lock.CheckEnds(ends)
	if err != nil {
		return nil, fmt.Errorf("redislock: %w", err)
	}
	if len(ends) == 0 {
		return nil, nil
	}
	if b.err != nil {
		return nil, b.err
	}
	keys := make([]string, 0, 4*len(ends))
	args := make([]any, 0, 7*len(ends))
	for i, e := range ends {
		l := e.Lease
		keys = append(keys, b.lockKey(l.Key), b.fenceKey(l.Key), b.ownerKey(l.Owner), b.stateKey(l.Task))
		args = append(args, l.Owner, l.Key, strconv.FormatUint(l.Token, 10))
		if rec := runs[i]; rec != nil {
			tick := ""
			if !rec.Tick.IsZero() {
				tick = strconv.FormatInt(rec.Tick.UnixMilli(), 10)
			}
			args = append(args, rec.Result, tick, ms(rec.Duration), rec.Error)
		} else {
			args = append(args, "", "", 0, "")
		}
	}
	what := leasesWhat("release-lease", "release", ends[0].Lease.Key, len(ends))
	return b.runBools(ctx, what, releaseLeaseScript, len(ends), keys, args)
}

// leasesWhat names a call on n leases, the first's key first, for an
// error: op for one lease, batch for more.
func leasesWhat(op, batch, first string, n int) string {
	if n == 1 {
		return fmt.Sprintf("%s %q", op, first)
	}
	return fmt.Sprintf("%s of %d leases (%q, ...)", batch, n, first)
}

// runBools runs a script on a batch of n leases that answers 0 or 1 for
// each; what names the batch for an error.
func (b *Backend) runBools(ctx context.Context, what string, s *redis.Script, n int, keys []string, args []any) ([]bool, error) {
	reply, err := s.Run(ctx, b.client, keys, args...).Int64Slice()
	if err != nil {
		return nil, fmt.Errorf("redislock: %s: %w", what, err)
	}
	if len(reply) != n {
		return nil, fmt.Errorf("redislock: %s: unexpected reply %v from the store", what, reply)
	}
	answers := make([]bool, n)
	for i, v := range reply {
		if v != 0 && v != 1 {
			return nil, fmt.Errorf("redislock: %s: unexpected reply %v from the store", what, reply)
		}
		answers[i] = v == 1
	}
	return answers, nil
}

// CheckInfo reports whether the client's user may run INFO, with which
// claims tell a restarted or failed-over server (see Claimer): without it
// they cannot, and say nothing.
func (b *Backend) CheckInfo(ctx context.Context) error {
	if err := b.client.Info(ctx, "server").Err(); err != nil {
		return fmt.Errorf("redislock: INFO server: %w", err)
	}
	return nil
}
