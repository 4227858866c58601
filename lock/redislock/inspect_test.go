package redislock_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/beatlock/beat/lock"
	"github.com/beatlock/beat/lock/redislock"
)

// claimNow claims the tick one second before the server's clock.
func claimNow(t *testing.T, b *redislock.Backend, task, owner string, p lock.Policy) lock.Lease {
	t.Helper()
	_, now, err := b.Epoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res, err := b.Claim(ctx, lock.ClaimRequest{Task: task, Tick: now.Add(-time.Second), Owner: owner, TTL: time.Minute, Policy: p, MaxSkew: time.Second})
	if err != nil || res.Outcome != lock.Claimed {
		t.Fatalf("Claim(%q) = %+v, %v; want claimed", task, res, err)
	}
	return res.Lease
}

func taskNames(t *testing.T, b *redislock.Backend) []string {
	t.Helper()
	recs, _, err := b.Tasks(ctx)
	if err != nil {
		t.Fatalf("Tasks: %v", err)
	}
	var names []string
	for _, r := range recs {
		names = append(names, r.Task)
	}
	return names
}

// TestTasksPrefixWithGlobCharacters: Tasks lists the records under its
// own prefix only, even when the prefix holds SCAN's pattern characters
// and other deployments' prefixes match it as a pattern.
func TestTasksPrefixWithGlobCharacters(t *testing.T) {
	servers(t, func(t *testing.T, c *redis.Client, base string) {
		prefixes := []string{
			base + `[1]*\?:`, // ours
			base + `1*\?:`,   // matches ours read as a pattern
			base + `1x?:`,    // so does this
			base + `[1]x?:`,
			base + `[1]*?:`,
			base + `[1]*\?`,
		}
		var backends []*redislock.Backend
		for i, p := range prefixes {
			backdate(t, c, p)
			b := redislock.New(c, redislock.WithKeyPrefix(p))
			claimNow(t, b, "shared", "a", lock.Forbid)
			claimNow(t, b, fmt.Sprint("only-", i), "a", lock.Allow)
			backends = append(backends, b)
		}
		for i, b := range backends {
			if got, want := taskNames(t, b), []string{fmt.Sprint("only-", i), "shared"}; !slices.Equal(got, want) {
				t.Errorf("prefix %q: Tasks = %q; want %q", prefixes[i], got, want)
			}
		}
	})
}

// TestTasksMalformedRecords: a record the store answers with in a shape
// beat never writes is listed with an error naming the key and the field,
// never a panic, never a record with a made-up value; and it hides neither
// the other records nor keeps them from being repaired.
func TestTasksMalformedRecords(t *testing.T) {
	servers(t, func(t *testing.T, c *redis.Client, base string) {
		cases := []struct {
			name  string
			write func(prefix string)
			key   string // the key the error names, after the prefix
			field string // and the field, when it is about one
		}{
			{"tick not a number", func(p string) { c.HSet(ctx, p+"state:t", "tick", "soon", "fence", "5") }, "state:t", "tick"},
			{"negative token", func(p string) { c.HSet(ctx, p+"state:t", "tick", "1000", "fence", "-1") }, "state:t", "fence"},
			{"busy not an integer", func(p string) { c.HSet(ctx, p+"state:t", "busy", "1.5") }, "state:t", "busy"},
			{"run token not a number", func(p string) { c.HSet(ctx, p+"state:t", "run_token", "x") }, "state:t", "run_token"},
			{"run tick not an integer", func(p string) { c.HSet(ctx, p+"state:t", "run_token", "9", "run_tick", "1e3") }, "state:t", "run_tick"},
			{"run duration not a number", func(p string) { c.HSet(ctx, p+"state:t", "run_token", "9", "run_ms", "abc") }, "state:t", "run_ms"},
			{"run duration negative", func(p string) { c.HSet(ctx, p+"state:t", "run_token", "9", "run_ms", "-5") }, "state:t", "run_ms"},
			{"run end not a number", func(p string) { c.HSet(ctx, p+"state:t", "run_token", "9", "run_end", "later") }, "state:t", "run_end"},
			{"bad field of a held task", func(p string) {
				c.HSet(ctx, p+"state:t", "tick", "1000", "fence", "5", "key", "t", "run_token", "9", "run_ms", "abc")
				c.Set(ctx, p+"lock:t", "a", time.Hour)
				c.Set(ctx, p+"fence:t", "5", time.Hour)
			}, "state:t", "run_ms"},
			{"state not a hash", func(p string) { c.Set(ctx, p+"state:t", "x", 0) }, "state:t", ""},
			{"lock key of another type", func(p string) {
				c.HSet(ctx, p+"state:t", "tick", "1000", "fence", "5", "key", "t")
				c.HSet(ctx, p+"lock:t", "field", "value")
			}, "lock:t", ""},
		}
		for i, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				prefix := fmt.Sprintf("%s%d:", base, i)
				backdate(t, c, prefix)
				b := redislock.New(c, redislock.WithKeyPrefix(prefix))
				// Good records next to the bad one: one held, one done.
				held := claimNow(t, b, "good", "a", lock.Forbid)
				done := claimNow(t, b, "done", "a", lock.Allow)
				if ok, err := b.ReleaseLease(ctx, done, &lock.RunRecord{Result: lock.RunSucceeded}); !ok || err != nil {
					t.Fatalf("ReleaseLease = %v, %v", ok, err)
				}
				tc.write(prefix)

				recs, now, err := b.Tasks(ctx)
				if err != nil || now.IsZero() {
					t.Fatalf("Tasks = %+v, %v, %v; want the records and the store's clock", recs, now, err)
				}
				if got, want := names(recs), []string{"done", "good", "t"}; !slices.Equal(got, want) {
					t.Fatalf("Tasks = %q; want %q", got, want)
				}
				bad := recs[2]
				if bad.Err == nil {
					t.Fatalf("bad record = %+v; want an Err", bad)
				}
				if msg := bad.Err.Error(); !strings.Contains(msg, prefix+tc.key) || tc.field != "" && !strings.Contains(msg, `"`+tc.field+`"`) {
					t.Errorf("Err = %q; want it to name the key %s and the field %q", msg, prefix+tc.key, tc.field)
				}
				if !bad.LastClaimed.IsZero() || bad.Token != 0 || !bad.LastSkipped.IsZero() || bad.Holder != "" || bad.LockLeft != 0 || bad.LastRun != nil {
					t.Errorf("bad record = %+v; want only Task and Err", bad)
				}
				good, fine := recs[1], recs[0]
				if good.Err != nil || good.Holder != "a" || good.Token != held.Token || good.LastClaimed.IsZero() || good.LockLeft <= 0 {
					t.Errorf("good record = %+v; want it held by a under token %d", good, held.Token)
				}
				if fine.Err != nil || fine.Token != done.Token || fine.Holder != "" || fine.LastRun == nil || fine.LastRun.Result != lock.RunSucceeded {
					t.Errorf("done record = %+v; want its claim (token %d) and run", fine, done.Token)
				}

				// The good tasks can be repaired next to the bad one.
				if ok, err := b.ForceRelease(ctx, "good", time.Minute); !ok || err != nil {
					t.Fatalf("ForceRelease(good) = %v, %v; want true", ok, err)
				}
				if ok, err := b.RenewLease(ctx, held, time.Minute); ok || err != nil {
					t.Errorf("RenewLease of the revoked lease = %v, %v; want false", ok, err)
				}
				if err := b.Forget(ctx, "good", 0); !errors.Is(err, lock.ErrHeld) {
					t.Errorf("Forget(good) = %v; want ErrHeld", err)
				}
				if err := b.Forget(ctx, "done", time.Hour); !errors.Is(err, lock.ErrRecent) {
					t.Errorf("Forget(done, 1h) = %v; want ErrRecent", err)
				}
				if err := b.Forget(ctx, "done", 0); err != nil {
					t.Fatalf("Forget(done) = %v", err)
				}
				recs, _, err = b.Tasks(ctx)
				if err != nil || !slices.Equal(names(recs), []string{"good", "t"}) {
					t.Fatalf("Tasks after the repairs = %q, %v; want [good t]", names(recs), err)
				}
				if recs[0].Holder != lock.RevokedOwner || recs[0].Token != held.Token || recs[0].Err != nil {
					t.Errorf("good record = %+v; want it revoked", recs[0])
				}
				if recs[1].Err == nil {
					t.Errorf("bad record = %+v; want it still listed with its Err", recs[1])
				}
			})
		}
		t.Run("force-release and forget of a lock key of another type", func(t *testing.T) {
			prefix := base + "wrong:"
			c.HSet(ctx, prefix+"state:t", "tick", "1000", "fence", "5")
			c.HSet(ctx, prefix+"lock:t", "field", "value")
			b := redislock.New(c, redislock.WithKeyPrefix(prefix))
			if ok, err := b.ForceRelease(ctx, "t", time.Minute); err == nil || ok {
				t.Errorf("ForceRelease = %v, %v; want an error", ok, err)
			}
			for _, minAge := range []time.Duration{0, time.Hour} {
				if err := b.Forget(ctx, "t", minAge); err == nil || errors.Is(err, lock.ErrHeld) || errors.Is(err, lock.ErrRecent) {
					t.Errorf("Forget(%v) = %v; want a store error", minAge, err)
				}
			}
			if n := c.HLen(ctx, prefix+"state:t").Val(); n != 2 {
				t.Errorf("state holds %d fields after the failed Forget; want 2", n)
			}
			if typ := c.Type(ctx, prefix+"lock:t").Val(); typ != "hash" {
				t.Errorf("lock key is a %s after the failed ForceRelease; want it left a hash", typ)
			}
		})
	})
}

func names(recs []lock.TaskRecord) []string {
	var n []string
	for _, r := range recs {
		n = append(n, r.Task)
	}
	return n
}

// TestStateLayout pins the fields of the documented state hash: the claim
// records its lease key, the release its run, and Forget leaves the fence
// alone, so that tokens keep rising when the task comes back.
func TestStateLayout(t *testing.T) {
	servers(t, func(t *testing.T, c *redis.Client, prefix string) {
		backdate(t, c, prefix)
		b := redislock.New(c, redislock.WithKeyPrefix(prefix))
		l := claimNow(t, b, "t", "pod 1", lock.Allow)
		state := prefix + "state:t"
		if key := c.HGet(ctx, state, "key").Val(); key != l.Key || !strings.HasPrefix(key, "t@") {
			t.Errorf("state key field = %q; want the lease key %q", key, l.Key)
		}
		// One command, as every operation is one script (after the first
		// call has loaded it).
		if _, err := b.ReleaseLease(ctx, lock.Lease{Task: "other", Key: "other", Owner: "x", Token: 1}, &lock.RunRecord{Result: lock.RunFailed}); err != nil {
			t.Fatal(err)
		}
		var counter commandCounter
		c.AddHook(&counter)
		run := &lock.RunRecord{Tick: time.UnixMilli(1_800_000_000_123), Result: lock.RunFailed, Duration: 1234567 * time.Microsecond, Error: "boom"}
		if ok, err := b.ReleaseLease(ctx, l, run); !ok || err != nil {
			t.Fatalf("ReleaseLease = %v, %v", ok, err)
		}
		if n := counter.n.Load(); n != 1 {
			t.Errorf("ReleaseLease with a run sent %d commands; want 1", n)
		}
		h := c.HGetAll(ctx, state).Val()
		for f, want := range map[string]string{
			"run_tick": "1800000000123", "run_token": fmt.Sprint(l.Token), "run_owner": "pod 1",
			"run_result": "failed", "run_ms": "1234", "run_err": "boom",
		} {
			if h[f] != want {
				t.Errorf("state field %s = %q; want %q", f, h[f], want)
			}
		}
		if h["run_end"] == "" {
			t.Error("state has no run_end")
		}
		if err := b.Forget(ctx, "t", time.Hour); !errors.Is(err, lock.ErrRecent) {
			t.Fatalf("Forget of a tick a second old, minimum age 1h = %v; want ErrRecent", err)
		}
		if err := b.Forget(ctx, "t", 0); err != nil {
			t.Fatal(err)
		}
		if h := c.HGetAll(ctx, state).Val(); len(h) != 1 || h["fence"] != fmt.Sprint(l.Token) {
			t.Errorf("state after Forget = %v; want only the fence %d", h, l.Token)
		}

		// ForceRelease revokes: the lock key holds lock.RevokedOwner, and
		// the fence key the claim's token, both for the hold; the key
		// leaves its owner's index, and no index is made for RevokedOwner.
		r := claimNow(t, b, "r", "pod 1", lock.Forbid)
		if ok, err := b.ForceRelease(ctx, "r", 30*time.Second); !ok || err != nil {
			t.Fatalf("ForceRelease = %v, %v; want true", ok, err)
		}
		for key, want := range map[string]string{prefix + "lock:r": lock.RevokedOwner, prefix + "fence:r": fmt.Sprint(r.Token)} {
			if v := c.Get(ctx, key).Val(); v != want {
				t.Errorf("GET %s = %q after ForceRelease; want %q", key, v, want)
			}
			if d := c.PTTL(ctx, key).Val(); d <= 29*time.Second || d > 30*time.Second {
				t.Errorf("PTTL %s = %v after ForceRelease; want the hold, 30s", key, d)
			}
		}
		if err := c.ZRank(ctx, prefix+"owner:pod 1", "r").Err(); !errors.Is(err, redis.Nil) {
			t.Errorf("ZRANK of r in the owner's index = %v; want it gone", err)
		}
		if n := c.Exists(ctx, prefix+"owner:"+lock.RevokedOwner).Val(); n != 0 {
			t.Errorf("an owner index for %q exists", lock.RevokedOwner)
		}
		if h := c.HGetAll(ctx, prefix+"state:r").Val(); h["fence"] != fmt.Sprint(r.Token) || h["key"] != "r" || h["tick"] == "" {
			t.Errorf("state after ForceRelease = %v; want the claim kept", h)
		}
	})
}

// TestRecordWithoutLeaseKey: a claim record written before records kept
// their lease key (an older beat) still shows its holder and can be
// revoked, under Forbid and Replace where the key is the task's name.
func TestRecordWithoutLeaseKey(t *testing.T) {
	servers(t, func(t *testing.T, c *redis.Client, prefix string) {
		backdate(t, c, prefix)
		b := redislock.New(c, redislock.WithKeyPrefix(prefix))
		l := claimNow(t, b, "t", "a", lock.Forbid)
		c.HDel(ctx, prefix+"state:t", "key")
		recs, _, err := b.Tasks(ctx)
		if err != nil || len(recs) != 1 || recs[0].Holder != "a" || recs[0].Token != l.Token {
			t.Fatalf("Tasks = %+v, %v; want t held by a", recs, err)
		}
		if err := b.Forget(ctx, "t", 0); !errors.Is(err, lock.ErrHeld) {
			t.Errorf("Forget = %v; want ErrHeld", err)
		}
		if ok, err := b.ForceRelease(ctx, "t", time.Minute); !ok || err != nil {
			t.Errorf("ForceRelease = %v, %v; want true", ok, err)
		}
		recs, _, err = b.Tasks(ctx)
		if err != nil || len(recs) != 1 || recs[0].Holder != lock.RevokedOwner || recs[0].Token != l.Token {
			t.Fatalf("Tasks = %+v, %v; want t revoked", recs, err)
		}
		if ok, err := b.RenewLease(ctx, l, time.Minute); ok || err != nil {
			t.Errorf("RenewLease = %v, %v; want false", ok, err)
		}
		if res, err := b.Claim(ctx, lock.ClaimRequest{Task: "t", Tick: time.UnixMilli(c.Time(ctx).Val().UnixMilli()), Owner: "b", TTL: time.Minute, MaxSkew: time.Second}); err != nil || res.Outcome != lock.Busy {
			t.Errorf("Forbid claim while revoked = %+v, %v; want busy", res, err)
		}
		if err := b.Forget(ctx, "t", 0); !errors.Is(err, lock.ErrHeld) {
			t.Errorf("Forget while revoked = %v; want ErrHeld", err)
		}
		if n, err := b.ReleaseAll(ctx, "a"); n != 0 || err != nil {
			t.Errorf("ReleaseAll = %d, %v; want 0", n, err)
		}
		if n := c.ZCard(ctx, prefix+"owner:a").Val(); n != 0 {
			t.Errorf("owner index holds %d keys after ForceRelease; want 0", n)
		}
	})
}

// TestTasksManyTasks: more records than one read of the tasks script
// takes are all listed, once each, in order.
func TestTasksManyTasks(t *testing.T) {
	servers(t, func(t *testing.T, c *redis.Client, prefix string) {
		const n = 1234
		pipe := c.Pipeline()
		var want []string
		for i := range n {
			task := fmt.Sprintf("task-%04d", i)
			want = append(want, task)
			pipe.HSet(ctx, prefix+"state:"+task, "tick", 1_800_000_000_000+i, "fence", i+1, "key", task)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
		b := redislock.New(c, redislock.WithKeyPrefix(prefix))
		if got := taskNames(t, b); !slices.Equal(got, want) {
			t.Errorf("Tasks listed %d tasks; want %d in order", len(got), n)
		}
	})
}
