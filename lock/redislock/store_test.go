package redislock_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/beatlock/beat/internal/redistest"
	"github.com/beatlock/beat/lock"
	"github.com/beatlock/beat/lock/redislock"
)

var ctx = context.Background()

// servers runs f against miniredis and against the real server.
func servers(t *testing.T, f func(t *testing.T, c *redis.Client, prefix string)) {
	t.Run("miniredis", func(t *testing.T) {
		_, c := newMini(t)
		f(t, c, redislock.DefaultKeyPrefix)
	})
	t.Run("redis", func(t *testing.T) {
		c := redistest.Client(t)
		f(t, c, redistest.Prefix(t, c))
	})
}

// commandCounter counts the commands a client sends.
type commandCounter struct{ n atomic.Int64 }

func (*commandCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *commandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}
func (h *commandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TestReleaseAllIgnoresKeyspace: with 10,000 unrelated keys present, some of
// them lock-shaped and some even holding the owner's id outside the prefix,
// ReleaseAll frees exactly the owner's 3 locks in one command and leaves the
// rest as they were.
func TestReleaseAllIgnoresKeyspace(t *testing.T) {
	servers(t, func(t *testing.T, c *redis.Client, prefix string) {
		other := redistest.Prefix(t, c) // a second deployment's keyspace on the same server
		const unrelated = 10_000
		values := [...]string{"b", "a", "x"}
		unrelatedKey := func(i int) string {
			switch i % 3 {
			case 0: // another owner's lock under our prefix
				return fmt.Sprintf("%slock:other-%d", prefix, i)
			case 1: // the same owner id, in another deployment
				return fmt.Sprintf("%slock:k%d", other, i)
			}
			return fmt.Sprintf("%sdata:%d", other, i)
		}
		pipe := c.Pipeline()
		for i := range unrelated {
			pipe.Set(ctx, unrelatedKey(i), values[i%3], time.Hour)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
		b := redislock.New(c, redislock.WithKeyPrefix(prefix))
		for _, k := range []string{"k1", "k2", "k3"} {
			if ok, err := b.TryAcquire(ctx, k, "a", time.Hour); !ok || err != nil {
				t.Fatalf("TryAcquire(%s) = %v, %v", k, ok, err)
			}
		}

		// Load the script first: a fresh server answers NOSCRIPT to the first
		// EVALSHA and go-redis follows with EVAL, a second command.
		if _, err := b.ReleaseAll(ctx, "nobody"); err != nil {
			t.Fatal(err)
		}
		var counter commandCounter
		c.AddHook(&counter)
		n, err := b.ReleaseAll(ctx, "a")
		if err != nil || n != 3 {
			t.Fatalf("ReleaseAll = %d, %v; want 3, nil", n, err)
		}
		if got := counter.n.Load(); got != 1 {
			t.Errorf("ReleaseAll sent %d commands; want 1 (one script)", got)
		}
		for i := range unrelated {
			pipe.Get(ctx, unrelatedKey(i))
		}
		cmds, err := pipe.Exec(ctx)
		if err != nil {
			t.Fatalf("reading the unrelated keys back: %v", err)
		}
		for i, cmd := range cmds {
			want := values[i%3]
			if got := cmd.(*redis.StringCmd).Val(); got != want {
				t.Fatalf("unrelated key %d = %q after ReleaseAll; want %q", i, got, want)
			}
		}
		for _, k := range []string{"k1", "k2", "k3"} {
			if ok, err := b.IsLocked(ctx, k); ok || err != nil {
				t.Errorf("IsLocked(%s) = %v, %v after ReleaseAll", k, ok, err)
			}
		}
	})
}

// TestKeyLayout pins the documented layout: the lock is a string key under
// the prefix whose value is the owner and whose TTL is the lock's.
func TestKeyLayout(t *testing.T) {
	servers(t, func(t *testing.T, c *redis.Client, prefix string) {
		b := redislock.New(c, redislock.WithKeyPrefix(prefix))
		if ok, err := b.TryAcquire(ctx, "job:{x}", "pod 1", 30*time.Second); !ok || err != nil {
			t.Fatalf("TryAcquire = %v, %v", ok, err)
		}
		key := prefix + "lock:job:{x}"
		if v, err := c.Get(ctx, key).Result(); v != "pod 1" || err != nil {
			t.Errorf("GET %s = %q, %v; want the owner", key, v, err)
		}
		if ttl, err := c.PTTL(ctx, key).Result(); err != nil || ttl <= 29*time.Second || ttl > 30*time.Second {
			t.Errorf("PTTL %s = %v, %v; want about 30s", key, ttl, err)
		}
	})
}

// TestOwnerIndexDoesNotGrow: locks that expire on their own leave no trace
// in the owner index once the owner locks again, and the index itself
// expires with its last lock.
func TestOwnerIndexDoesNotGrow(t *testing.T) {
	c := redistest.Client(t)
	prefix := redistest.Prefix(t, c)
	b := redislock.New(c, redislock.WithKeyPrefix(prefix))
	for i := range 100 {
		if ok, err := b.TryAcquire(ctx, fmt.Sprint("short-", i), "a", 50*time.Millisecond); !ok || err != nil {
			t.Fatalf("TryAcquire = %v, %v", ok, err)
		}
	}
	idx := prefix + "owner:a"
	if n := c.ZCard(ctx, idx).Val(); n != 100 {
		t.Fatalf("index holds %d keys; want 100", n)
	}
	time.Sleep(120 * time.Millisecond)
	if ok, err := b.TryAcquire(ctx, "live", "a", 80*time.Millisecond); !ok || err != nil {
		t.Fatalf("TryAcquire = %v, %v", ok, err)
	}
	if keys := c.ZRange(ctx, idx, 0, -1).Val(); len(keys) != 1 || keys[0] != "live" {
		t.Errorf("index = %q after the short locks expired; want [live]", keys)
	}
	time.Sleep(150 * time.Millisecond)
	if n := c.Exists(ctx, idx).Val(); n != 0 {
		t.Errorf("index still exists after its last lock expired")
	}
}

// TestStoreLossIsNoticed: a store that restarts empty (no persistence)
// loses the claim records. It gets a new epoch at its first call, so a tick
// from before the loss is refused as store-lost, never claimed a second time;
// and the tokens it issues afterwards still rise, so downstream systems that
// fence on them keep accepting the new holders.
func TestStoreLossIsNoticed(t *testing.T) {
	servers(t, func(t *testing.T, c *redis.Client, prefix string) {
		backdate(t, c, prefix)
		b := redislock.New(c, redislock.WithKeyPrefix(prefix))
		oldEpoch, now, err := b.Epoch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		req := lock.ClaimRequest{Task: "t", Tick: now.Add(-time.Second), Owner: "a", TTL: time.Minute, Policy: lock.Allow, MaxSkew: time.Second}
		before, err := b.Claim(ctx, req)
		if err != nil || before.Outcome != lock.Claimed || !before.Epoch.Equal(oldEpoch) {
			t.Fatalf("Claim = %+v, %v; want claimed at epoch %v", before, err, oldEpoch)
		}
		// The restart: every key of the deployment gone, scripts too.
		keys, err := c.Keys(ctx, prefix+"*").Result()
		if err != nil || len(keys) == 0 {
			t.Fatalf("keys under %q: %v, %v", prefix, keys, err)
		}
		c.Del(ctx, keys...)
		c.ScriptFlush(ctx)

		req.Owner = "b" // a replica whose claim of the same tick failed, retrying
		again, err := b.Claim(ctx, req)
		if err != nil || again.Outcome != lock.StoreLost {
			t.Fatalf("Claim of the tick claimed before the loss = %+v, %v; want store-lost", again, err)
		}
		if !again.Epoch.After(req.Tick) || !again.Epoch.After(oldEpoch) {
			t.Errorf("epoch after the loss = %v; want a new one after the tick %v", again.Epoch, req.Tick)
		}
		newEpoch, _, err := b.Epoch(ctx)
		if err != nil || !newEpoch.Equal(again.Epoch) {
			t.Fatalf("Epoch = %v, %v; want %v", newEpoch, err, again.Epoch)
		}
		req.Tick = newEpoch
		after, err := b.Claim(ctx, req)
		if err != nil || after.Outcome != lock.Claimed {
			t.Fatalf("Claim at the new epoch = %+v, %v", after, err)
		}
		if after.Lease.Token <= before.Lease.Token {
			t.Errorf("token after the store lost its data = %d; want above %d", after.Lease.Token, before.Lease.Token)
		}
	})
}

// TestRestartBeginsEpoch: a claim served by another Redis process than the
// one that began the epoch (a restart from an older snapshot, a failover)
// begins a new epoch, although the old epoch's key is still there: the last
// claims before may be lost, so the ticks before are refused, and Forbid
// claims are guarded for a ttl. (miniredis cannot tell its run_id.)
func TestRestartBeginsEpoch(t *testing.T) {
	c := redistest.Client(t)
	prefix := redistest.Prefix(t, c)
	backdate(t, c, prefix)
	b := redislock.New(c, redislock.WithKeyPrefix(prefix))
	old, now, err := b.Epoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A snapshot restored into another server process: same keys, another
	// run_id.
	c.Set(ctx, prefix+"epoch:server", "0000000000000000000000000000000000000000", 0)
	tick := now.Add(-time.Second)
	res, err := b.Claim(ctx, lock.ClaimRequest{Task: "t", Tick: tick, Owner: "a", TTL: time.Minute, MaxSkew: time.Second, KnownEpoch: old})
	if err != nil || res.Outcome != lock.StoreLost || !res.Epoch.After(old) {
		t.Fatalf("Claim after the server changed = %+v, %v; want store-lost and an epoch after %v", res, err, old)
	}
	res, err = b.Claim(ctx, lock.ClaimRequest{Task: "t", Tick: res.Epoch, Owner: "a", TTL: time.Minute, MaxSkew: time.Second, KnownEpoch: old})
	if err != nil || res.Outcome != lock.Busy || !res.Guarded {
		t.Fatalf("Forbid claim within a ttl of the new epoch = %+v, %v; want busy, guarded", res, err)
	}
	if again, _, _ := b.Epoch(ctx); !again.Equal(res.Epoch) {
		t.Errorf("epoch %v after the next call; want it kept at %v", again, res.Epoch)
	}
}

// TestLossGuardsForbid: a store that lost its records may still have runs
// from before going, whose locks it no longer knows: for a ttl after the
// new epoch, Forbid claims are Busy (guarded) once a caller that saw the
// old epoch speaks; Allow claims run. A new deployment (no caller saw an
// epoch before) is not guarded.
func TestLossGuardsForbid(t *testing.T) {
	servers(t, func(t *testing.T, c *redis.Client, prefix string) {
		b := redislock.New(c, redislock.WithKeyPrefix(prefix))
		const ttl = 2 * time.Second
		claim := func(task string, p lock.Policy, known time.Time) lock.ClaimResult {
			t.Helper()
			epoch, now, err := b.Epoch(ctx)
			if err != nil {
				t.Fatal(err)
			}
			tick := now
			if tick.Before(epoch) {
				tick = epoch
			}
			res, err := b.Claim(ctx, lock.ClaimRequest{Task: task, Tick: tick, Owner: "a", TTL: ttl, Policy: p, MaxSkew: time.Second, KnownEpoch: known})
			if err != nil {
				t.Fatal(err)
			}
			return res
		}
		// A new store: nobody knew an epoch; not guarded.
		if res := claim("new", lock.Forbid, time.Time{}); res.Outcome != lock.Claimed {
			t.Fatalf("first claim on a new store = %+v; want claimed", res)
		}
		first, _, _ := b.Epoch(ctx)
		// The store loses everything; a replica that saw the first epoch
		// claims next.
		keys, _ := c.Keys(ctx, prefix+"*").Result()
		c.Del(ctx, keys...)
		time.Sleep(5 * time.Millisecond) // so that the new epoch is later than the old
		res := claim("forbid", lock.Forbid, first)
		if res.Outcome != lock.StoreLost && !(res.Outcome == lock.Busy && res.Guarded) {
			t.Fatalf("Forbid claim after the loss = %+v; want store-lost or busy, guarded", res)
		}
		if res := claim("forbid2", lock.Forbid, first); res.Outcome != lock.Busy || !res.Guarded {
			t.Errorf("Forbid claim within a ttl of the loss = %+v; want busy, guarded", res)
		}
		if res := claim("allow", lock.Allow, first); res.Outcome != lock.Claimed {
			t.Errorf("Allow claim within a ttl of the loss = %+v; want claimed", res)
		}
		// The guard ends a ttl after the new epoch, by itself.
		if d, err := c.PTTL(ctx, prefix+"epoch:guard").Result(); err != nil || d <= 0 || d > ttl {
			t.Errorf("the guard expires in %v (%v); want within the ttl %v", d, err, ttl)
		}
	})
}

// TestFutureRecordDisregarded: a claim record ahead of the server's clock
// (written by a beat before the clock check, or before the server's clock
// stepped back) does not make correct replicas skip; the claim falls back
// to the tick decided before it.
func TestFutureRecordDisregarded(t *testing.T) {
	servers(t, func(t *testing.T, c *redis.Client, prefix string) {
		backdate(t, c, prefix)
		b := redislock.New(c, redislock.WithKeyPrefix(prefix))
		_, now, err := b.Epoch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		past, future := now.Add(-time.Minute), now.Add(30*time.Minute)
		c.HSet(ctx, prefix+"state:t", "tick", future.UnixMilli(), "fence", 7, "prev", past.UnixMilli(), "session", "")
		req := lock.ClaimRequest{Task: "t", Tick: past, Owner: "a", TTL: time.Minute, MaxSkew: 2 * time.Second}
		if res, err := b.Claim(ctx, req); err != nil || res.Outcome != lock.AlreadyClaimed || !res.FutureRecord.Equal(future.Truncate(time.Millisecond)) {
			t.Fatalf("Claim of the tick before the record = %+v, %v; want already-claimed, future record %v", res, err, future)
		}
		req.Tick = now.Add(-time.Second)
		res, err := b.Claim(ctx, req)
		if err != nil || res.Outcome != lock.Claimed || !res.Previous.Equal(past.Truncate(time.Millisecond)) {
			t.Fatalf("Claim = %+v, %v; want claimed after %v", res, err, past)
		}
	})
}

// backdate sets the epoch of the deployment under prefix three hours back,
// so that a test has past ticks to claim (see locktest.Harness.New).
func backdate(t testing.TB, c *redis.Client, prefix string) {
	t.Helper()
	now, err := c.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, prefix+"epoch", now.Add(-3*time.Hour).UnixMilli(), 0).Err(); err != nil {
		t.Fatal(err)
	}
	// As begun by this server process, or the first claim would take the
	// epoch for one from before a restart (miniredis has no run_id).
	if id := runID(t, c); id != "" {
		if err := c.Set(ctx, prefix+"epoch:server", id, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// runID returns the server's run_id, or "" where INFO does not tell it.
func runID(t testing.TB, c *redis.Client) string {
	t.Helper()
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		return ""
	}
	for line := range strings.Lines(info) {
		if id, ok := strings.CutPrefix(strings.TrimSpace(line), "run_id:"); ok {
			return id
		}
	}
	return ""
}

func TestStoreFailuresAreErrors(t *testing.T) {
	// A server that accepts connections and never answers.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	go func() {
		for {
			conn, err := silent.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { conn.Close() })
		}
	}()
	// A port nothing listens on.
	refused, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusedAddr := refused.Addr().String()
	refused.Close()

	m, wrongType := newMini(t)
	m.HSet(redislock.DefaultKeyPrefix+"lock:k", "field", "value")
	backdate(t, wrongType, redislock.DefaultKeyPrefix) // so the claim gets as far as the lock

	cases := []struct {
		name   string
		client *redis.Client
		want   error // nil: any error
	}{
		{"silent server", redis.NewClient(&redis.Options{Addr: silent.Addr().String(), ReadTimeout: 200 * time.Millisecond, DialTimeout: 200 * time.Millisecond, MaxRetries: -1}), nil},
		{"connection refused", redis.NewClient(&redis.Options{Addr: refusedAddr, MaxRetries: -1}), nil},
		{"script error (WRONGTYPE)", wrongType, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := redislock.New(tc.client)
			ok, err := b.TryAcquire(ctx, "k", "a", time.Second)
			if err == nil || ok {
				t.Fatalf("TryAcquire = %v, %v; want false and an error", ok, err)
			}
			n, err := b.ReleaseAll(ctx, "a")
			if tc.name != "script error (WRONGTYPE)" && (err == nil || n != 0) {
				t.Fatalf("ReleaseAll = %v, %v; want 0 and an error", n, err)
			}
			res, err := b.Claim(ctx, lock.ClaimRequest{Task: "k", Tick: time.Now().Add(-time.Second), Owner: "a", TTL: time.Second})
			if err == nil || res.Outcome != 0 {
				t.Fatalf("Claim = %+v, %v; want no outcome and an error", res, err)
			}
		})
	}
	t.Run("deadline", func(t *testing.T) {
		b := redislock.New(cases[0].client)
		dctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		ok, err := b.TryAcquire(dctx, "k", "a", time.Second)
		if ok || err == nil {
			t.Fatalf("TryAcquire = %v, %v; want false and an error", ok, err)
		}
	})
}

func TestClusterPrefixNeedsHashTag(t *testing.T) {
	cluster := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}})
	t.Cleanup(func() { cluster.Close() })

	b := redislock.New(cluster, redislock.WithKeyPrefix("beat:"))
	if err := b.Err(); !errors.Is(err, redislock.ErrConfig) {
		t.Fatalf("Err() = %v; want ErrConfig", err)
	}
	if ok, err := b.TryAcquire(ctx, "k", "a", time.Second); ok || !errors.Is(err, redislock.ErrConfig) {
		t.Fatalf("TryAcquire = %v, %v; want ErrConfig", ok, err)
	}
	if err := redislock.New(cluster).Err(); err != nil {
		t.Fatalf("default prefix on Cluster: %v", err)
	}
	// A standalone server needs no hash tag.
	_, c := newMini(t)
	if err := redislock.New(c, redislock.WithKeyPrefix("beat:")).Err(); err != nil {
		t.Fatalf("standalone: %v", err)
	}
}

func TestHasHashTag(t *testing.T) {
	for prefix, want := range map[string]bool{
		"{beat}:":      true,
		"app:{beat}:":  true,
		"{a}{b}":       true,
		"beat:":        false,
		"":             false,
		"{}:":          false, // an empty tag hashes the whole key
		"{beat:":       false, // the closing brace would come from the key
		"}beat{":       false,
		"}{x}":         true,
		"{{beat}}":     true, // tag "{beat"
		"x{}{y}":       false,
		"{prod-eu-1}:": true,
	} {
		if got := redislock.HasHashTag(prefix); got != want {
			t.Errorf("HasHashTag(%q) = %v; want %v", prefix, got, want)
		}
	}
}
