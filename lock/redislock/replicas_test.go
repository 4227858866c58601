package redislock_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/beatlock/beat/internal/redistest"
	"github.com/beatlock/beat/lock"
	"github.com/beatlock/beat/lock/redislock"
)

// TestMinReplicasConfig: settings WAIT cannot work with are configuration
// errors, returned by Err and every call.
func TestMinReplicasConfig(t *testing.T) {
	_, c := newMini(t)
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": "127.0.0.1:1"}})
	t.Cleanup(func() { ring.Close() })
	tests := []struct {
		name    string
		client  redis.UniversalClient
		n       int
		timeout time.Duration
		want    string // in the error; "" for none
	}{
		{"off", c, 0, 0, ""},
		{"on", c, 2, time.Second, ""},
		{"negative", c, -1, time.Second, "must not be negative"},
		{"no timeout", c, 1, 0, "at least 1ms"},
		{"below a millisecond", c, 1, time.Microsecond, "at least 1ms"},
		{"off on a ring", ring, 0, 0, ""},
		{"on a ring", ring, 1, time.Second, "a connection of its own"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := redislock.New(tt.client, redislock.WithMinReplicas(tt.n, tt.timeout))
			err := b.Err()
			if tt.want == "" {
				if err != nil {
					t.Errorf("Err = %v; want nil", err)
				}
				return
			}
			if !errors.Is(err, redislock.ErrConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Err = %v; want a configuration error saying %q", err, tt.want)
			}
			if _, err := b.Claim(ctx, lock.ClaimRequest{Task: "t", Tick: time.Now(), Owner: "a", TTL: time.Second}); !errors.Is(err, redislock.ErrConfig) {
				t.Errorf("Claim: %v; want the configuration error", err)
			}
		})
	}
}

// TestMinReplicasCommands: without min replicas a claim is one command;
// with it, a claim that is granted is followed by one WAIT on the same
// connection, and one that is not granted is not. A server without
// replicas answers WAIT with 0: ErrNotReplicated, saying so.
func TestMinReplicasCommands(t *testing.T) {
	srv := redistest.StartServer(t, t.TempDir())
	c := srv.Client(func(o *redis.Options) { o.ContextTimeoutEnabled = true })
	t.Cleanup(func() { c.Close() })
	backdate(t, c, redislock.DefaultKeyPrefix)
	now, err := c.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	tick := now.Add(-time.Hour).Truncate(time.Minute)
	req := func(task, owner string) lock.ClaimRequest {
		return lock.ClaimRequest{Task: task, Tick: tick, Owner: owner, TTL: time.Minute, Session: "s-" + owner, MaxSkew: time.Second}
	}
	var counter commandCounter
	var waits commandCounter
	c.AddHook(&counter)
	c.AddHook(onlyWait{&waits})

	plain := redislock.New(c)
	if _, err := plain.Claim(ctx, req("load", "a")); err != nil { // loads the script
		t.Fatal(err)
	}
	counter.n.Store(0)
	if res, err := plain.Claim(ctx, req("t0", "a")); err != nil || res.Outcome != lock.Claimed {
		t.Fatalf("Claim = %v, %v; want claimed", res.Outcome, err)
	}
	if n := counter.n.Load(); n != 1 || waits.n.Load() != 0 {
		t.Errorf("a claim without min replicas sent %d commands, %d WAIT; want 1 and none", n, waits.n.Load())
	}

	const timeout = 50 * time.Millisecond
	b := redislock.New(c, redislock.WithMinReplicas(1, timeout))
	counter.n.Store(0)
	start := time.Now()
	res, err := b.Claim(ctx, req("t1", "a"))
	took := time.Since(start)
	if !errors.Is(err, redislock.ErrNotReplicated) || !strings.Contains(err.Error(), "0 of 1 replicas") || res != (lock.ClaimResult{}) {
		t.Fatalf("Claim = %+v, %v; want no result and ErrNotReplicated, 0 of 1 replicas", res, err)
	}
	if took < timeout {
		t.Errorf("Claim returned after %v, before the WAIT timeout %v", took, timeout)
	}
	if n := counter.n.Load(); n != 2 || waits.n.Load() != 1 {
		t.Errorf("a granted claim with min replicas sent %d commands, %d WAIT; want 2: the script and WAIT", n, waits.n.Load())
	}
	counter.n.Store(0)
	waits.n.Store(0)
	if res, err := b.Claim(ctx, req("t1", "b")); err != nil || res.Outcome != lock.AlreadyClaimed {
		t.Fatalf("another owner's Claim = %v, %v; want already-claimed", res.Outcome, err)
	}
	if n := counter.n.Load(); n != 1 || waits.n.Load() != 0 {
		t.Errorf("a claim not granted sent %d commands, %d WAIT; want 1 and none", n, waits.n.Load())
	}
	// The retry of the same process gets its lease, and waits again.
	plainRes, err := plain.Claim(ctx, req("t1", "a"))
	if err != nil || plainRes.Outcome != lock.Claimed {
		t.Fatalf("the retry without min replicas = %v, %v; want claimed", plainRes.Outcome, err)
	}
	if _, err := b.Claim(ctx, req("t1", "a")); !errors.Is(err, redislock.ErrNotReplicated) {
		t.Errorf("the retry with min replicas: %v; want ErrNotReplicated", err)
	}
	if again, err := plain.Claim(ctx, req("t1", "a")); err != nil || again.Lease != plainRes.Lease {
		t.Errorf("a second retry = %+v, %v; want the same lease %+v", again.Lease, err, plainRes.Lease)
	}
}

// onlyWait counts the WAIT commands a client sends.
type onlyWait struct{ c *commandCounter }

func (onlyWait) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h onlyWait) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == "wait" {
			h.c.n.Add(1)
		}
		return next(ctx, cmd)
	}
}
func (onlyWait) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
